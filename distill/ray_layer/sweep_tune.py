"""The Tune side of a sweep: the experiment (sampling, scheduler, resume, Ctrl-C) and reading its trials back.

Learned on Ray 2.60: with a search algorithm given, ``TuneConfig.max_concurrent_trials`` is
ignored with a warning, so the generator limits concurrency; ASHA's last rung is ``max_t`` and,
with ``stop_last_trials``, it stopped trials *at their last epoch*, right after the report and
before the run wrote its report and model file, so every rung here lies before the last epoch;
Tune's new console engine prints a banner and TensorBoard hints even with ``verbose=0``
(``RAY_AIR_NEW_OUTPUT=0`` selects the old, silent one); a restored Tuner keeps the callbacks,
budget and concurrency pickled with the experiment.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from distill.ray_layer.train import cause_line
from distill.run_folder import RunFolder
from distill.storage import Store
from distill.sweep_definition import RUNS_DIR, TUNE_DIR
from distill.sweep_results import TrialOutcome, objective
from distill.sweep_space import SearchSpace

METRIC = "val_mrstft"
TRIAL_DRIVER_CPUS = 0.01  # a trial's function only drives its TorchTrainer (an all-zero request is refused)
ASHA_REDUCTION = 3  # a third of the trials at each rung go on


def _tune_space(space: SearchSpace) -> dict:
    from ray import tune

    samplers = {"loguniform": lambda lo, hi: tune.loguniform(lo, hi), "uniform": lambda lo, hi: tune.uniform(lo, hi),
                # Tune's integer ranges leave out ``high``; ours include it.
                "randint": lambda lo, hi: tune.randint(lo, hi + 1),
                "lograndint": lambda lo, hi: tune.lograndint(lo, hi + 1)}
    out = {}
    for dim in space.dimensions:
        if dim.kind == "fixed":
            out[dim.field] = list(dim.values[0]) if isinstance(dim.values[0], tuple) else dim.values[0]
        elif dim.kind == "choice":
            out[dim.field] = tune.choice(list(dim.values))
        else:
            out[dim.field] = samplers[dim.kind](*dim.values)
    return out


def asha_rungs(epochs: int) -> tuple[int, int] | None:
    """ASHA's ``(grace_period, max_t)`` for trials of ``epochs`` epochs, or ``None`` when it cannot help.

    Every rung lies before the last epoch: a trial stopped at its last epoch would lose only its
    ending (the quality report and the model file), so ``max_t`` is ``epochs - 1`` and trials that
    pass it run to their end (``stop_last_trials=False``). The first rung comes after a fifth of the
    epochs, at most 10: early epochs of a VAE with KL warm-up say little.
    """
    grace = max(1, min(10, epochs // 5))
    return (grace, epochs - 1) if epochs - 1 >= grace else None


def run_experiment(folder: Store, definition: dict, space: SearchSpace, job: dict, datasets: dict | None,
                   concurrency: int, max_minutes: float | None, resume: bool, say: Callable[[str], None]) -> str:
    """Run (or restore and continue) the sweep's Tune experiment, ``concurrency`` trials at a time, each
    calling :func:`~distill.ray_layer.sweep_trial.run_trial` with ``job`` and the shared ``datasets``.

    Returns how it ended: ``completed``, ``interrupted`` (Ctrl-C) or ``sweep_budget`` (``max_minutes``).
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from distill.ray_layer.sweep_trial import ProgressCallback, run_trial

    # Tune's new console output prints its own banner and TensorBoard hints even when silent;
    # the old engine with verbose=0 prints nothing, and our callback says what happens.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    trainable = tune.with_resources(tune.with_parameters(run_trial, job=job, datasets=datasets),
                                    {"CPU": TRIAL_DRIVER_CPUS})
    experiment = folder.locate(TUNE_DIR)  # a URI on object storage: Tune opens it itself
    epochs = definition["epochs"]
    rungs = asha_rungs(epochs) if definition["scheduler"] == "asha" else None
    if rungs is not None:
        scheduler = ASHAScheduler(time_attr="epoch", grace_period=rungs[0], max_t=rungs[1],
                                  reduction_factor=ASHA_REDUCTION, stop_last_trials=False)
    else:
        scheduler = FIFOScheduler()
    progress = ProgressCallback(definition["trials"], epochs, say)
    if resume and tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space=_tune_space(space),
            tune_config=tune.TuneConfig(
                metric=METRIC, mode="min", num_samples=definition["trials"], scheduler=scheduler,
                # The generator itself limits concurrency: TuneConfig.max_concurrent_trials is
                # ignored (with a warning) once a search algorithm is given.
                search_alg=BasicVariantGenerator(max_concurrent=concurrency, random_state=definition["seed"]),
                trial_dirname_creator=lambda trial: trial.trial_id,
                # Not reused: after ASHA stopped a trial, reusing its actor failed ("reset_config()
                # … must return True") and the sweep hung (Ray 2.60).
                reuse_actors=False),
            run_config=tune.RunConfig(name=TUNE_DIR, storage_path=folder.locate(), verbose=0,
                                      callbacks=[progress], log_to_file=True))
    # A restored Tuner runs with the settings pickled when the sweep started: the callback that
    # printed to a terminal long gone, the old concurrency and budget. Ray 2.60 has no public way to
    # change them on restore, so this call's are set on its internal copy (checked in the tests).
    internal = tuner._local_tuner
    internal.get_run_config().callbacks = [progress]
    internal._tune_config.time_budget_s = None if max_minutes is None else 60 * max_minutes
    if isinstance(internal._tune_config.search_alg, BasicVariantGenerator):
        internal._tune_config.search_alg.max_concurrent = concurrency
    started = time.monotonic()
    # Ctrl-C: Tune's own handler (installed by fit) ends the loop, saves the experiment with its
    # unfinished trials still unfinished (so --resume continues them) and puts back the handler it
    # found — ours, which is how we learn that the sweep was interrupted. A second Ctrl-C reaches
    # ours and stops at once. (A Tune Stopper would not do: stopping marks trials finished and the
    # searcher done, and a restored sweep would then have nothing left to run.)
    interrupted = _Marker()
    previous = _install(interrupted)
    try:
        tuner.fit()
        handed_back = previous is not None and _current_handler() is interrupted
    except KeyboardInterrupt:
        return "interrupted"
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGINT, previous)
    if handed_back:
        return "interrupted"
    if max_minutes is not None and time.monotonic() - started >= 60 * max_minutes - 1:
        return "sweep_budget"
    return "completed"


