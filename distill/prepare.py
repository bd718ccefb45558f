"""Dataset preparation, start to finish: plan, estimate, confirm, validate, split, build, commit.

This module decides *what* to do and keeps the cache consistent; an executor decides *where* the
heavy stages run. The executor used by the CLI, ``jobs/`` and training is Ray Data
(:mod:`distill.ray_layer.prepare`); this module never imports Ray, so the "is the cache fresh?"
question is answered from file metadata in milliseconds without starting anything.

Crash safety: shard parts are written atomically under a folder named by a key that changes
whenever the rows would change; each finished file is recorded in the journal; the manifest is
replaced atomically only when everything is done. A build killed at any point leaves the previous
manifest (still describing complete shards) or none, and the next run reuses the journal.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from distill.audio_io import AudioFileError, probe
from distill.cache_lock import CacheUnavailable, cache_lock
from distill.manifest import (
    JOURNAL_DIR,
    MANIFEST,
    SHARDS_DIR,
    Plan,
    build_manifest,
    file_key,
    load_journal,
    make_plan,
    save_manifest,
    stats_from_sums,
    write_journal,
)
from distill.prepare_config import PrepareConfig
from distill.source_folder import SourceFolder
from distill.split import TRAIN, assign_splits
from distill.storage import TEMP_PREFIX, Store

CACHE_SUBDIR = ".distill/cache"  # default cache, inside the dataset folder (skipped by scans)
TASK_CHUNKS = 8  # chunks per pipeline task: long files spread over all CPUs, memory stays bounded
DEFAULT_CONFIRM_ABOVE_BYTES = 2 * 1024**3
# What validation learns about a usable file and the manifest keeps (see the README).
ENTRY_FIELDS = ("size", "mtime_ns", "sha256", "duration", "num_samples", "num_chunks", "peak", "sample_rate",
                "channels")


class PrepareError(ValueError):
    """Preparation cannot go on; the message says why and what to do."""


class NoUsableAudio(PrepareError):
    """Every file in the folder was unusable (each with its reason in ``skipped``)."""

    def __init__(self, message: str, skipped: list[dict]):
        super().__init__(message)
        self.skipped = skipped


class NeedsConfirmation(PrepareError):
    """The estimated size is above the threshold and nobody could be asked."""


class Executor(Protocol):
    """Runs the heavy stages (see :mod:`distill.prepare_stages`)."""

    def validate(self, items: list[dict]) -> Iterator[dict]: ...

    def build(self, tasks: list[dict]) -> Iterator[dict]: ...


@dataclass
class Progress:
    stage: str  # "validating" (decode + hash of new files) or "building" (the pipeline)
    files_done: int
    files_total: int
    rows_written: int
    audio_seconds_done: float
    audio_seconds_total: float
    elapsed: float

    @property
    def eta(self) -> float | None:
        if self.audio_seconds_done <= 0:
            return None
        rate = self.audio_seconds_done / max(self.elapsed, 1e-9)
        return max(0.0, (self.audio_seconds_total - self.audio_seconds_done) / rate)


@dataclass
class PrepareResult:
    cache: str
    manifest: str
    files_ok: int
    files_skipped: list[dict]
    rows_train: int
    rows_val: int
    processed_files: list[str]
    reused_files: list[str]
    removed_files: list[str]
    bytes: int
    seconds: float
    fresh: bool  # nothing had to be done
    reason: str  # why a build was needed
    split_note: str | None = None
    audio_seconds: float = 0.0
    stage_seconds: dict = field(default_factory=dict)  # CPU seconds spent per stage, this run
    phase_seconds: dict = field(default_factory=dict)  # wall seconds: plan, start (Ray), validate, build

    def to_json(self) -> dict:
        return asdict(self)


def default_cache(data_dir: str | Path) -> str:
    """``DIR/.distill/cache`` of a folder's path or URI."""
    return f"{os.fspath(data_dir).rstrip('/')}/{CACHE_SUBDIR}"


def _open(data_dir: str | Path, cache: str | None) -> tuple[SourceFolder, Store]:
    try:
        root = SourceFolder.open(data_dir)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise PrepareError(str(exc)) from None
    try:
        return root, Store.open(cache or default_cache(root.location))
    except ValueError as exc:
        raise PrepareError(str(exc)) from None


def check_cache(data_dir: str | Path, cache: str | None = None, cfg: PrepareConfig | None = None) -> Plan:
    """Is the cache of ``data_dir`` fresh for ``cfg``? Metadata only: no decoding, no Ray, no torch."""
    root, store = _open(data_dir, cache)
    return make_plan(root, store, cfg or PrepareConfig())


