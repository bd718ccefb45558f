"""Dataset preparation end to end on a real local Ray: shards, split, statistics, incremental rebuilds."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from distill.prepare import NeedsConfirmation, NoUsableAudio, check_cache
from distill.prepare_config import AugmentConfig, PrepareConfig
from distill.ray_layer.prepare import prepare_dataset
from distill.shards import read_shard

CFG = PrepareConfig(chunk_seconds=1.0, val_fraction=0.2, augment=AugmentConfig(expansion=2))
FILES = ("pluck_a2.wav", "bell_c5.wav", "kick.wav", "snare.wav", "melody.wav", "bell_g3.flac")


def _copy(example_dir: Path, dest: Path, names=FILES) -> Path:
    dest.mkdir(parents=True)
    for name in names:
        shutil.copy2(example_dir / name, dest / name)
    return dest


def _manifest(folder: Path) -> dict:
    return json.loads((folder / ".distill/cache/manifest.json").read_text())


def _rows(folder: Path) -> dict[str, np.ndarray]:
    """Every row of the cache, read with plain pyarrow through the manifest."""
    parts = [read_shard(folder / ".distill/cache" / s["path"]) for s in _manifest(folder)["shards"]]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _no_ray(cfg, store):
    raise AssertionError("Ray must not start for an up-to-date cache")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, example_dir, local_ray):
    folder = _copy(example_dir, tmp_path_factory.mktemp("prep") / "data")
    return folder, prepare_dataset(folder, cfg=CFG, yes=True)


def test_prepared_rows_split_and_schema(prepared):
    folder, result = prepared
    assert result.files_ok == len(FILES) and result.files_skipped == []
    assert sorted(result.processed_files) == sorted(FILES) and result.reused_files == []
    table = pq.read_table(folder / ".distill/cache" / _manifest(folder)["shards"][0]["path"])
    assert table.schema.field("spec").type.shape == [2, 128, CFG.frames]
    rows = _rows(folder)
    assert rows["spec"].shape[1:] == CFG.spec_shape and np.isfinite(rows["spec"]).all()
    assert len(rows["source"]) == result.rows_train + result.rows_val
    train = {s for s, sp in zip(rows["source"], rows["split"], strict=True) if sp == "train"}
    val = {s for s, sp in zip(rows["source"], rows["split"], strict=True) if sp == "val"}
    assert val and train and not train & val  # no file on both sides
    assert set(rows["variant"][rows["split"] == "val"]) == {0}  # validation is clean chunks only
    augmented = rows["variant"] > 0
    assert augmented.any() and (rows["split"][augmented] == "train").all()
    clean = rows["variant"] == 0
    assert (rows["speed"][clean] == 1).all() and np.isnan(rows["noise_snr_db"][clean]).all()
    changed = (rows["speed"] != 1) | (rows["pitch_semitones"] != 0) | (rows["gain"] != 1)
    assert changed[augmented].mean() > 0.5  # parameters actually applied are recorded
    manifest = _manifest(folder)
    for rel, entry in manifest["files"].items():  # every chunk of every file, every variant
        expected = entry["num_chunks"] * (1 + 2 if entry["split"] == "train" else 1)
        assert entry["rows"] == expected == int((rows["source"] == rel).sum())
    assert manifest["totals"]["rows_train"] == result.rows_train


def test_statistics_come_from_training_rows_only(prepared):
    folder, _ = prepared
    rows = _rows(folder)
    stats = _manifest(folder)["stats"]
    train = rows["spec"][rows["split"] == "train"].astype(np.float64)
    assert np.allclose(stats["mean"], train.mean(axis=(0, 3)), atol=1e-4)
    assert np.allclose(stats["std"], train.std(axis=(0, 3)), atol=1e-4)
    everything = rows["spec"].astype(np.float64)
    assert not np.allclose(stats["mean"], everything.mean(axis=(0, 3)), atol=1e-4)
    from distill.stats import SpectralStats
    assert SpectralStats.from_dict(stats).mean.shape == (2, 128)


def test_unchanged_rerun_reuses_everything_without_ray(prepared):
    folder, first = prepared
    from distill.prepare import prepare
    again = prepare(folder, cfg=CFG, executor_factory=_no_ray)
    assert again.fresh and again.processed_files == [] and sorted(again.reused_files) == sorted(FILES)
    assert (again.rows_train, again.rows_val, again.bytes) == (first.rows_train, first.rows_val, first.bytes)
    assert check_cache(folder, cfg=CFG).fresh
    assert not check_cache(folder, cfg=replace(CFG, chunk_seconds=1.5)).fresh


def test_touch_remove_add_and_config_change(tmp_path, example_dir, local_ray):
    folder = _copy(example_dir, tmp_path / "data", FILES[:4])
    first = prepare_dataset(folder, cfg=CFG, yes=True)
    before = _rows(folder)
    kick = folder / "kick.wav"
    kick.touch()
    touched = prepare_dataset(folder, cfg=CFG, yes=True)
    assert touched.processed_files == ["kick.wav"] and len(touched.reused_files) == 3
    after = _rows(folder)
    order = lambda r: np.lexsort((r["variant"], r["chunk"], r["source"]))  # noqa: E731
    assert np.array_equal(before["spec"][order(before)], after["spec"][order(after)])  # same rows again
    old_dirs = set((folder / ".distill/cache/shards").iterdir())
    (folder / "snare.wav").unlink()
    removed = prepare_dataset(folder, cfg=CFG, yes=True)
    assert removed.removed_files == ["snare.wav"]
    # Nothing else is rebuilt, except one file moved into validation if snare was the held-out one.
    assert len(removed.processed_files) <= 1
    assert all(_manifest(folder)["files"][r]["split"] == "val" for r in removed.processed_files)
    assert "snare.wav" not in set(_rows(folder)["source"])
    shard_dirs = set((folder / ".distill/cache/shards").iterdir())
    assert len(shard_dirs) == len(old_dirs) - 1  # its shards (and any re-split file's old ones) are gone
    shutil.copy2(example_dir / "melody.wav", folder / "melody.wav")
    added = prepare_dataset(folder, cfg=CFG, yes=True)
    assert "melody.wav" in added.processed_files and len(added.processed_files) <= 2  # + at most one re-split
    rebuilt = prepare_dataset(folder, cfg=replace(CFG, chunk_seconds=0.5), yes=True)
    assert sorted(rebuilt.processed_files) == sorted(p.name for p in folder.glob("*.wav"))
    assert "settings changed" in rebuilt.reason and rebuilt.rows_train > added.rows_train
    assert _manifest(folder)["config"]["chunk_seconds"] == 0.5
    assert first.rows_train > 0


def _bad_files(folder: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "lyrics.wav").write_text("not audio at all\n" * 50)
    sf.write(str(folder / "whole.wav"), rng.uniform(-0.5, 0.5, 48000).astype(np.float32), 48000)
    data = (folder / "whole.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])
    (folder / "whole.wav").unlink()
    nan = rng.uniform(-0.5, 0.5, 48000).astype(np.float32)
    nan[100] = np.nan
    sf.write(str(folder / "nan.wav"), nan, 48000, subtype="FLOAT")
    sf.write(str(folder / "silence.wav"), np.zeros(48000, np.float32), 48000)
    sf.write(str(folder / "blip.wav"), rng.uniform(-0.5, 0.5, 480).astype(np.float32), 48000)  # 10 ms
    return {"empty.wav": "empty", "lyrics.wav": "not a readable audio file", "truncated.wav": "truncated",
            "nan.wav": "NaN", "silence.wav": "silence", "blip.wav": "too short"}


def test_bad_files_are_skipped_with_reasons(tmp_path, example_dir, local_ray):
    folder = _copy(example_dir, tmp_path / "data", ("kick.wav", "pluck_e4.wav"))
    expected = _bad_files(folder)
    result = prepare_dataset(folder, cfg=CFG, yes=True)
    assert result.files_ok == 2
    reasons = {item["path"]: item["reason"] for item in result.files_skipped}
    assert set(reasons) == set(expected)
    for name, fragment in expected.items():
        assert fragment in reasons[name], (name, reasons[name])
    assert prepare_dataset(folder, cfg=CFG, yes=True).fresh  # bad files are remembered, not retried


def test_only_bad_files_is_an_error(tmp_path, local_ray):
    folder = tmp_path / "bad"
    folder.mkdir()
    expected = _bad_files(folder)
    with pytest.raises(NoUsableAudio) as info:
        prepare_dataset(folder, cfg=CFG, yes=True)
    assert "none of the 6 audio files" in str(info.value)
    assert {item["path"] for item in info.value.skipped} == set(expected)
    assert not (folder / ".distill/cache/manifest.json").exists()


def test_five_short_clips(tmp_path, local_ray):
    folder = tmp_path / "clips"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i, seconds in enumerate((1.0, 1.2, 1.5, 1.8, 2.0)):
        t = np.arange(int(seconds * 44100)) / 44100
        tone = 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) * np.exp(-2 * t) + 0.01 * rng.normal(size=t.size)
        sf.write(str(folder / f"clip{i}.wav"), tone.astype(np.float32), 44100)
    result = prepare_dataset(folder, cfg=replace(CFG, chunk_seconds=2.0), yes=True)
    assert result.files_ok == 5 and result.rows_val >= 1 and result.rows_train >= 4 * 3
    assert all(e["num_chunks"] == 1 for e in _manifest(folder)["files"].values())  # short clips give a chunk


def test_large_estimate_needs_confirmation(tmp_path, example_dir):
    folder = _copy(example_dir, tmp_path / "data", ("kick.wav",))
    with pytest.raises(NeedsConfirmation, match="--yes"):
        prepare_dataset(folder, cfg=CFG, confirm_above_bytes=1)
    asked = []
    from distill.prepare import PrepareError
    with pytest.raises(PrepareError, match="cancelled"):
        prepare_dataset(folder, cfg=CFG, confirm_above_bytes=1, confirm=lambda q: asked.append(q) or False)
    assert "estimated disk use" in asked[0]
    assert not (folder / ".distill/cache/manifest.json").exists()


def test_cache_elsewhere_given_as_a_uri_leaves_the_dataset_untouched(tmp_path, example_dir, local_ray):
    folder = _copy(example_dir, tmp_path / "data", ("kick.wav", "pluck_e4.wav"))
    result = prepare_dataset(folder, cache=f"file://{tmp_path}/elsewhere", cfg=CFG, yes=True)
    assert result.files_ok == 2 and (tmp_path / "elsewhere/manifest.json").exists()
    assert not (folder / ".distill").exists()


def test_reading_a_split_with_ray_data_and_with_pyarrow(prepared):
    folder, result = prepared
    from distill.prepared import PreparedDataset
    from distill.ray_layer.prepare import read_split

    cache = PreparedDataset.open(str(folder / ".distill/cache"))
    assert cache.config == CFG and cache.stats.mean.shape == (2, 128)
    train = cache.read("train")
    assert len(train["spec"]) == result.rows_train == cache.num_rows("train")
    batch = next(iter(read_split(cache, "val").iter_batches(batch_size=4, batch_format="numpy")))
    assert batch["spec"].shape[1:] == CFG.spec_shape and set(batch["split"]) == {"val"}
    normalised = cache.stats.normalize(__import__("torch").from_numpy(train["spec"]))
    assert abs(float(normalised.mean())) < 0.05 and abs(float(normalised[:, 0].std()) - 1) < 0.1
    with pytest.raises(ValueError, match="split"):
        cache.shard_paths("test")


def test_one_writer_per_cache_and_unwritable_cache(tmp_path, example_dir, local_ray):
    import os
    import socket

    from distill.prepare import PrepareError

    folder = _copy(example_dir, tmp_path / "data", ("kick.wav",))
    lock = folder / ".distill/cache/.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{socket.gethostname()} {os.getpid()}")  # a live writer
    with pytest.raises(PrepareError, match="another `distill prepare`"):
        prepare_dataset(folder, cfg=CFG, yes=True)
    lock.write_text(f"{socket.gethostname()} 999999999")  # left by a killed run
    assert prepare_dataset(folder, cfg=CFG, yes=True).files_ok == 1
    assert not lock.exists()
    # A cache that cannot be created (tests run as root, so a file stands in the way, not a mode).
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(PrepareError, match="--cache"):
        prepare_dataset(folder, cache=str(tmp_path / "a-file" / "cache"), cfg=CFG, yes=True)


def test_a_failing_task_is_a_readable_error_and_keeps_finished_work(tmp_path, example_dir, local_ray):
    from distill.prepare import PrepareError

    folder = _copy(example_dir, tmp_path / "data", ("kick.wav",))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "shards").write_text("a file where the shard folder should be")  # every write fails
    with pytest.raises(PrepareError, match="Ray pipeline failed while building"):
        prepare_dataset(folder, cache=str(cache), cfg=CFG, yes=True)
    (cache / "shards").unlink()
    assert prepare_dataset(folder, cache=str(cache), cfg=CFG, yes=True).files_ok == 1


def test_stored_rows_carry_what_their_parameters_say(tmp_path, local_ray):
    """End to end: a steady 440 Hz tone through the pipeline; each row's pitch and level match its columns."""
    from distill.representation import band_geometry

    folder = tmp_path / "tone"
    folder.mkdir()
    t = np.arange(3 * 48000) / 48000
    sf.write(str(folder / "a440.wav"), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)
    cfg = replace(CFG, chunk_seconds=1.0, val_fraction=0.0, augment=AugmentConfig(expansion=12))
    prepare_dataset(folder, cfg=cfg, yes=True)
    rows = _rows(folder)
    geo = band_geometry(cfg.spectral)
    middle = slice(20, 70)  # frames well inside the chunk
    clean_level, pitched, gained = {}, 0, 0
    for i in np.lexsort((rows["variant"], rows["chunk"])):
        spec = rows["spec"][i][:, :, middle].astype(np.float64)
        band = int(np.argmax(spec[0].mean(axis=1)))
        freq_bins = geo.centres[band].item() + np.median(spec[1, band]) * geo.reach[band].item()
        freq = freq_bins * 48000 / cfg.spectral.n_fft
        expected = 440 * 2 ** (rows["pitch_semitones"][i] / 12)  # speed must not move the pitch
        assert abs(freq / expected - 1) < 0.01, (rows["variant"][i], freq, expected)
        pitched += rows["pitch_semitones"][i] != 0
        level, chunk = spec[0, band].mean(), rows["chunk"][i]
        if rows["variant"][i] == 0:
            clean_level[chunk] = level
        elif np.isnan(rows["noise_snr_db"][i]) and rows["pitch_semitones"][i] == 0 and rows["speed"][i] == 1:
            assert abs(level - clean_level[chunk] - np.log(rows["gain"][i])) < 0.02  # gain shifts log amplitude
            gained += rows["gain"][i] != 1
    assert pitched >= 5 and gained >= 1


