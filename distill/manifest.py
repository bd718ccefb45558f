"""The cache manifest (``manifest.json``) and the plan that compares it with the dataset folder.

The manifest is the single source of truth of a cache: a shard that it does not list does not
exist for readers. It is written once, atomically, at the end of a successful build, so an
interrupted build leaves either the previous valid manifest or none. Files finished by an
interrupted build are remembered in ``journal/<key>.json`` (one small atomic write per file) and
reused by the next run. Every field is documented in the README ("The prepared cache").

Planning imports neither torch nor Ray and touches only file metadata (``stat``), so an unchanged
dataset of 500 files is recognised in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from distill.prepare_config import CACHE_FORMAT_VERSION, PrepareConfig
from distill.source_folder import SourceFolder, SourceStat
from distill.split import TRAIN, VAL
from distill.storage import Store

MANIFEST = "manifest.json"
SHARDS_DIR = "shards"
JOURNAL_DIR = "journal"


class CacheError(ValueError):
    """A cache that cannot be used (unreadable manifest, wrong version, missing shards)."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def file_key(fingerprint: str, rel: str, size: int, mtime_ns: int, split: str) -> str:
    """Name of a file's shard folder: changes whenever its rows would change."""
    text = f"{fingerprint}\0{rel}\0{size}\0{mtime_ns}\0{split}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def load_manifest(store: Store) -> dict | None:
    """The manifest of ``store``, or ``None`` when there is none. Raises :class:`CacheError`."""
    if not store.exists(MANIFEST):
        return None
    try:
        manifest = json.loads(store.read_bytes(MANIFEST))
    except (OSError, ValueError) as exc:
        raise CacheError(f"{store.display(MANIFEST)}: unreadable manifest ({exc}); delete the cache folder "
                         "and prepare again") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != CACHE_FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise CacheError(f"{store.display(MANIFEST)}: cache format {version!r}, this version of distill "
                         f"reads {CACHE_FORMAT_VERSION}; it will be rebuilt")
    return manifest


def save_manifest(store: Store, manifest: dict) -> None:
    store.write_bytes(MANIFEST, (to_readable_json(manifest) + "\n").encode("utf-8"))