def estimate_bytes(root: SourceFolder, rels: list[str], cfg: PrepareConfig) -> tuple[int, int]:
    """Upper bound of (rows, uncompressed bytes) for building ``rels``, from file headers only."""
    rows = 0
    for rel in rels:
        try:
            duration = probe(root.locate(rel)).duration
        except AudioFileError:
            continue
        rows += max(1, math.ceil(duration / cfg.chunk_seconds)) * (1 + cfg.augment.expansion)
    return rows, rows * cfg.bytes_per_row


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def prepare(data_dir: str | Path, cache: str | None = None, cfg: PrepareConfig | None = None, *,
            executor_factory: Callable[[PrepareConfig, Store], Executor],
            yes: bool = False, confirm: Callable[[str], bool] | None = None,
            confirm_above_bytes: int = DEFAULT_CONFIRM_ABOVE_BYTES,
            progress: Callable[[Progress], None] | None = None,
            log: Callable[[str], None] = lambda message: None) -> PrepareResult:
    """Bring the cache of ``data_dir`` up to date and describe it.

    ``confirm`` asks a person (``None``: nobody can be asked — then an estimate above
    ``confirm_above_bytes`` raises :class:`NeedsConfirmation` unless ``yes``). Raises
    :class:`NoUsableAudio` when no file can be used and :class:`PrepareError` for other problems.
    """
    cfg = cfg or PrepareConfig()
    started = time.perf_counter()
    root, store = _open(data_dir, cache)
    plan = make_plan(root, store, cfg)
    old = plan.manifest
    if plan.fresh:
        return _result(store, old, plan, processed=[], reused=plan.reuse, seconds=time.perf_counter() - started)
    log(f"preparing {root.location}: {plan.reason}")

    journal = load_journal(store, plan.fingerprint)
    by_stat = {(e["rel"], e["size"], e["mtime_ns"]): e for e in journal.values()}
    todo = [rel for rel in plan.process
            if (rel, plan.sources[rel].size, plan.sources[rel].mtime_ns) not in by_stat]
    rows, size = estimate_bytes(root, todo, cfg)
    message = (f"{len(todo)} file(s) to process: up to {rows} rows, estimated disk use up to {human_bytes(size)} "
               f"(uncompressed; zstd usually stores less) in {store.display()}")
    log(message)
    if size > confirm_above_bytes and not yes:
        if confirm is None:
            raise NeedsConfirmation(f"{message}. That is above {human_bytes(confirm_above_bytes)}: "
                                    "pass --yes to go ahead (or raise the threshold)")
        if not confirm(f"{message}. Continue?"):
            raise PrepareError("cancelled; nothing was written")

    try:
        with cache_lock(store):
            return _update(root, store, cfg, plan, journal, by_stat, todo, executor_factory, progress, log, started)
    except CacheUnavailable as exc:
        raise PrepareError(str(exc)) from None
    except OSError as exc:  # the cache's disk or bucket failed under us (full, permissions, …)
        raise PrepareError(f"{store.display()}: cannot write the cache ({exc}); finished files are kept, "
                           "run prepare again once this is fixed") from None


