"""Sound presets per model: round trip, rename/delete, ownership by id or lineage, missing sliders, damage recovery."""

from __future__ import annotations

import json
import warnings

import pytest

from distill.sound_presets import (
    PresetBook,
    PresetError,
    PresetWarning,
    UnknownPreset,
    belongs_to,
    settings_for_model,
)
from distill.spatial import SpatialSettings
from distill.storage import Store
from distill.takes import TakeRequest

MODEL = {"name": "rain", "id": "aaaaaaaaaaaa", "lineage": "run-1"}
OTHER = {"name": "wind", "id": "bbbbbbbbbbbb", "lineage": "run-2"}


def _settings(**changes) -> dict:
    request = TakeRequest(duration=3.0, seed=42, sliders={"brightness": 4.0, "Axis 2": -2.5}, evolution=0.6,
                          spatial=SpatialSettings("binaural", width=0.2, azimuth=-30.0, elevation=10.0, depth=0.4),
                          loudness=-16.0)
    return {**request.to_dict(), **changes}


@pytest.fixture
def book(tmp_path) -> PresetBook:
    return PresetBook(Store.open(tmp_path / "library"))


def test_presets_round_trip(book, tmp_path):
    saved = book.save(MODEL, "Bright rain", _settings())
    loaded = PresetBook(Store.open(tmp_path / "library")).get(MODEL, "bright RAIN")  # case-insensitive
    assert loaded == saved and loaded.settings == _settings()
    assert TakeRequest.from_dict(loaded.settings) == TakeRequest.from_dict(_settings())
    book.save(OTHER, "Bright rain", _settings(seed=None))
    assert [p.model["name"] for p in book.list()] == ["rain", "wind"]
    assert [p.name for p in book.list(MODEL)] == ["Bright rain"]
    with pytest.raises(PresetError, match="exists; pass --overwrite"):
        book.save(MODEL, "bright rain", _settings())
    replaced = book.save(MODEL, "Bright rain", _settings(seed=1), overwrite=True)
    assert replaced.settings["seed"] == 1 and replaced.created == saved.created and len(book.list()) == 2
    data = json.loads((tmp_path / "library" / "presets.json").read_text())
    assert data["version"] == 1 and len(data["presets"]) == 2


def test_rename_and_delete(book):
    book.save(MODEL, "one", _settings())
    book.save(MODEL, "two", _settings())
    with pytest.raises(PresetError, match="'two' of rain exists"):
        book.rename(MODEL, "one", "two")
    assert book.rename(MODEL, "one", "uno").name == "uno"
    assert sorted(p.name for p in book.list(MODEL)) == ["two", "uno"]
    assert book.delete(MODEL, "two").name == "two"
    with pytest.raises(UnknownPreset, match=r"no preset 'two' for model rain \(its presets: 'uno'\)"):
        book.get(MODEL, "two")
    with pytest.raises(UnknownPreset):
        book.delete(OTHER, "uno")  # another model's presets are not this model's
    for bad in ("", "   ", "a\nb", "x" * 81):
        with pytest.raises(PresetError, match="preset name"):
            book.save(MODEL, bad, _settings())


def test_ownership_by_id_or_by_lineage_and_name():
    assert belongs_to(MODEL, {**MODEL, "name": "renamed"})  # renames keep the id
    assert not belongs_to(MODEL, OTHER)
    outside = {"name": "rain", "id": None, "lineage": "run-1"}  # a .distill file used from outside the library
    assert belongs_to(outside, outside) and not belongs_to(outside, {**outside, "name": "other"})
    assert not belongs_to({"name": "x", "id": None, "lineage": ""}, {"name": "x", "id": None, "lineage": ""})


def test_a_preset_whose_sliders_changed_loads_with_a_warning(book):
    preset = book.save(MODEL, "p", _settings())
    with pytest.warns(PresetWarning, match=r"no longer has the slider\(s\) brightness") as caught:
        settings, missing = settings_for_model(preset, ["Axis 2", "warmth"])
    assert len(caught) == 1 and missing == ["brightness"] and settings["sliders"] == {"Axis 2": -2.5}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings, missing = settings_for_model(preset, ["brightness", "Axis 2"])
    assert missing == [] and settings["sliders"] == {"brightness": 4.0, "Axis 2": -2.5}


def test_damaged_presets_file_is_recovered_from_the_backup(book, tmp_path):
    book.save(MODEL, "first", _settings())
    book.save(MODEL, "second", _settings())
    (tmp_path / "library" / "presets.json").write_bytes(b'{"version": 1, "presets": [{"na')
    with pytest.warns(PresetWarning, match="recovered the previous version"):
        assert [p.name for p in book.list(MODEL)] == ["first"]
    with pytest.warns(PresetWarning):
        book.save(MODEL, "third", _settings())  # writing again repairs the file
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(p.name for p in book.list(MODEL)) == ["first", "third"]
    assert not list((tmp_path / "library").glob(".tmp-*"))  # atomic writes leave nothing behind
