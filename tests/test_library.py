"""The model library (add, find, rename, delete, import, export, self-repair) and `distill model …`."""

import json
import os
import threading
from pathlib import Path

import pytest
import torch

from distill import model_file
from distill.cli import main
from distill.library import (
    AmbiguousModel,
    Library,
    LibraryError,
    LibraryWarning,
    UnknownModel,
    check_name,
    lock_file,
)
from distill.model import ModelConfig, SpectrogramVAE
from distill.model_file import ModelFile, ModelFileError
from distill.prepare_config import PrepareConfig
from distill.spectral_config import SpectralConfig
from distill.stats import SpectralStats
from distill.training_config import TrainingConfig

# What distill.latent_space.LatentSpace.to_dict() writes (the parts the library reads).
ANALYSIS = {"version": 1, "mean": [0.0] * 8, "components": [[0.0] * 8] * 2, "sliders": [
    {"index": 1, "component": 0, "label": "brightness", "descriptor": "brightness", "explained_variance": 0.41,
     "percentiles": [-1.0, 0.0, 1.0], "rho": {"brightness": 0.93, "warmth": -0.4}},
    {"index": 2, "component": 1, "label": "Axis 2", "descriptor": None, "explained_variance": 0.22,
     "percentiles": [-1.0, 0.0, 1.0], "rho": {"brightness": 0.1, "warmth": -0.61}}]}


