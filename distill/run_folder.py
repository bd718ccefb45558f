"""A training run's folder (local path or object-store URI): what the user opens after training.

Layout::

    run.json              the full TrainingConfig, data folder, cache, status and timestamps
    progress.json         the latest progress (epoch, losses, ETA); the CLI and the UI poll it
    metrics.csv           one row per epoch: every loss term (train_*, val_*), val_mrstft, lr, seconds
    loss_curve.png        the loss and the validation MR-STFT against epochs
    previews/epoch-NNNN/  original-K.wav, recon-K.wav (validation chunks) and prior-K.wav
    report.json           the final quality report (model vs representation ceiling) and summary
    checkpoints/          distill.checkpoint

Every file is written atomically (:class:`distill.storage.Store`), so a reader never sees half
of one, and a crash leaves the previous version in place.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import numpy as np
import soundfile as sf

from distill.storage import Store

RUN = "run.json"
PROGRESS = "progress.json"
METRICS = "metrics.csv"
CURVE = "loss_curve.png"
REPORT = "report.json"
PREVIEWS = "previews"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunFolder:
    def __init__(self, store: Store):
        self.store = store

    @classmethod
    def open(cls, location: str) -> RunFolder:
        return cls(Store.open(location))

    def display(self, relative: str = "") -> str:
        return self.store.display(relative)

    def exists(self) -> bool:
        return self.store.exists(RUN)

    def _write_json(self, name: str, data: dict) -> None:
        self.store.write_bytes(name, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())

    def _read_json(self, name: str) -> dict | None:
        if not self.store.exists(name):
            return None
        try:
            return json.loads(self.store.read_bytes(name))
        except ValueError as exc:
            raise ValueError(f"{self.display(name)}: unreadable ({exc})") from None

    def read_run(self) -> dict | None:
        return self._read_json(RUN)

    def write_run(self, info: dict) -> None:
        self._write_json(RUN, {**info, "updated": now()})

    def update_run(self, **changes) -> None:
        self.write_run({**(self.read_run() or {}), **changes})

    def read_progress(self) -> dict | None:
        try:
            return self._read_json(PROGRESS)
        except ValueError:
            return None  # being replaced right now on a filesystem without atomic rename; next poll

    def write_progress(self, progress: dict) -> None:
        self._write_json(PROGRESS, progress)

    def read_report(self) -> dict | None:
        return self._read_json(REPORT)

    def write_report(self, report: dict) -> None:
        self._write_json(REPORT, report)

    def write_metrics(self, rows: list[dict]) -> None:
        """Rewrite ``metrics.csv`` with ``rows`` (columns: the union of the rows' keys, in first-seen order)."""
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(columns), restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        self.store.write_bytes(METRICS, text.getvalue().encode())

    def read_metrics(self) -> list[dict]:
        if not self.store.exists(METRICS):
            return []
        reader = csv.DictReader(io.StringIO(self.store.read_bytes(METRICS).decode()))
        return [{k: _number(v) for k, v in row.items()} for row in reader]

    def write_curve(self, png: bytes) -> None:
        self.store.write_bytes(CURVE, png)

    def write_wav(self, relative: str, audio: np.ndarray, sample_rate: int) -> str:
        """Write mono float audio as 16-bit WAV, scaled down only if it would clip; returns the path."""
        audio = np.asarray(audio, np.float32)
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        if peak > 0.999:
            audio = audio * np.float32(0.999 / peak)
        buffer = io.BytesIO()
        sf.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
        self.store.write_bytes(relative, buffer.getvalue())
        return relative


def _number(text: str):
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
