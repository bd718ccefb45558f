"""What a sweep leaves: the trials table (printed and CSV), the objective plot, the best config file.

Each trial is judged by the validation MR-STFT of the checkpoint it would keep (its ``best``
epoch, chosen by its own validation loss), measured with the project's fixed evaluation setting
against the original audio. That number does not depend on the loss weights being searched,
unlike the training loss, so trials compare. A trial stopped early by the scheduler is judged
the same way on the epochs it ran. No Ray here.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass

# What a trial's status means, for the table's legend and the README.
STATUSES = {
    "completed": "ran every epoch",
    "early_stop": "training stopped itself (no better validation loss for `patience` epochs)",
    "time_budget": "the trial's own time budget ran out",
    "stopped_early": "the scheduler (ASHA) stopped it: it was behind others at the same epoch",
    "sweep_budget": "the sweep's time budget (--max-minutes) ran out while it ran",
    "interrupted": "the sweep was interrupted while it ran; --resume continues it",
    "error": "it failed; the message says why",
    "pending": "not started yet; --resume runs it",
}


@dataclass
class TrialOutcome:
    trial: str  # Tune's trial id, also the trial's run folder name
    number: int  # 1-based, in the order trials were created
    params: dict  # dotted field → value
    status: str  # a key of STATUSES
    epochs: int = 0
    val_mrstft: float | None = None  # the objective: at the checkpoint the trial keeps
    best_epoch: int | None = None
    run_dir: str | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def objective(rows: list[dict]) -> tuple[float | None, int | None]:
    """``(val_mrstft, epoch)`` of the checkpoint a run keeps: its last ``best`` epoch with a score
    (its lowest score when no epoch is marked best, e.g. without validation files)."""
    scored = [r for r in rows if _finite(r.get("val_mrstft"))]
    if not scored:
        return None, None
    best = [r for r in scored if r.get("best") in (True, 1, "True", "true", "1")]
    row = best[-1] if best else min(scored, key=lambda r: r["val_mrstft"])
    return float(row["val_mrstft"]), int(row["epoch"])


def pick_best(outcomes: list[TrialOutcome]) -> TrialOutcome | None:
    """The trial with the lowest objective (ties: the earlier trial)."""
    scored = [o for o in outcomes if o.val_mrstft is not None and o.status != "error"]
    return min(scored, key=lambda o: (o.val_mrstft, o.number)) if scored else None


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def table(outcomes: list[TrialOutcome], fields: list[str], best: TrialOutcome | None = None) -> str:
    """The trials as an aligned text table, best first marked with ``*``, sorted by objective."""
    header = ["", "trial", "val MR-STFT", "epochs", "status", *fields]
    ordered = sorted(outcomes, key=lambda o: (o.val_mrstft is None, o.val_mrstft or 0.0, o.number))
    rows = [["*" if best is not None and o.trial == best.trial else "", str(o.number), _format(o.val_mrstft),
             str(o.epochs), o.status, *(_format(o.params.get(f)) for f in fields)] for o in ordered]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def results_csv(outcomes: list[TrialOutcome], fields: list[str]) -> bytes:
    """One row per trial: number, id, objective, best epoch, epochs, status, parameters, run, error."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", "trial_id", "val_mrstft", "best_epoch", "epochs", "status", *fields, "run_dir",
                     "error"])
    for o in sorted(outcomes, key=lambda o: o.number):
        writer.writerow([o.number, o.trial, "" if o.val_mrstft is None else repr(o.val_mrstft),
                         "" if o.best_epoch is None else o.best_epoch, o.epochs, o.status,
                         *("" if o.params.get(f) is None else o.params[f] for f in fields), o.run_dir or "",
                         o.error or ""])
    return out.getvalue().encode("utf-8")


def objective_plot_png(outcomes: list[TrialOutcome], dimensions, best: TrialOutcome | None = None) -> bytes:
    """The objective against each searched parameter (one panel each; log axes for log-scaled ones).

    Trials that ran to the end are filled dots, those stopped early hollow; the best is a star.
    ``dimensions`` are :class:`~distill.sweep_space.Dimension` objects (searched ones only).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    dims = list(dimensions) or [None]
    columns = min(3, len(dims))
    rows = math.ceil(len(dims) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.4 * rows), dpi=100)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    scored = [o for o in outcomes if o.val_mrstft is not None]
    for ax, dim in zip(axes, dims):
        if dim is None:
            ax.text(0.5, 0.5, "nothing was searched", ha="center", va="center", transform=ax.transAxes)
            continue
        for finished, style in ((True, dict(marker="o", color="tab:blue")),
                                (False, dict(marker="o", facecolors="none", edgecolors="tab:gray"))):
            group = [o for o in scored if (o.status in ("completed", "early_stop", "time_budget")) == finished
                     and _plottable(o.params.get(dim.field))]
            if group:
                ax.scatter([_axis_value(o.params[dim.field]) for o in group], [o.val_mrstft for o in group],
                           label="ran to the end" if finished else "stopped early", **style)
        if best is not None and _plottable(best.params.get(dim.field)):
            ax.scatter([_axis_value(best.params[dim.field])], [best.val_mrstft], marker="*", s=220,
                       color="tab:orange", zorder=3, label=f"best (trial {best.number})")
        if dim.log_scale:
            ax.set_xscale("log")
        ax.set_xlabel(dim.field)
        ax.set_ylabel("validation MR-STFT (lower is better)")
        ax.grid(True, alpha=0.3)
        if dim.kind == "choice":
            values = [_axis_value(v) for v in dim.values if _plottable(v)]
            if values and all(isinstance(v, str) for v in dim.values):
                ax.set_xticks(range(len(values)), [str(v) for v in dim.values])
    for ax in axes[len(dims):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _plottable(value) -> bool:
    return _finite(value) or isinstance(value, str | bool)


def _axis_value(value):
    return float(value) if _finite(value) or isinstance(value, bool) else value


def best_config_toml(preset: str, config: dict, header: list[str]) -> str:
    """A config file for ``distill train --config``: ``preset`` and the nested overrides ``config``,
    under comment lines ``header`` (what the sweep found and how to use it)."""
    import tomli_w

    body = tomli_w.dumps({"preset": preset, **config})
    return "".join(f"# {line}\n" for line in header) + body