def make(name="tiny model", seed=0, analysis=None, tags=("pad",), description="a test model") -> ModelFile:
    torch.manual_seed(seed)
    config = TrainingConfig(preset="tiny", prepare=PrepareConfig(spectral=SpectralConfig(n_mels=16)),
                            model=ModelConfig(n_mels=16, latent_dim=8, channels=(8, 8, 8, 8, 8)))
    stats = SpectralStats(torch.randn(2, 16), torch.rand(2, 16) + 0.5)
    return ModelFile.create(SpectrogramVAE(config.model), config, stats, name=name, lineage=f"run-{seed}",
                            analysis=analysis, training={"epochs": 3, "seconds": 12.0, "stopped": "completed"},
                            report={"val_mrstft": 0.912, "ceiling_mrstft": 0.45, "eval_split": "val",
                                    "eval_chunks": 4}, tags=list(tags), description=description)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Settings and library inside tmp_path: nothing touches the real home."""
    for name in ("DISTILL_HISTORY", "DISTILL_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISTILL_SETTINGS", str(tmp_path / "settings.toml"))
    monkeypatch.setenv("DISTILL_LIBRARY", str(tmp_path / "lib"))
    return tmp_path / "lib"


@pytest.fixture
def lib(isolated):
    return Library.open()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_open_uses_settings_and_an_empty_library_lists_nothing(lib, isolated):
    assert lib.store.root == str(isolated)
    assert lib.list() == [] and not isolated.exists()


def test_add_list_search_and_info(lib, isolated):
    a = lib.add(make("bright pad", seed=1), tags=["synth"], description="Airy textures")
    b = lib.add(make("dark drone", seed=2, analysis=ANALYSIS, tags=("drone",), description="low rumble"))
    assert len(a.id) == 12 and a.id != b.id and a.file == f"models/{a.id}.distill"
    assert (isolated / a.file).is_file() and a.bytes == (isolated / a.file).stat().st_size
    assert a.tags == ("pad", "synth") and a.description == "Airy textures"
    assert a.summary["preset"] == "tiny" and a.summary["epochs"] == 3 and a.summary["val_mrstft"] == 0.912
    assert b.summary["sliders"] == ["brightness", "Axis 2"] and b.summary["lineage"] == "run-2"
    assert [e.id for e in lib.list()] == [b.id, a.id]  # newest first
    assert [e.name for e in lib.list("PAD")] == ["bright pad"]
    assert [e.name for e in lib.list("synth")] == ["bright pad"]
    assert [e.name for e in lib.list("rumble")] == ["dark drone"]
    assert lib.list("nothing like it") == []
    info = lib.info(b.id)
    assert info["meta"]["config"]["model"]["latent_dim"] == 8 and info["meta"]["report"]["val_mrstft"] == 0.912
    assert [(s["index"], s["label"], s["rho"], s["rho_with"], s["explained_variance"]) for s in info["sliders"]] == [
        (1, "brightness", 0.93, "brightness", 0.41), (2, "Axis 2", -0.61, "warmth", 0.22)]
    # The file holds what the catalog says: names, tags and descriptions survive without the catalog.
    meta = model_file.read_meta(isolated / a.file)
    assert (meta["name"], meta["tags"], meta["description"]) == ("bright pad", ["pad", "synth"], "Airy textures")


def test_resolve_by_id_name_prefix_and_file(lib, tmp_path):
    entry = lib.add(make("solo"))
    assert lib.resolve(entry.id) == entry == lib.resolve("solo") == lib.resolve("SOLO")
    assert lib.resolve(entry.id[:4]) == entry and lib.resolve(entry.id.upper()) == entry
    with pytest.raises(UnknownModel):
        lib.resolve(entry.id[:3])
    outside = tmp_path / "elsewhere" / "loose.distill"
    outside.parent.mkdir()
    model_file.save(make("loose one", seed=5), outside)
    found = lib.resolve(str(outside))
    assert found.external and found.name == "loose one" and found.id == ""
    assert lib.load(str(outside)).lineage == "run-5" and len(lib.list()) == 1
    assert lib.load("solo").name == "solo"
    with pytest.raises(LibraryError, match="outside the library"):
        lib.delete(str(outside))
    with pytest.raises(UnknownModel, match="no such model file"):
        lib.resolve(str(tmp_path / "missing.distill"))


def test_ambiguous_and_unknown_references(lib):
    one, two = lib.add(make("pad", seed=1)), lib.add(make("pad", seed=2))
    with pytest.raises(AmbiguousModel) as info:
        lib.resolve("pad")
    message = str(info.value)
    assert one.id in message and two.id in message and "use the id" in message
    assert {e.id for e in info.value.candidates} == {one.id, two.id}
    assert lib.resolve(one.id).id == one.id
    with pytest.raises(UnknownModel, match="did you mean 'pad'"):
        lib.resolve("pads")
    shared = os.path.commonprefix([one.id, two.id])
    if len(shared) >= 4:  # the same 4-char prefix: also ambiguous
        with pytest.raises(AmbiguousModel):
            lib.resolve(shared)


def test_rename_rewrites_catalog_and_file(lib, isolated):
    entry = lib.add(make("old"))
    renamed = lib.rename("old", "  new name ")
    assert renamed.id == entry.id and renamed.name == "new name" and renamed.added == entry.added
    assert renamed.sha256 != entry.sha256 and lib.resolve("new name").id == entry.id
    assert model_file.load(isolated / entry.file).name == "new name"
    for bad in ("", "  ", "a/b", "back\\slash", ".hidden", "0123456789ab"):
        with pytest.raises(LibraryError):
            lib.rename(entry.id, bad)
    assert lib.resolve(entry.id).name == "new name"


def test_delete(lib, isolated):
    keep, drop = lib.add(make("keep")), lib.add(make("drop"))
    assert lib.delete("drop").id == drop.id
    assert [e.id for e in lib.list()] == [keep.id] and not (isolated / drop.file).exists()
    with pytest.raises(UnknownModel):
        lib.delete("drop")


def test_import_verifies_and_bad_files_add_nothing(lib, isolated, tmp_path):
    good = tmp_path / "good.distill"
    model_file.save(make("shared"), good)
    entry = lib.import_file(good, name="mine", tags=["gift"], description="from a friend")
    assert (entry.name, entry.tags, entry.description) == ("mine", ("pad", "gift"), "from a friend")
    assert torch.equal(lib.load(entry.id).weights["head.bias"], model_file.load(good).weights["head.bias"])
    before = _files(isolated)
    bad = tmp_path / "bad.distill"
    bad.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="truncated"):
        lib.import_file(bad)
    with pytest.raises(ModelFileError, match="no such file"):
        lib.import_file(tmp_path / "nope.distill")
    with pytest.raises(LibraryError, match="name"):
        lib.import_file(good, name="a/b")
    assert _files(isolated) == before and len(lib.list()) == 1


def test_export_copies_and_refuses_to_overwrite(lib, tmp_path):
    entry = lib.add(make("my pad"))
    out = tmp_path / "out"
    out.mkdir()
    path = lib.export("my pad", out)
    assert path == str(out / "my pad.distill")
    assert (out / "my pad.distill").read_bytes() == (Path(lib.store.root) / entry.file).read_bytes()
    with pytest.raises(LibraryError, match="already exists"):
        lib.export(entry.id, out / "my pad.distill")
    (out / "my pad.distill").write_bytes(b"x")
    lib.export(entry.id, out / "my pad.distill", overwrite=True)
    assert model_file.load(out / "my pad.distill").name == "my pad"
    assert lib.export(entry.id, tmp_path / "new" / "copy.distill") == str(tmp_path / "new" / "copy.distill")


def test_replace_model_keeps_identity(lib, isolated):
    entry = lib.add(make("analysed later"), tags=["x"])
    mf = lib.load(entry.id)
    updated = lib.replace_model(entry.id, model_file.with_meta(mf, analysis=ANALYSIS, name="ignored"))
    assert updated.id == entry.id and updated.name == "analysed later" and updated.tags == entry.tags
    assert updated.summary["sliders"] == ["brightness", "Axis 2"]
    assert lib.load(entry.id).analysis == ANALYSIS and len(lib.list()) == 1


def test_catalog_is_rebuilt_from_the_files(lib, isolated):
    a, b = lib.add(make("a", seed=1)), lib.add(make("b", seed=2, analysis=ANALYSIS))
    catalog = isolated / "catalog.json"
    assert json.loads(catalog.read_text())["version"] == 1
    catalog.write_text("{not json")
    with pytest.warns(LibraryWarning, match="rebuilt from the 2 model files"):
        entries = Library.open().list()
    assert {(e.id, e.name) for e in entries} == {(a.id, "a"), (b.id, "b")}
    assert next(e for e in entries if e.id == b.id).summary["sliders"] == ["brightness", "Axis 2"]
    assert len(json.loads(catalog.read_text())["models"]) == 2  # repaired on disk
    catalog.unlink()
    with pytest.warns(LibraryWarning, match="missing"):
        assert len(Library.open().list()) == 2
    (isolated / a.file).unlink()
    with pytest.warns(LibraryWarning, match="file is gone"):
        assert [e.id for e in Library.open().list()] == [b.id]


def test_writes_are_atomic_and_leave_no_temp_files(lib, isolated, tmp_path):
    entry = lib.add(make("x"))
    lib.rename(entry.id, "y")
    other = lib.add(make("z"))
    lib.delete(other.id)
    lib.export(entry.id, tmp_path / "copy.distill")
    assert _files(isolated) == ["catalog.json", entry.file]
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_concurrent_adds_all_land_in_the_catalog(lib):
    models = [make(f"m{i}", seed=i) for i in range(6)]
    threads = [threading.Thread(target=lib.add, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e.name for e in Library.open().list()) == [f"m{i}" for i in range(6)]


def test_lock_waits_takes_over_stale_locks_and_times_out(lib, isolated):
    isolated.mkdir(parents=True)
    lock = isolated / ".lock"
    lock.write_text(f"{os.uname().nodename} 999999999")  # a process that does not exist
    with lock_file(lib.store, ".lock", wait=0.1, what="model library"):
        assert lock.read_text().split()[1] == str(os.getpid())
        with pytest.raises(LibraryError, match="another distill"):
            with lock_file(lib.store, ".lock", wait=0.1, what="model library"):
                pass
    assert not lock.exists()


def test_check_name():
    assert check_name("  Warm pad #2 ") == "Warm pad #2"
    for bad in ("", "a/b", "x\ny", "..", "abcdef012345"):
        with pytest.raises(LibraryError):
            check_name(bad)


# --- the command line ------------------------------------------------------------------------------------------

def cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["model", *map(str, args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_cli_list_and_info(lib, capsys):
    code, out, _ = cli(capsys, "list")
    assert code == 0 and "no models" in out
    a = lib.add(make("bright pad", seed=1, analysis=ANALYSIS))
    lib.add(make("dark drone", seed=2, tags=("drone",)))
    code, out, _ = cli(capsys, "list")
    assert code == 0 and a.id in out and "bright pad" in out and "brightness, Axis 2" in out and "0.912" in out
    code, out, _ = cli(capsys, "list", "drone", "--json")
    assert code == 0 and [e["name"] for e in json.loads(out)] == ["dark drone"]
    code, out, _ = cli(capsys, "info", "bright pad")
    assert code == 0 and "brightness" in out and "41.0 %" in out and "ρ +0.93" in out and "MR-STFT 0.912" in out
    assert "ρ -0.61 (closest: warmth)" in out
    assert "n_fft" in out and "tiny" in out
    code, out, _ = cli(capsys, "info", a.id[:5], "--json")
    data = json.loads(out)
    assert code == 0 and data["id"] == a.id and data["meta"]["analysis"] == ANALYSIS and data["sliders"]


def test_cli_errors_exit_1_with_message_and_json(lib, capsys):
    lib.add(make("twin", seed=1))
    lib.add(make("twin", seed=2))
    code, out, err = cli(capsys, "info", "nobody")
    assert code == 1 and err.startswith("distill: error: no model 'nobody'") and out == ""
    code, out, err = cli(capsys, "info", "twin", "--json")
    assert code == 1 and "matches 2 models" in json.loads(out)["error"] and "distill: error:" in err
    code, out, err = cli(capsys, "rename", "twin", "x")
    assert code == 1 and "use the id" in err
    assert sorted(e.name for e in lib.list()) == ["twin", "twin"]


def test_cli_delete_asks_or_needs_yes(lib, capsys, monkeypatch):
    entry = lib.add(make("victim"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, _, err = cli(capsys, "delete", "victim")
    assert code == 1 and "--yes" in err and len(lib.list()) == 1
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    code, _, err = cli(capsys, "delete", "victim")
    assert code == 1 and "cancelled" in err and len(lib.list()) == 1
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    code, out, _ = cli(capsys, "delete", "victim")
    assert code == 0 and "deleted victim" in out and lib.list() == []
    other = lib.add(make("second"))
    code, out, _ = cli(capsys, "delete", other.id, "--yes", "--json")
    assert code == 0 and json.loads(out)["deleted"]["id"] == other.id and lib.list() == []
    assert entry.id not in out


def test_cli_rename_import_export(lib, capsys, tmp_path):
    source = tmp_path / "gift.distill"
    model_file.save(make("gift"), source)
    code, out, _ = cli(capsys, "import", source, "--name", "present", "--tag", "a", "--tag", "b",
                       "--description", "wrapped", "--json")
    entry = json.loads(out)
    assert code == 0 and entry["name"] == "present" and entry["tags"] == ["pad", "a", "b"]
    code, out, _ = cli(capsys, "rename", "present", "unwrapped")
    assert code == 0 and "'present' to 'unwrapped'" in out and lib.resolve(entry["id"]).name == "unwrapped"
    dest = tmp_path / "exports"
    dest.mkdir()
    code, out, _ = cli(capsys, "export", "unwrapped", dest)
    assert code == 0 and (dest / "unwrapped.distill").is_file()
    code, out, err = cli(capsys, "export", "unwrapped", dest, "--json")
    assert code == 1 and "already exists" in json.loads(out)["error"]
    code, out, _ = cli(capsys, "export", "unwrapped", dest, "--overwrite", "--json")
    assert code == 0 and json.loads(out)["path"] == str(dest / "unwrapped.distill")


def test_cli_refuses_bad_files_and_names_changing_nothing(lib, capsys, tmp_path, isolated):
    wav = tmp_path / "sound.distill"
    wav.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40))
    code, _, err = cli(capsys, "import", wav)
    assert code == 1 and str(wav) in err and "not a distill model file" in err
    entry = lib.add(make("fine"))
    before = _files(isolated)
    code, _, err = cli(capsys, "rename", "fine", "no/slashes")
    assert code == 1 and "may not contain" in err
    assert _files(isolated) == before and lib.resolve(entry.id).name == "fine"


def test_cli_library_flag_beats_the_environment(lib, capsys, tmp_path):
    other = Library.open(tmp_path / "other")
    other.add(make("elsewhere"))
    code, out, _ = cli(capsys, "list", "--library", tmp_path / "other", "--json")
    assert code == 0 and [e["name"] for e in json.loads(out)] == ["elsewhere"]
    code, out, _ = cli(capsys, "list", "--json")
    assert json.loads(out) == []


def test_cli_prints_repairs_as_notes(lib, capsys, isolated):
    lib.add(make("kept"))
    (isolated / "catalog.json").write_text("[]")
    code, out, err = cli(capsys, "list")
    assert code == 0 and "kept" in out and "distill: note:" in err and "rebuilt" in err


def test_a_models_own_invalid_name_is_made_valid_an_explicit_one_refused(lib):
    assert lib.add(make("drums: take 2/3")).name == "drums_ take 2_3"
    with pytest.raises(LibraryError, match="may not contain"):
        lib.add(make("x"), name="a:b")
