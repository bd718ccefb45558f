"""The stages of dataset preparation as plain functions over rows and numpy batches (no Ray here).

The Ray layer strings them into a Ray Data pipeline; each is usable on its own:

``validate_file``  one file → its content hash, length and usability (or the reason it is unusable)
``decode_chunks``  one task (a file and a range of its chunks) → one row per chunk window
``augment_batch``  chunk windows → one row per variant (1 for validation files, 1 + expansion else)
``analyze_batch``  variant audio → 2-channel spectrograms, rounded to the storage type
``write_batch``    spectrogram rows → Parquet shard parts (atomic) → one small record per part

A task that fails (the file changed or vanished after validation) travels through the later stages
as a single marker row with ``error`` set, so the driver hears about it instead of waiting forever.
Every stage adds the seconds it spent to ``t_<stage>`` so the benchmark can break time down by stage.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from distill.audio_io import AudioFileError, load_audio_with_info, load_segment
from distill.augment import apply_params, draw_params, variant_rng
from distill.chunking import chunk_starts, cut_windows, segment_span, window_length
from distill.manifest import SHARDS_DIR
from distill.prepare_config import PrepareConfig
from distill.representation import analyze
from distill.shards import PARAM_COLUMNS, build_table, table_to_bytes
from distill.source_folder import file_sha256, stat_file
from distill.split import TRAIN
from distill.storage import Store
from distill.vocoder import analyse as vocoder_analyse

PEAK_TARGET = 10 ** (-1 / 20)  # -1 dBFS, for file_normalize="peak"
STAGES = ("decode", "augment", "analyze", "write")
# Rows per analysis call. One: on CPU the (rows, 1025, frames) temporaries of a bigger batch fall
# out of cache and every row gets slower (measured per 2 s row: 5.7 ms alone, 7.6 ms in fours,
# 8.1 ms in sixteens). Preparation runs on CPU workers; a GPU path would batch.
ANALYZE_ROWS = 1


def validate_file(item: dict, cfg: PrepareConfig) -> dict:
    """``{"rel", "path", "size", "mtime_ns"}`` → the same plus ``ok``, ``reason``, ``sha256``,
    ``duration`` (s) and ``num_samples`` at the working rate, ``num_chunks``, ``peak`` (amplitude),
    ``sample_rate``/``channels`` (the file's own) — a full decode, so anything that would fail later
    fails here, once; the build then reads only the segments it needs."""
    path = item["path"]  # a local path or a storage URI
    out = {**item, "ok": False, "reason": "", "sha256": "", "duration": 0.0, "num_samples": 0, "num_chunks": 0,
           "peak": 0.0, "sample_rate": 0, "channels": 0}
    try:
        st = stat_file(path)
        if (st.size, st.mtime_ns) != (item["size"], item["mtime_ns"]):
            raise AudioFileError(path, "changed while preparing; run prepare again")
        out["sha256"] = file_sha256(path)
        audio, info = load_audio_with_info(path, cfg.spectral.sample_rate, min_samples=cfg.spectral.n_fft)
    except AudioFileError as err:
        return {**out, "reason": err.reason}
    except OSError as exc:
        return {**out, "reason": f"cannot read ({exc.strerror or exc})"}
    starts = chunk_starts(len(audio), cfg.chunk_length, cfg.min_tail)
    return {**out, "ok": True, "duration": len(audio) / cfg.spectral.sample_rate, "num_samples": len(audio),
            "num_chunks": len(starts), "peak": float(np.abs(audio).max()), "sample_rate": info.sample_rate,
            "channels": info.channels}


def _marker(task: dict, cfg: PrepareConfig, error: str, seconds: float) -> dict:
    """The one row a failed task sends on (same columns as a chunk row, so blocks stay uniform)."""
    return {"key": task["key"], "source": task["rel"], "split": task["split"], "task": task["task"],
            "chunk": -1, "error": error, "expected_rows": 0, "t_decode": seconds,
            "window": np.zeros(window_samples(cfg), np.float32)}


def decode_chunks(task: dict, cfg: PrepareConfig) -> list[dict]:
    """One task → rows ``{"window": (W,) float32, "chunk", …}`` for chunks ``task["first"]…task["stop"]-1``."""
    start_time = time.perf_counter()
    path = task["path"]  # a local path or a storage URI
    starts = chunk_starts(task["num_samples"], cfg.chunk_length, cfg.min_tail)
    chosen = list(range(task["first"], task["stop"]))
    width = window_samples(cfg)
    first, length = segment_span([starts[i] for i in chosen], cfg.margin, width)
    try:
        st = stat_file(path)
        if (st.size, st.mtime_ns) != (task["size"], task["mtime_ns"]) or len(starts) != task["num_chunks"]:
            raise AudioFileError(path, "changed while preparing; run prepare again")
        segment = load_segment(path, first, length, cfg.spectral.sample_rate,  # only what this task needs
                               num_samples=task["num_samples"])
    except (AudioFileError, OSError) as exc:
        reason = exc.reason if isinstance(exc, AudioFileError) else str(exc)
        return [_marker(task, cfg, f"could not be read again: {reason}", time.perf_counter() - start_time)]
    if cfg.file_normalize == "peak":
        segment *= np.float32(PEAK_TARGET / task["peak"])
    windows = cut_windows(segment, first, [starts[i] for i in chosen], cfg.margin, width)
    variants = 1 + cfg.augment.expansion if task["split"] == TRAIN else 1
    share = (time.perf_counter() - start_time) / len(chosen)
    return [{"key": task["key"], "source": task["rel"], "split": task["split"], "task": task["task"],
             "chunk": index, "error": "", "expected_rows": len(chosen) * variants, "t_decode": share,
             "window": window} for index, window in zip(chosen, windows, strict=True)]


def augment_batch(batch: dict[str, np.ndarray], cfg: PrepareConfig) -> dict[str, np.ndarray]:
    """Chunk windows ``(B, W)`` → variant audio ``(R, chunk_length)`` plus the parameters applied."""
    rows: list[dict] = []
    for i in range(len(batch["chunk"])):
        base = {k: batch[k][i] for k in ("key", "source", "split", "task", "chunk", "error", "expected_rows")}
        if batch["error"][i]:
            rows.append({**base, "variant": 0, "audio": np.zeros(cfg.chunk_length, np.float32),
                         "pitch_semitones": 0.0, "speed": 1.0, "gain": 1.0, "noise_snr_db": np.nan,
                         "t_decode": float(batch["t_decode"][i]), "t_augment": 0.0})
            continue
        variants = 1 + cfg.augment.expansion if batch["split"][i] == TRAIN else 1
        window = np.asarray(batch["window"][i], np.float32)
        decode_share = float(batch["t_decode"][i]) / variants
        analysis = None  # the window's STFT, computed once for all variants that need the vocoder
        for variant in range(variants):
            started = time.perf_counter()
            rng = variant_rng(cfg.augment, str(batch["source"][i]), int(batch["chunk"][i]), variant)
            params = draw_params(cfg.augment, rng, variant)
            if analysis is None and (params.pitch_semitones != 0.0 or params.speed != 1.0):
                analysis = vocoder_analyse(window)
            audio, applied = apply_params(window, params, cfg.chunk_length, cfg.margin, cfg.spectral.sample_rate,
                                          rng, analysis)
            rows.append({**base, "variant": variant, "audio": audio, "pitch_semitones": applied.pitch_semitones,
                         "speed": applied.speed, "gain": applied.gain, "noise_snr_db": applied.noise_snr_db,
                         "t_decode": decode_share, "t_augment": time.perf_counter() - started})
    return _stack(rows)


def analyze_batch(batch: dict[str, np.ndarray], cfg: PrepareConfig) -> dict[str, np.ndarray]:
    """Variant audio ``(R, chunk_length)`` → ``spec`` ``(R, 2, n_mels, frames)`` in the storage type."""
    started = time.perf_counter()
    audio = torch.from_numpy(np.ascontiguousarray(batch.pop("audio"), dtype=np.float32))
    good = ~np.asarray([bool(e) for e in batch["error"]])
    dtype = np.float16 if cfg.storage_dtype == "float16" else np.float32
    spec = np.zeros((len(good), *cfg.spec_shape), dtype=dtype)
    with torch.no_grad():
        for first in range(0, len(good), ANALYZE_ROWS):
            rows = np.flatnonzero(good[first:first + ANALYZE_ROWS]) + first
            if len(rows):
                spec[rows] = analyze(audio[torch.from_numpy(rows)], cfg.spectral).numpy().astype(dtype)
    batch["spec"] = spec
    batch["t_analyze"] = np.full(len(good), (time.perf_counter() - started) / len(good))
    return batch


def write_batch(batch: dict[str, np.ndarray], cfg: PrepareConfig, store: Store) -> dict[str, np.ndarray]:
    """Write the rows of each file in the batch as one shard part; return one record per part.

    A record carries the part's path, rows and bytes, the task's expected row count, the
    training-row sums for the normalisation statistics, and the stage times of its rows.
    """
    records = []
    keys = np.asarray(batch["key"])
    for key in dict.fromkeys(keys.tolist()):
        started = time.perf_counter()
        idx = np.flatnonzero(keys == key)
        first = idx[0]
        record = {"key": key, "source": str(batch["source"][first]), "split": str(batch["split"][first]),
                  "task": int(batch["task"][first]), "expected_rows": int(batch["expected_rows"][first]),
                  "error": str(batch["error"][first]), "path": "", "rows": 0, "bytes": 0, "count": 0,
                  "sum": np.zeros(2 * cfg.spectral.n_mels), "sum_sq": np.zeros(2 * cfg.spectral.n_mels),
                  **{f"t_{s}": float(np.sum(batch[f"t_{s}"][idx])) for s in STAGES if s != "write"}}
        if not record["error"]:
            specs = batch["spec"][idx]
            columns = {name: batch[name][idx] for name in ("source", "chunk", "variant", "split", *PARAM_COLUMNS)}
            data = table_to_bytes(build_table(cfg, specs, columns))
            order = np.lexsort((batch["variant"][idx], batch["chunk"][idx]))[0]
            name = f"part-c{int(batch['chunk'][idx][order]):05d}-v{int(batch['variant'][idx][order]):03d}.parquet"
            record["path"] = f"{SHARDS_DIR}/{key}/{name}"
            store.write_bytes(record["path"], data)
            record.update(rows=len(idx), bytes=len(data))
            if record["split"] == TRAIN:
                # The stored (rounded) values, so the statistics match what readers get; summed in
                # float64 without materialising a float64 copy of the batch.
                values = specs.astype(np.float32)
                record["count"] = values.shape[0] * values.shape[3]
                record["sum"] = values.sum(axis=(0, 3), dtype=np.float64).reshape(-1)
                record["sum_sq"] = np.square(values).sum(axis=(0, 3), dtype=np.float64).reshape(-1)
        record["t_write"] = time.perf_counter() - started
        records.append(record)
    return _stack(records)


def _stack(rows: list[dict]) -> dict[str, np.ndarray]:
    """A list of row dicts → a numpy batch (strings as object arrays, arrays stacked)."""
    if not rows:
        return {}
    out = {}
    for name in rows[0]:
        values = [r[name] for r in rows]
        if isinstance(values[0], np.ndarray):
            out[name] = np.stack(values)
        elif isinstance(values[0], str):
            out[name] = np.asarray(values, dtype=object)
        else:
            out[name] = np.asarray(values)
    return out


def window_samples(cfg: PrepareConfig) -> int:
    """Length of every ``window`` row (chunk plus augmentation context)."""
    return window_length(cfg.chunk_length, cfg.margin, cfg.augment.max_speed)
