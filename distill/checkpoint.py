"""Training checkpoints in a run's storage (a local folder or an object-store URI).

Layout inside the run folder::

    checkpoints/epoch-0007.pt     one per epoch; the last ``keep_last`` are kept
    checkpoints/best.pt           the best validation loss so far
    checkpoints/latest.json       {"path", "epoch"} — written after the file it names

A checkpoint holds only tensors and plain Python data (configs as dicts, the normalisation
statistics, the loop state, metrics), so it loads with ``torch.load(weights_only=True)``: no
pickled classes, nothing executed. Every file is written atomically (``distill.storage``), and
``latest.json`` is replaced only after its checkpoint is complete, so a run killed at any moment
resumes from a whole checkpoint at most one epoch old.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile

import torch

from distill.storage import Store

CHECKPOINT_DIR = "checkpoints"
LATEST = f"{CHECKPOINT_DIR}/latest.json"
BEST = f"{CHECKPOINT_DIR}/best.pt"
FORMAT_VERSION = 1
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names it and says why."""


def epoch_path(epoch: int) -> str:
    return f"{CHECKPOINT_DIR}/epoch-{epoch:04d}.pt"


def save_checkpoint(store: Store, payload: dict, *, epoch: int, best: bool, keep_last: int = 3) -> str:
    """Write ``payload`` (tensors and plain data) as the checkpoint of ``epoch``; returns its path.

    Also updates ``best.pt`` when ``best``, points ``latest.json`` at it, and deletes epoch files
    older than the last ``keep_last``.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be at least 1, got {keep_last}")
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, "epoch": epoch, **payload}, buffer)
    data = buffer.getvalue()
    path = epoch_path(epoch)
    store.write_bytes(path, data)
    if best:
        store.write_bytes(BEST, data)
    store.write_bytes(LATEST, json.dumps({"path": path, "epoch": epoch}).encode())
    epochs = sorted(int(m.group(1)) for name in store.list_files(CHECKPOINT_DIR)
                    if (m := _EPOCH_FILE.match(name.rsplit("/", 1)[-1])))
    for old in epochs[:-keep_last]:
        store.delete_file(epoch_path(old))
    return path


def latest_checkpoint(store: Store) -> str | None:
    """Path of the newest complete checkpoint, or ``None`` when the run has none yet."""
    if not store.exists(LATEST):
        return None
    try:
        path = json.loads(store.read_bytes(LATEST))["path"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{store.display(LATEST)}: unreadable ({exc})") from None
    if not store.exists(path):
        raise CheckpointError(f"{store.display(LATEST)} names {path}, which is missing")
    return path


def load_checkpoint(store: Store, path: str) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only``: no code runs)."""
    try:
        data = torch.load(io.BytesIO(store.read_bytes(path)), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{store.display(path)}: no such checkpoint") from None
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{store.display(path)}: damaged or not a distill checkpoint ({reason})") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{store.display(path)}: checkpoint format "
                              f"{data.get('format_version') if isinstance(data, dict) else None!r}, "
                              f"this version of distill reads {FORMAT_VERSION}")
    return data