def test_long_file_is_split_into_tasks_that_read_only_their_part(tmp_path, local_ray):
    """A 40 s file at 44.1 kHz spans three tasks; every row equals the analysis of the whole decoded file."""
    import torch

    from distill.audio_io import load_audio
    from distill.chunking import chunk_starts
    from distill.prepare import TASK_CHUNKS
    from distill.representation import analyze

    folder = tmp_path / "long"
    folder.mkdir()
    t = np.arange(40 * 44100) / 44100
    sweep = 0.3 * np.sin(2 * np.pi * (200 * t + 20 * t**2)) + 0.02 * np.random.default_rng(2).normal(size=t.size)
    sf.write(str(folder / "sweep.wav"), sweep.astype(np.float32), 44100)
    cfg = replace(CFG, chunk_seconds=2.0, val_fraction=0.0, augment=AugmentConfig(expansion=0))
    prepare_dataset(folder, cfg=cfg, yes=True)
    rows = _rows(folder)
    whole = load_audio(folder / "sweep.wav")
    starts = chunk_starts(len(whole), cfg.chunk_length, cfg.min_tail)
    assert len(starts) == 20 > 2 * TASK_CHUNKS and sorted(rows["chunk"].tolist()) == list(range(20))
    for chunk in (0, TASK_CHUNKS - 1, TASK_CHUNKS, 2 * TASK_CHUNKS + 1, 19):
        piece = np.zeros(cfg.chunk_length, np.float32)
        part = whole[starts[chunk]:starts[chunk] + cfg.chunk_length]
        piece[:len(part)] = part
        expected = analyze(torch.from_numpy(piece)[None], cfg.spectral)[0].numpy()
        stored = rows["spec"][rows["chunk"] == chunk][0]
        assert np.abs(stored - expected).max() < 0.02, chunk  # float16 storage, nothing else
