"""One sweep trial (runs in a Tune trial actor) and the sweep's progress lines (in the driver).

:func:`run_trial` calls :func:`~distill.ray_layer.train.train_model` — the function behind
``distill train`` — with the trial's loss weights laid over the sweep's base config, in a run
folder named after the trial. A trial that finds its run folder already there (the sweep was
interrupted and resumed, or Tune restarted it) first replays the epochs it finished to Tune, so the
scheduler sees its whole curve, and then either stops (it had finished) or continues from its
latest checkpoint: no epoch is trained twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ray import tune

from distill.ray_layer.train import Sharing, train_model
from distill.run_folder import RunFolder
from distill.sweep_space import merge, overrides

REPORTED = ("epoch", "val_mrstft", "train_loss_total", "val_loss_total", "step")


def _metrics(row: dict) -> dict:
    """The numeric, finite values of a metrics row (what ``ray.train.report`` sent for that epoch)."""
    return {k: v for k, v in row.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def run_trial(config: dict, job: dict, datasets: dict | None = None) -> None:
    """Tune's trial function: train with ``config`` (dotted field → value) laid over ``job["base"]``,
    on ``datasets`` when the sweep read them for every trial."""
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = tune.get_context().get_trial_id()
    runs = job["runs"]
    run = RunFolder.open(f"{runs}/{trial_id}")
    info = run.read_run()
    if info is not None:
        for row in run.read_metrics():
            tune.report(_metrics(row))
        if run.read_report() is not None:
            return
    # no latent analysis per trial: only the kept model gets its sliders (run_model.keep_in_library)
    common = dict(storage=runs, workers=job["workers"], gpu=job["gpu"], keep=False, analyse=False,
                  sharing=Sharing(**job["sharing"]), callbacks=[TuneReportCallback()], datasets=datasets, yes=True)
    if info is None:
        train_model(job["data_dir"], preset=job["preset"], overrides=merge(job["base"], overrides(config)),
                    name=trial_id, cache=job["cache"], **common)
    else:
        train_model(job["data_dir"], resume=trial_id, **common)


class ProgressCallback(tune.Callback):
    """One line per finished epoch and per finished trial, through ``say`` (the CLI's stderr)."""

    def __init__(self, trials: int, epochs: int, say: Callable[[str], None]):
        self.trials, self.epochs, self.say = trials, epochs, say
        self.best: float | None = None

    def _number(self, trial) -> int:
        from distill.ray_layer.sweep_tune import trial_number

        return trial_number(trial.trial_id)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.say(f"trial {self._number(trial)}/{self.trials} ({trial.trial_id}) started")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        score = result.get("val_mrstft")
        if score is None or "epoch" not in result:
            return
        if self.best is None or score < self.best:
            self.best = score
        self.say(f"trial {self._number(trial)}: epoch {result['epoch']}/{self.epochs}, "
                 f"val MR-STFT {score:.3f} (best so far {self.best:.3f})")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.say(f"trial {self._number(trial)} finished")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.say(f"trial {self._number(trial)} failed (see the results table)")

    def __getstate__(self):  # Tune saves its callbacks with the experiment; a terminal does not pickle
        state = dict(self.__dict__)
        state["say"] = _quiet
        return state


def _quiet(message: str) -> None:
    pass