def to_readable_json(value, indent: int = 0) -> str:
    """JSON with one key per line but each list of numbers on one line.

    ``json.dumps(indent=…)`` puts every number of the per-file statistics on its own line (a
    quarter of a million lines for 500 files), which no person can read.
    """
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {to_readable_json(v, indent + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value) \
            and not all(isinstance(v, list) and not any(isinstance(x, dict | list) for x in v) for v in value):
        return "[\n" + ",\n".join(f"{inner}{to_readable_json(v, indent + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Plan:
    """What a build has to do, decided from file metadata and the manifest alone."""

    fingerprint: str
    manifest: dict | None  # the existing manifest when its fingerprint matches, else None
    sources: dict[str, SourceStat]
    reuse: list[str] = field(default_factory=list)  # unchanged files with rows in the cache
    reuse_skipped: list[str] = field(default_factory=list)  # unchanged files known to be unusable
    process: list[str] = field(default_factory=list)  # new or changed files
    removed: list[str] = field(default_factory=list)  # in the manifest, gone from the folder
    reason: str = ""  # why a build is needed ("" when fresh)

    @property
    def fresh(self) -> bool:
        return not self.reason


def make_plan(folder: SourceFolder, store: Store, cfg: PrepareConfig) -> Plan:
    """Compare the folder with the cache. Never decodes audio, never starts Ray."""
    fingerprint = cfg.fingerprint()
    sources = folder.list_audio()
    try:
        manifest = load_manifest(store)
    except CacheError as exc:
        return Plan(fingerprint, None, sources, process=sorted(sources), reason=str(exc))
    if manifest is None:
        return Plan(fingerprint, None, sources, process=sorted(sources), reason="no prepared cache yet")
    if manifest.get("fingerprint") != fingerprint:
        return Plan(fingerprint, None, sources, process=sorted(sources),
                    reason="the preparation settings changed: rebuilding everything")
    plan = Plan(fingerprint, manifest, sources)
    known = {**{rel: ("ok", e) for rel, e in manifest["files"].items()},
             **{rel: ("skipped", e) for rel, e in manifest["skipped"].items()}}
    for rel, st in sorted(sources.items()):
        status, entry = known.get(rel, (None, None))
        if entry is not None and entry["size"] == st.size and entry["mtime_ns"] == st.mtime_ns:
            (plan.reuse if status == "ok" else plan.reuse_skipped).append(rel)
        else:
            plan.process.append(rel)
    plan.removed = sorted(set(known) - set(sources))
    missing = _missing_shards(store, manifest) if not plan.process and not plan.removed else []
    changes = [f"{n} {what}" for n, what in ((sum(r not in known for r in plan.process), "added"),
                                              (sum(r in known for r in plan.process), "changed"),
                                              (len(plan.removed), "removed")) if n]
    if missing:
        bad = {rel for rel, e in manifest["files"].items() for s in e["shards"] if s["path"] in missing}
        plan.reuse = [r for r in plan.reuse if r not in bad]
        plan.process = sorted(bad)
        changes.append(f"{len(missing)} shard(s) missing or damaged in the cache")
    plan.reason = ", ".join(changes)
    return plan


def _missing_shards(store: Store, manifest: dict) -> list[str]:
    """Shards the manifest lists that are absent or of the wrong size (one listing call)."""
    present = store.list_files(SHARDS_DIR)
    return [s["path"] for e in manifest["files"].values() for s in e["shards"]
            if present.get(s["path"]) != s["bytes"]]


# --- statistics kept per file so that adding a file never requires reading other files' rows ---

def stats_from_sums(count: int, total: np.ndarray, total_sq: np.ndarray) -> dict:
    """Per-file sums → the JSON form stored in the manifest (float64, exact repr)."""
    return {"count": int(count), "sum": np.asarray(total, np.float64).tolist(),
            "sum_sq": np.asarray(total_sq, np.float64).tolist()}


def combine_stats(entries: list[dict], n_mels: int) -> dict | None:
    """Per-file sums of the training files → mean and std ``(2, n_mels)`` (the ``SpectralStats`` dict)."""
    count = sum(e["count"] for e in entries)
    if count == 0:
        return None
    total = sum(np.asarray(e["sum"], np.float64) for e in entries).reshape(2, n_mels)
    total_sq = sum(np.asarray(e["sum_sq"], np.float64) for e in entries).reshape(2, n_mels)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return {"mean": mean.tolist(), "std": std.tolist(), "frames": count,
            "computed_from": "training split only (all variants), per (channel, mel band)"}


def build_manifest(previous: dict | None, cfg: PrepareConfig, data_dir: str, files: dict[str, dict],
                   skipped: dict[str, dict], split_note: str | None) -> dict:
    """Assemble a complete manifest from per-file entries (see the README for every field)."""
    shards = sorted(({"path": s["path"], "rows": s["rows"], "bytes": s["bytes"], "split": e["split"],
                      "source": rel} for rel, e in files.items() for s in e["shards"]), key=lambda s: s["path"])
    train = [e for e in files.values() if e["split"] == TRAIN]
    created = previous.get("created") if previous and previous.get("fingerprint") == cfg.fingerprint() else None
    return {
        "format_version": CACHE_FORMAT_VERSION,
        "created": created or now_iso(),
        "updated": now_iso(),
        "dataset": data_dir,
        "fingerprint": cfg.fingerprint(),
        "config": cfg.to_dict(),
        "spec_shape": list(cfg.spec_shape),
        "split_note": split_note,
        "files": dict(sorted(files.items())),
        "skipped": dict(sorted(skipped.items())),
        "shards": shards,
        "stats": combine_stats([e["stats"] for e in train], cfg.spectral.n_mels),
        "totals": {
            "files_ok": len(files), "files_skipped": len(skipped),
            "files_train": len(train), "files_val": sum(e["split"] == VAL for e in files.values()),
            "rows_train": sum(e["rows"] for e in train),
            "rows_val": sum(e["rows"] for e in files.values() if e["split"] == VAL),
            "bytes": sum(s["bytes"] for s in shards),
            "audio_seconds": round(sum(e["duration"] for e in files.values()), 3),
        },
    }


def load_journal(store: Store, fingerprint: str) -> dict[str, dict]:
    """Files completed by an interrupted build with this fingerprint: key → entry."""
    out = {}
    for rel in store.list_files(JOURNAL_DIR):
        if not rel.endswith(".json") or os.path.basename(rel).startswith("."):
            continue
        try:
            entry = json.loads(store.read_bytes(rel))
        except (OSError, ValueError):
            continue  # a damaged journal entry only means that file is processed again
        if entry.get("fingerprint") == fingerprint and "key" in entry:
            out[entry["key"]] = entry
    return out


def write_journal(store: Store, entry: dict) -> None:
    store.write_bytes(f"{JOURNAL_DIR}/{entry['key']}.json", json.dumps(entry).encode("utf-8"))
