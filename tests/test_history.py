"""The generation history (record, find, bound, self-repair, A/B) and its spectrogram thumbnails."""

import io
import json
import os
import threading
import time
import warnings
from datetime import datetime, timezone

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import distill.history as history_module
import distill.take_measures as take_measures
from distill.descriptors import describe
from distill.history import (
    AmbiguousEntry,
    History,
    HistoryEntry,
    HistoryError,
    HistoryWarning,
    UnknownEntry,
)
from distill.loudness import integrated_loudness, true_peak_dbtp
from distill.mel import band_average_weights, band_centres_bins
from distill.stft import stft
from distill.thumbnail import N_FFT, ThumbnailError, frame_centres, spectrogram_image, spectrogram_png

SR = 24000
MODEL = {"name": "pads", "id": "0123456789ab", "lineage": ["run-1"]}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# 24-bit FLAC: libsndfile writes x·(2²³-1) rounded and reads k/2²³, so a sample comes back within
# |x|·2⁻²³ + 2⁻²⁴ ≤ 1.5·2⁻²³ of itself
FLAC_TOLERANCE = 1.5 * 2.0**-23


def take(seconds=0.2, channels=2, seed=0, rate=SR, level=0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((int(seconds * rate), channels)) * level
    return x.astype(np.float32)


def sine(freq, seconds=1.0, rate=48000, amplitude=0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


@pytest.fixture
def hist(tmp_path):
    return History.open(tmp_path / "history", max_entries=50, max_mb=100)


def add(h, seed=0, **parameters):
    return h.add(take(seed=seed), SR, {"seed": seed, **parameters}, MODEL, source="cli")


def no_warnings(function):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function()
    assert [str(w.message) for w in caught if issubclass(w.category, HistoryWarning)] == []
    return result


# --- thumbnails -------------------------------------------------------------------------------------------------------


def test_thumbnail_is_a_png_of_the_requested_size():
    for shape, (width, height) in [((4800,), (256, 96)), ((4800, 2), (64, 40)), ((100,), (300, 200))]:
        data = spectrogram_png(take(0.1, 1)[:, 0].reshape(-1) if len(shape) == 1 else take(0.1, 2), 48000,
                               width, height)
        assert data[:8] == PNG_SIGNATURE
        assert Image.open(io.BytesIO(data)).size == (width, height)


def test_thumbnail_matches_a_plain_stft_log_mel_with_low_frequencies_at_the_bottom():
    # 2 s at 48 kHz: 188 frames, all analysed (under 8 per column): the blocked gather must give
    # exactly the centred STFT's mel power, pooled by column
    rate, width, height = 48000, 32, 48
    x = take(2.0, 2, seed=3, rate=rate) + sine(3000, 2.0, rate)[:, None]
    image = spectrogram_image(x, rate, width, height)
    power = stft(torch.from_numpy(x.mean(axis=1)).double()[None], N_FFT, 512)[0].abs().square()
    mel = (band_average_weights(rate, N_FFT, height) @ power).numpy().T  # (frames, height)
    centres = frame_centres(len(x), width)
    assert len(centres) == mel.shape[0]
    column = centres * width // len(x)
    pooled = np.stack([mel[column == c].mean(axis=0) for c in range(width)])
    level = 10 * np.log10(np.maximum(pooled / pooled.max(), 1e-8))
    np.testing.assert_allclose(image, (1 + level / 80).T, atol=1e-4)
    # the sine's band is the brightest row; in the PNG row 0 is the top, so it sits height-1-band from the top
    band = int(np.argmin(np.abs(band_centres_bins(rate, N_FFT, height).numpy() - 3000 * N_FFT / rate)))
    assert int(np.argmax(image.mean(axis=1))) == band
    grey = np.asarray(Image.open(io.BytesIO(spectrogram_png(x, rate, width, height))).convert("L"), float)
    assert int(np.argmax(grey.mean(axis=1))) == height - 1 - band


def test_thumbnail_low_tone_lower_than_high_tone_and_silence_is_black():
    def brightest_row_from_top(freq):
        grey = np.asarray(Image.open(io.BytesIO(spectrogram_png(sine(freq), 48000))).convert("L"), float)
        return int(np.argmax(grey.mean(axis=1)))

    assert brightest_row_from_top(200) > brightest_row_from_top(1000) > brightest_row_from_top(8000)
    assert spectrogram_image(np.zeros(48000, np.float32), 48000).max() == 0.0


def test_thumbnail_of_ten_minutes_is_bounded_and_shows_where_things_happen():
    # a 10-minute 48 kHz stereo take, quiet noise, with a 2 kHz tone in the second half only
    rate, seconds = 48000, 600
    x = np.tile(take(1.0, 2, seed=1, rate=rate, level=0.01), (seconds, 1))
    x[len(x) // 2:] += sine(2000, seconds / 2, rate, 0.3)[:, None]
    start = time.perf_counter()
    image = spectrogram_image(x, rate)
    elapsed = time.perf_counter() - start
    band = int(np.argmin(np.abs(band_centres_bins(rate, N_FFT, 96).numpy() - 2000 * N_FFT / rate)))
    assert image[band, 140:].min() > 0.95 and image[band, :120].max() < 0.7
    assert elapsed < 10.0  # 0.2–0.5 s measured on 2 cores: at most 2048 frames whatever the length


def test_thumbnail_refuses_bad_input_naming_it():
    for args, field in [((np.zeros((0,), np.float32), 48000), "audio"), ((np.zeros(10, np.int16), 48000), "audio"),
                        ((np.zeros((2, 2, 2), np.float32), 48000), "audio"), ((np.zeros(10), 0), "sample_rate"),
                        ((np.zeros(10), 48000, 0), "width"), ((np.zeros(10), 48000, 8, 10**5), "height"),
                        ((np.full(10, np.nan), 48000), "audio")]:
        with pytest.raises(ThumbnailError, match=f"^{field}:"):
            spectrogram_png(*args)


# --- recording and reading --------------------------------------------------------------------------------------------


def test_add_list_get_and_read_back(hist, tmp_path):
    stereo = take(0.5, 2, seed=1)
    mono = sine(1000, 0.5, SR)
    parameters = {"seed": 7, "duration": 0.5, "sliders": {"brightness": 0.25, "warmth": -1.0},
                  "spatial": {"mode": "stereo", "width": 0.5}, "blend": None, "evolution": [[0, 1], [1, 2]],
                  "numpy": np.float32(0.5)}
    first = hist.add(stereo, SR, parameters, MODEL, source="ui")
    second = hist.add(mono, SR, {"seed": 8}, {"name": "other", "id": "ffffffffffff", "lineage": []})
    assert [e.id for e in hist.list()] == [second.id, first.id]
    assert first.parameters == {**parameters, "numpy": 0.5} and first.model == MODEL and first.source == "ui"
    assert (first.channels, first.sample_rate, first.duration) == (2, SR, 0.5) and second.channels == 1
    root = tmp_path / "history"
    for entry in (first, second):
        folder = root / "entries" / entry.id
        assert (entry.audio, entry.thumbnail) == (f"entries/{entry.id}/take.flac",
                                                  f"entries/{entry.id}/spectrogram.png")
        assert json.loads((folder / "entry.json").read_text()) == entry.to_dict()
        assert entry.bytes == sum(p.stat().st_size for p in folder.iterdir())
        assert hist.audio_location(entry) == str(folder / "take.flac")
        assert hist.read_thumbnail(entry)[:8] == PNG_SIGNATURE
        assert HistoryEntry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry
    audio, rate = hist.read_audio(first)
    assert rate == SR and audio.dtype == np.float32 and audio.shape == stereo.shape
    assert np.abs(audio - stereo).max() <= FLAC_TOLERANCE
    audio, _ = hist.read_audio("latest")
    assert audio.shape == (len(mono), 1) and np.abs(audio[:, 0] - mono).max() <= FLAC_TOLERANCE
    assert sf.info(str(root / second.audio)).subtype == "PCM_24"
    # a fresh History object reads the same entries from the folder
    again = History.open(root, max_entries=50, max_mb=100)
    assert again.list() == [second, first] and again.get(first.id) == first
    assert hist.list(model="pads") == [first] and hist.list(model="ffffffffffff") == [second]
    assert hist.list(limit=1) == [second] and hist.list(model="nobody") == []


def test_references_id_prefix_suffix_latest_and_positions(hist):
    entries = [add(hist, seed) for seed in range(3)]
    newest = entries[-1]
    assert hist.get(newest.id) == newest and hist.get(newest.id.upper()) == newest
    assert hist.get("latest") == hist.get("1") == newest and hist.get(" 3 ") == entries[0]
    assert hist.get(newest.id[-6:]) == newest  # the hex part alone
    assert hist.get(newest.id[:-1]) == newest  # a prefix unique to it
    common = os.path.commonprefix([e.id for e in entries])
    assert len(common) >= 8
    with pytest.raises(AmbiguousEntry, match=f"'{common}' matches 3 history entries") as info:
        hist.get(common)
    assert info.value.candidates == entries[::-1]
    for ref in ("zzzzzz", "4", "0", "abc"):
        with pytest.raises(UnknownEntry, match=f"'{ref}'"):
            hist.get(ref)
    with pytest.raises(UnknownEntry, match="no history entry given"):
        hist.get("  ")


def test_ids_sort_by_time_and_stay_unique_within_one_second(hist, monkeypatch):
    frozen = datetime(2026, 11, 21, 10, 30, 0, 500000, tzinfo=timezone.utc)

    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return frozen

    monkeypatch.setattr(history_module, "_last_created", datetime.min.replace(tzinfo=timezone.utc))
    monkeypatch.setattr(history_module, "datetime", FrozenClock)
    made = [hist.add(take(0.05, 1, seed=i), SR, {"seed": i}, MODEL) for i in range(4)]
    ids = [e.id for e in made]
    assert all(i.startswith("20261121-103000-") for i in ids) and len(set(ids)) == 4 and sorted(ids) == ids
    assert [e.created for e in made] == sorted(e.created for e in made)
    assert made[0].created.startswith("2026-11-21T10:30:00.5") and made[0].created.endswith("+00:00")
    monkeypatch.undo()
    assert [e.id for e in hist.list()] == ids[::-1]


def test_measures_are_the_levels_and_descriptors_of_the_take(hist, monkeypatch):
    monkeypatch.setattr(take_measures, "MEASURE_SECONDS", 0.5)
    rate = 48000
    x = np.stack([sine(1000, 1.0, rate), sine(1000, 1.0, rate)], axis=1)
    x[rate // 2:] = take(0.5, 2, seed=2, rate=rate, level=0.05)  # the second half is not described
    measures = hist.add(x, rate, {}, MODEL).measures
    assert measures["peak_dbfs"] == pytest.approx(20 * np.log10(0.5), abs=1e-4)
    expected_rms = 10 * np.log10(np.mean(np.square(x.astype(np.float64))))
    assert measures["rms_dbfs"] == pytest.approx(expected_rms, abs=1e-6)
    assert measures["loudness_lufs"] == pytest.approx(integrated_loudness(x, rate), abs=1e-9)
    assert measures["true_peak_dbtp"] == pytest.approx(true_peak_dbtp(x, rate), abs=1e-9)
    described = describe(x[: rate // 2].mean(axis=1), rate)
    assert {k: measures[k] for k in described} == pytest.approx(described)
    # digital silence: levels that are -inf are recorded as None (JSON has no infinity)
    silent = hist.add(np.zeros((4800, 2), np.float32), rate, {}, MODEL).measures
    assert silent["peak_dbfs"] is silent["rms_dbfs"] is silent["loudness_lufs"] is None
    # an over is clipped in the file, and shows in the measures of the take as given
    over = hist.add(np.full((4800, 1), 1.5, np.float32), rate, {}, MODEL)
    assert over.measures["peak_dbfs"] == pytest.approx(20 * np.log10(1.5), abs=1e-5)
    assert np.abs(hist.read_audio(over)[0]).max() <= 1.0


def test_bad_takes_are_refused_naming_the_argument(hist):
    good = take()
    for kwargs, field in [({"audio": np.zeros((100, 2), np.int16)}, "audio"),
                          ({"audio": np.full((100, 1), np.nan, np.float32)}, "audio"),
                          ({"audio": np.zeros((100, 9), np.float32)}, "audio"),
                          ({"audio": np.zeros((0,), np.float32)}, "audio"),
                          ({"sample_rate": 0}, "sample_rate"), ({"sample_rate": 48000.0}, "sample_rate"),
                          ({"parameters": {"x": float("nan")}}, "parameters"),
                          ({"parameters": {"x": object()}}, "parameters"), ({"model": "pads"}, "model"),
                          ({"source": "Not a word!"}, "source")]:
        arguments = {"audio": good, "sample_rate": SR, "parameters": {}, "model": MODEL} | kwargs
        with pytest.raises(HistoryError, match=f"^{field}:"):
            hist.add(**arguments)
    assert hist.list() == [] and not os.path.exists(hist.store.path("entries"))  # nothing written


# --- the bound --------------------------------------------------------------------------------------------------------


def test_never_more_than_max_entries_oldest_removed_first(tmp_path):
    h = History.open(tmp_path / "h", max_entries=3, max_mb=100)
    made = []
    for seed in range(6):
        made.append(add(h, seed))
        kept = h.list()
        assert len(kept) == min(seed + 1, 3) and kept == made[::-1][:3]
    folders = sorted(os.listdir(tmp_path / "h" / "entries"))
    assert folders == sorted(e.id for e in made[3:])


def test_never_more_than_max_mb_and_a_take_larger_than_the_bound_is_kept_alone(tmp_path):
    one = add(History.open(tmp_path / "probe", max_entries=50, max_mb=100)).bytes
    h = History.open(tmp_path / "h", max_entries=50, max_mb=2.5 * one / 1e6)  # room for two such takes
    made = [add(h, seed) for seed in range(5)]
    kept = h.list()
    assert kept == made[::-1][:2] and sum(e.bytes for e in kept) <= h.max_mb * 1e6
    assert sorted(os.listdir(tmp_path / "h" / "entries")) == sorted(e.id for e in kept)
    big = h.add(take(1.0, 2, seed=9), SR, {"seed": 9}, MODEL)  # ~5 times the bound by itself
    assert big.bytes > h.max_mb * 1e6 and h.list() == [big]
    assert os.listdir(tmp_path / "h" / "entries") == [big.id]


def test_bounds_come_from_the_settings_unless_given(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_SETTINGS", str(tmp_path / "settings.toml"))
    (tmp_path / "settings.toml").write_text('history_max_entries = 7\nhistory_max_mb = 12.5\n')
    monkeypatch.setenv("DISTILL_HISTORY", str(tmp_path / "from-env"))
    monkeypatch.setenv("DISTILL_HISTORY_MAX_ENTRIES", "2")
    h = History.open()
    assert (h.location, h.max_entries, h.max_mb) == (str(tmp_path / "from-env"), 2, 12.5)
    h = History.open(tmp_path / "given", max_entries=5)
    assert (h.location, h.max_entries, h.max_mb) == (str(tmp_path / "given"), 5, 12.5)
    for kwargs, field in [({"max_entries": 0}, "max_entries"), ({"max_entries": 2.5}, "max_entries"),
                          ({"max_mb": 0}, "max_mb"), ({"max_mb": float("inf")}, "max_mb")]:
        with pytest.raises(HistoryError, match=f"^{field}:"):
            History.open(tmp_path / "x", **kwargs)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(HistoryError, match="is a file"):
        History.open(tmp_path / "a-file", max_entries=1, max_mb=1)


def test_concurrent_adds_all_land_in_the_index(tmp_path):
    h = History.open(tmp_path / "h", max_entries=50, max_mb=100)
    errors = []

    def worker(offset):
        try:
            other = History.open(tmp_path / "h", max_entries=50, max_mb=100)  # as another process would
            for seed in range(offset, offset + 4):
                add(other, seed)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k * 10,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(e.parameters["seed"] for e in no_warnings(h.list)) == [0, 1, 2, 3, 10, 11, 12, 13]


# --- self-repair ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", [b"\x00\xff garbage \x13", b'{"version": 1, "entries": [{"id": "2026',
                                    b'{"version": 1, "entries": "none"}', b"[1, 2, 3]",
                                    b'{"version": 1, "entries": [{"id": "../../etc"}]}'])
def test_damaged_index_recovers_from_the_backup_and_the_newest_from_its_folder(hist, tmp_path, damage):
    older, newest = add(hist, 0), add(hist, 1)
    index = tmp_path / "history" / "index.json"
    assert [e["id"] for e in json.loads((index.parent / "index.json.bak").read_text())["entries"]] == [older.id]
    index.write_bytes(damage)
    with pytest.warns(HistoryWarning) as caught:
        entries = hist.list()
    messages = " | ".join(str(w.message) for w in caught)
    assert "recovered the previous version from" in messages and f"added back 1 entry from its folder ({newest.id})" \
        in messages
    assert entries == [newest, older]
    assert no_warnings(hist.list) == [newest, older]  # the repaired index was written back
    assert [e["id"] for e in json.loads(index.read_text())["entries"]] == [older.id, newest.id]


def test_index_and_backup_both_damaged_are_rebuilt_from_the_folders(hist, tmp_path):
    made = [add(hist, seed) for seed in range(3)]
    root = tmp_path / "history"
    (root / "index.json").write_text("{")
    (root / "index.json.bak").write_bytes(b"\xff")
    with pytest.warns(HistoryWarning) as caught:
        assert hist.list() == made[::-1]
    messages = [str(w.message) for w in caught]
    assert "index.json is unreadable" in messages[0] and "and its backup is unreadable" in messages[0]
    assert f"added back 3 entries from their folders ({', '.join(e.id for e in made)})" in messages[1]
    assert no_warnings(hist.list) == made[::-1]
    (root / "index.json").unlink()
    (root / "index.json.bak").unlink()
    assert no_warnings(hist.list) == made[::-1]  # just made: rebuilt quietly (an add may be finishing)


def test_entries_whose_folder_is_gone_are_dropped(hist, tmp_path):
    kept, gone = add(hist, 0), add(hist, 1)
    (tmp_path / "history" / gone.audio).unlink()
    with pytest.warns(HistoryWarning, match=f"dropped {gone.id}"):
        assert hist.list() == [kept]
    assert no_warnings(hist.list) == [kept]


def test_incomplete_and_damaged_folders(hist, tmp_path):
    entry = add(hist, 0)
    entries = tmp_path / "history" / "entries"
    young, old = entries / "20261121-000000-aaaaaa", entries / "20261121-000000-bbbbbb"
    for folder in (young, old):
        folder.mkdir()
        (folder / "take.flac").write_bytes(b"half a take")
    long_ago = time.time() - 3600
    for path in (old / "take.flac", old):
        os.utime(path, (long_ago, long_ago))
    # a folder that is still being written is left alone, quietly; an old incomplete one is removed
    with pytest.warns(HistoryWarning, match="removed an incomplete entry") as caught:
        assert hist.list() == [entry]
    assert len(caught) == 1 and young.exists() and not old.exists()
    # a damaged entry.json beside its audio: left out with a warning, never deleted
    damaged = entries / entry.id / "entry.json"
    damaged.write_text('{"id": "nonsense"}')
    (tmp_path / "history" / "index.json").unlink()
    with pytest.warns(HistoryWarning, match="entry.json: damaged"):
        assert hist.list() == []
    assert (entries / entry.id / "take.flac").exists()
    (entries / "not-an-entry").mkdir()
    with pytest.warns(HistoryWarning) as caught:
        hist.list()
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2 and "entry.json: damaged" in messages[0] and "not a history entry folder" in messages[1]


# --- A/B, delete, clear -----------------------------------------------------------------------------------------------


def test_compare_gives_the_parameter_differences_and_the_measures(hist):
    a = hist.add(take(seed=1), SR, {"seed": 1, "sliders": {"brightness": 0.1, "warmth": 0.0},
                                    "spatial": {"mode": "stereo", "width": 0.5}, "only_a": True}, MODEL)
    b = hist.add(take(seed=2, level=0.05), SR, {"seed": 2, "sliders": {"brightness": 0.7, "warmth": 0.0},
                                                 "spatial": {"mode": "stereo", "width": 1.0}}, MODEL)
    result = hist.compare(a.id, "latest")
    assert result["a"] == a.to_dict() and result["b"] == b.to_dict()
    assert result["differences"] == {"seed": [1, 2], "sliders.brightness": [0.1, 0.7],
                                     "spatial.width": [0.5, 1.0], "only_a": [True, None]}
    assert set(result["measures"]) == set(a.measures)
    for name, row in result["measures"].items():
        assert (row["a"], row["b"]) == (a.measures[name], b.measures[name])
        assert row["difference"] == pytest.approx(b.measures[name] - a.measures[name])
    assert result["measures"]["rms_dbfs"]["difference"] == pytest.approx(20 * np.log10(0.05 / 0.2), abs=0.5)
    assert hist.compare("1", "1")["differences"] == {}


def test_delete_and_clear(hist, tmp_path):
    made = [add(hist, seed) for seed in range(4)]
    entries = tmp_path / "history" / "entries"
    assert hist.delete("2") == made[2]
    assert not (entries / made[2].id).exists() and hist.list() == [made[3], made[1], made[0]]
    with pytest.raises(UnknownEntry, match=made[2].id):
        hist.get(made[2].id)
    assert hist.clear() == 3
    assert no_warnings(hist.list) == [] and os.listdir(entries) == []
    assert hist.clear() == 0