class _Marker:
    """A SIGINT handler that Tune's handler hands back after the first Ctrl-C; a second one stops."""

    def __call__(self, signum, frame):
        raise KeyboardInterrupt


def _install(handler):
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None  # no signals off the main thread (and Tune installs none either)
    return signal.signal(signal.SIGINT, handler)


def _current_handler():
    import signal

    return signal.getsignal(signal.SIGINT)


def trial_number(trial_id: str) -> int:
    """Tune's trial ids end in their creation index (``…_00002``): trial 3."""
    tail = trial_id.rsplit("_", 1)[-1]
    return int(tail) + 1 if tail.isdigit() else 0


def read_outcomes(folder: Store, space: SearchSpace, stopped: str) -> list[TrialOutcome]:
    """Every trial Tune knows, judged from its own run folder (what it trained and kept)."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(folder.locate(TUNE_DIR), default_metric=METRIC, default_mode="min")
    outcomes = []
    for trial in sorted(analysis.trials, key=lambda t: (trial_number(t.trial_id), t.trial_id)):
        number = trial_number(trial.trial_id)
        run = RunFolder.open(folder.locate(f"{RUNS_DIR}/{trial.trial_id}"))
        rows = run.read_metrics() if run.exists() else []
        report = run.read_report() if rows else None
        params = {d.field: trial.config.get(d.field) for d in space.dimensions}
        val, best_epoch = objective(rows)
        error = None
        if report is not None:
            status = report.get("stopped", "completed")
        elif trial.status == "ERROR":
            status = "error"
            error = _error_line(trial)
        elif not rows and trial.status == "PENDING":
            status = "pending"
        elif stopped in ("interrupted", "sweep_budget"):
            status = stopped
        else:
            status = "stopped_early"
        outcomes.append(TrialOutcome(trial.trial_id, number, params, status, rows[-1]["epoch"] if rows else 0,
                                     val, best_epoch, run.display() if rows else None, error))
    return outcomes


def _error_line(trial) -> str:
    text = ""
    try:
        path = trial.error_file or ""
        text = Path(path).read_text(encoding="utf-8", errors="replace") if path and Path(path).exists() else ""
    except (OSError, AttributeError):
        pass
    return cause_line(text, "the trial failed")