def _update(root: SourceFolder, store: Store, cfg: PrepareConfig, plan: Plan, journal: dict, by_stat: dict,
            todo: list[str], executor_factory, progress, log, started: float) -> PrepareResult:
    """Validate, split, build and commit (holding the cache lock)."""
    old = plan.manifest
    executors: list[Executor] = []

    def executor() -> Executor:  # started only when some file really has to be decoded
        if not executors:
            executors.append(executor_factory(cfg, store))
        return executors[0]

    phases = {"plan": time.perf_counter() - started}
    clock = time.perf_counter()
    if todo:
        log("starting the workers (Ray; a few seconds)")
        executor()
        phases["start"] = time.perf_counter() - clock
        clock = time.perf_counter()
    validated = _validate(executor, root, plan, todo, by_stat, progress)
    phases["validate"] = time.perf_counter() - clock
    ok = {r["rel"]: r for r in validated if r["ok"]}
    skipped = {r["rel"]: {"size": r["size"], "mtime_ns": r["mtime_ns"], "reason": r["reason"]}
               for r in validated if not r["ok"]}
    if old:
        skipped.update({rel: old["skipped"][rel] for rel in plan.reuse_skipped})
    reused = {rel: old["files"][rel] for rel in plan.reuse} if old else {}
    hashes = {**{rel: e["sha256"] for rel, e in reused.items()}, **{rel: r["sha256"] for rel, r in ok.items()}}
    if not hashes:
        what = f"none of the {len(skipped)} audio files" if skipped else "no audio files"
        raise NoUsableAudio(f"{what} in {root.location} can be used (supported: WAV, FLAC, OGG/Vorbis, MP3, AIFF)",
                            _reasons(skipped))
    split = assign_splits(hashes, cfg.val_fraction, cfg.split_seed)
    if split.note:
        log(split.note)
    for rel in [r for r, e in reused.items() if e["split"] != split.splits[r]]:
        ok[rel] = {**reused.pop(rel), "rel": rel, "path": root.locate(rel)}  # moved across the split: rebuild

    files: dict[str, dict] = dict(reused)
    build: dict[str, dict] = {}
    for rel, record in ok.items():
        key = file_key(plan.fingerprint, rel, record["size"], record["mtime_ns"], split.splits[rel])
        entry = {k: record[k] for k in ENTRY_FIELDS}
        entry.update(split=split.splits[rel], key=key)
        if key in journal:
            files[rel] = {**entry, **{k: journal[key][k] for k in ("rows", "shards", "stats")}}
        else:
            build[rel] = entry
    stage_seconds = dict.fromkeys(("decode", "augment", "analyze", "write"), 0.0)
    if build:
        clock = time.perf_counter()
        files.update(_build(executor, store, root, build, cfg, plan.fingerprint, stage_seconds, skipped, progress))
        phases["build"] = time.perf_counter() - clock
    if not files:
        raise NoUsableAudio(f"none of the audio files in {root.location} could be prepared", _reasons(skipped))
    manifest = build_manifest(old, cfg, root.location, files, skipped, split.note)
    save_manifest(store, manifest)
    _collect_garbage(store, manifest)
    return _result(store, manifest, plan, processed=sorted(build), reused=sorted(set(files) - set(build)),
                   seconds=time.perf_counter() - started, stage_seconds=stage_seconds, phase_seconds=phases)


def _validate(executor: Callable[[], Executor], root: SourceFolder, plan: Plan, todo: list[str],
              by_stat: dict, progress) -> list[dict]:
    """Validate the files to process; files already finished by an interrupted build are known."""
    done = []
    for rel in plan.process:
        st = plan.sources[rel]
        entry = by_stat.get((rel, st.size, st.mtime_ns))
        if entry is not None:
            done.append({**entry, "ok": True, "reason": "", "path": root.locate(rel)})
    items = [{"rel": rel, "path": root.locate(rel), "size": plan.sources[rel].size,
              "mtime_ns": plan.sources[rel].mtime_ns} for rel in todo]
    checked, clock = [], time.perf_counter()
    for result in executor().validate(items) if items else []:
        checked.append(result)
        if progress:
            progress(Progress("validating", len(checked), len(items), 0, 0.0, 0.0, time.perf_counter() - clock))
    return done + checked


