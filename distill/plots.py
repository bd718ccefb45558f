"""Pictures of a run: the loss-curve PNG. matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

import io
import math


def loss_curve_png(rows: list[dict], ceiling: float | None = None) -> bytes:
    """Per-epoch metric rows (``epoch``, ``train_loss_total``, ``val_loss_total``, ``val_mrstft``, …) → PNG.

    Left: training and validation loss (log scale). Right: validation MR-STFT against the original
    audio, with the representation's ceiling as a dashed line when known.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100)
    left, right = figure.subplots(1, 2)
    epochs = [r["epoch"] for r in rows]

    def series(name: str) -> list[float]:
        return [r.get(name, math.nan) if r.get(name) is not None else math.nan for r in rows]

    for name, label in (("train_loss_total", "train loss"), ("val_loss_total", "validation loss")):
        values = series(name)
        if any(math.isfinite(v) and v > 0 for v in values):
            left.plot(epochs, values, marker=".", label=label)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_title("loss (weighted sum of terms)")
    left.legend(loc="upper right")
    left.grid(alpha=0.3)
    values = series("val_mrstft")
    if any(math.isfinite(v) for v in values):
        right.plot(epochs, values, marker=".", color="tab:green", label="model")
    if ceiling is not None:
        right.axhline(ceiling, linestyle="--", color="gray", label="representation ceiling")
    right.set_xlabel("epoch")
    right.set_title("validation MR-STFT vs original audio (lower is better)")
    right.legend(loc="upper right")
    right.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