def _build(executor: Callable[[], Executor], store: Store, root: SourceFolder, build: dict[str, dict],
           cfg: PrepareConfig, fingerprint: str, stage_seconds: dict, skipped: dict, progress) -> dict[str, dict]:
    """Run the pipeline over ``build`` (rel → entry); journal each file as it completes."""
    tasks = []
    for rel, entry in build.items():
        store.delete_dir(f"{SHARDS_DIR}/{entry['key']}")  # leftovers of an interrupted build
        starts = list(range(0, entry["num_chunks"], TASK_CHUNKS))
        entry.update(tasks=len(starts), rows=0, shards=[], done_tasks=set(), task_rows={}, error="",
                     count=0, sum=0.0, sum_sq=0.0)
        for index, first in enumerate(starts):
            tasks.append({"key": entry["key"], "rel": rel, "path": root.locate(rel), "split": entry["split"],
                          **{k: entry[k] for k in ("size", "mtime_ns", "num_samples", "num_chunks", "peak")},
                          "first": first,
                          "stop": min(first + TASK_CHUNKS, entry["num_chunks"]), "task": index})
    # Longest tasks first: Ray Data starts tasks roughly in input order, and a long task started
    # last would leave the other CPUs idle while it finishes (on the benchmark's short files the
    # gain was within run-to-run noise; it matters for collections mixing long and short files).
    tasks.sort(key=lambda t: (-(t["stop"] - t["first"]) * (1 + cfg.augment.expansion * (t["split"] == TRAIN)),
                              t["rel"], t["task"]))
    by_key = {e["key"]: (rel, e) for rel, e in build.items()}
    total_audio = sum(e["duration"] for e in build.values())
    finished: dict[str, dict] = {}
    done_audio, rows_written, failed, clock = 0.0, 0, 0, time.perf_counter()
    for record in executor().build(tasks):
        rel, entry = by_key[record["key"]]
        for stage in stage_seconds:
            stage_seconds[stage] += float(record[f"t_{stage}"])
        if record["error"]:
            entry["error"] = record["error"]
            entry["done_tasks"].add(record["task"])
        else:
            entry["shards"].append({"path": record["path"], "rows": int(record["rows"]), "bytes": int(record["bytes"])})
            entry["rows"] += int(record["rows"])
            rows_written += int(record["rows"])
            entry["count"] += int(record["count"])
            entry["sum"] = entry["sum"] + np.asarray(record["sum"], np.float64)
            entry["sum_sq"] = entry["sum_sq"] + np.asarray(record["sum_sq"], np.float64)
            written = entry["task_rows"].get(record["task"], 0) + int(record["rows"])
            entry["task_rows"][record["task"]] = written
            if written == int(record["expected_rows"]):
                entry["done_tasks"].add(record["task"])
        if len(entry["done_tasks"]) == entry["tasks"] and rel not in finished and rel not in skipped:
            done_audio += entry["duration"]
            if entry["error"]:
                skipped[rel] = {"size": entry["size"], "mtime_ns": entry["mtime_ns"], "reason": entry["error"]}
                failed += 1
            else:
                finished[rel] = _finish(entry, rel, fingerprint, store)
        if progress:
            progress(Progress("building", len(finished) + failed, len(build), rows_written,
                              done_audio, total_audio, time.perf_counter() - clock))
    missing = sorted(set(build) - set(finished) - set(skipped))
    if missing:
        raise PrepareError(f"the pipeline ended before finishing {missing}; run prepare again")
    return finished


def _finish(entry: dict, rel: str, fingerprint: str, store: Store) -> dict:
    """A completed file's manifest entry; recorded in the journal at once."""
    done = {k: entry[k] for k in (*ENTRY_FIELDS, "split", "key", "rows")}
    done["shards"] = sorted(entry["shards"], key=lambda s: s["path"])
    done["stats"] = stats_from_sums(entry["count"], entry["sum"], entry["sum_sq"]) if entry["split"] == TRAIN else None
    write_journal(store, {**done, "rel": rel, "fingerprint": fingerprint})
    return done


def _collect_garbage(store: Store, manifest: dict) -> None:
    """After a commit: drop shard folders no manifest entry uses, the journal and temp files."""
    # A key folder is emptied before its file is built, so every file in a live folder is referenced.
    live = {s["path"].split("/")[1] for s in manifest["shards"]}
    for folder in store.list_dirs(SHARDS_DIR):
        if folder not in live:
            store.delete_dir(f"{SHARDS_DIR}/{folder}")
    store.delete_dir(JOURNAL_DIR)
    for rel in store.list_files(""):
        if rel.rsplit("/", 1)[-1].startswith(TEMP_PREFIX):
            store.delete_file(rel)


def _reasons(skipped: dict[str, dict]) -> list[dict]:
    """Skipped files (relative path → entry) as ``[{"path", "reason"}]``, sorted by path."""
    return [{"path": rel, "reason": e["reason"]} for rel, e in sorted(skipped.items())]


def _result(store: Store, manifest: dict, plan: Plan, *, processed: list[str], reused: list[str],
            seconds: float, stage_seconds: dict | None = None, phase_seconds: dict | None = None) -> PrepareResult:
    totals = manifest["totals"]
    return PrepareResult(
        cache=store.display(), manifest=store.display(MANIFEST), files_ok=totals["files_ok"],
        files_skipped=_reasons(manifest["skipped"]),
        rows_train=totals["rows_train"], rows_val=totals["rows_val"], processed_files=processed,
        reused_files=reused, removed_files=plan.removed, bytes=totals["bytes"], seconds=round(seconds, 3),
        fresh=plan.fresh, reason=plan.reason, split_note=manifest.get("split_note"),
        audio_seconds=totals["audio_seconds"], stage_seconds=stage_seconds or {},
        phase_seconds={k: round(v, 3) for k, v in (phase_seconds or {}).items()})
