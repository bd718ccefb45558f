"""Sweeps of the loss weights on Ray Tune: the function behind ``distill sweep`` and ``jobs/sweep.py``.

``run_sweep`` = define the sweep (:mod:`distill.sweep_definition`: base config, search space) →
prepare the cache once and read its rows into Ray's object store once, for every trial → a Tune
experiment (:mod:`distill.ray_layer.sweep_tune`) whose trials each call
:func:`distill.ray_layer.train.train_model`, the function behind ``distill train``, with their own
loss weights (:mod:`distill.ray_layer.sweep_trial`) → the table, CSV, plot and best config
(:mod:`distill.sweep_results`) and the best trial's model in the library under the sweep's name.

Learned on Ray 2.60 (Tune with Train V2): ``Tuner(trainer)`` is gone; a trial is a function that
builds and fits its own ``TorchTrainer`` with ``TuneReportCallback`` in its ``RunConfig``, which
forwards rank 0's ``ray.train.report`` metrics to Tune (rank 0 reports ``val_mrstft``). A trial's
function is only a driver, so it asks for a sliver of CPU and its worker gets the rest; Ray Data
tasks started from a trial are not captured by the trial's placement group (checked: a
``materialize`` inside a 0.01-CPU trial runs).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from distill.prepared import PreparedDataset
from distill.ray_layer import ensure_ray
from distill.ray_layer.prepare import prepare_dataset
from distill.ray_layer.sweep_tune import TRIAL_DRIVER_CPUS, asha_rungs, read_outcomes, run_experiment
from distill.ray_layer.train import MIN_WORKER_CPUS, Sharing, train_model, training_datasets
from distill.run_folder import RunFolder, now
from distill.run_model import MODEL_FILE, keep_in_library
from distill.storage import Store
from distill.sweep_definition import (
    BEST_CONFIG,
    DEFAULT_TRIALS,
    PLOT,
    RESULTS_CSV,
    RUNS_DIR,
    SWEEP_FILE,
    SweepError,
    data_location,
    define_sweep,
    resumed_sweep,
    write_definition,
)
from distill.sweep_results import TrialOutcome, best_config_toml, objective_plot_png, pick_best, results_csv, table
from distill.sweep_space import SearchSpace, merge, overrides
from distill.training_run import resolve_config


@dataclass
class SweepResult:
    name: str
    folder: str
    stopped: str  # completed | interrupted | sweep_budget
    trials: list[TrialOutcome]
    best: TrialOutcome | None
    concurrency: int
    fields: list[str]  # the searched fields, the table's columns
    results_csv: str | None = None
    plot: str | None = None
    best_config: str | None = None
    model: dict | None = None  # {"name", "id", "library"} of the best trial's model in the library
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        return table(self.trials, self.fields, self.best)

    def to_json(self) -> dict:
        best = None if self.best is None else {
            "params": self.best.params, "val_mrstft": self.best.val_mrstft, "model": self.model,
            "trial": self.best.number, "trial_id": self.best.trial, "run_dir": self.best.run_dir}
        return {"name": self.name, "folder": self.folder, "stopped": self.stopped, "best": best,
                "trials": [t.to_dict() for t in self.trials], "results_csv": self.results_csv,
                "plot": self.plot, "best_config": self.best_config, "concurrency": self.concurrency,
                "notes": self.notes}


def plan_concurrency(trials: int, requested: int | None, workers: int, gpu: bool, cpus: float, gpus: float,
                     on_cluster: bool) -> tuple[int, str | None]:
    """How many trials train at once, and a note when ``requested`` had to be lowered.

    GPU trials: as many as the GPUs hold (``workers`` each). Local CPU trials: each worker needs at
    least :data:`MIN_WORKER_CPUS` of the CPUs left after the one Ray Data keeps, and by default a
    trial gets two CPUs of threads (concurrent trials on fewer cores only slow each other down).
    On a cluster the resources can grow (autoscaling), so a request is taken as given.
    """
    if trials < 1:
        raise SweepError(f"--trials must be at least 1, got {trials}")
    if requested is not None and requested < 1:
        raise SweepError(f"--max-concurrent must be at least 1, got {requested}")
    if gpu:
        fits = int(gpus // workers)
        if fits < 1 and not on_cluster:
            raise SweepError(f"a trial needs {workers} GPU(s); Ray sees {gpus:g}")
        default = max(1, fits)
    elif on_cluster:
        fits = default = max(1, int((cpus - 1) // workers))
    else:
        free = cpus - 1
        fits = max(1, int(free // (workers * MIN_WORKER_CPUS + TRIAL_DRIVER_CPUS))) if free > 0 else 1
        default = max(1, min(fits, int(free // (2 * workers))))
    if requested is None:
        return max(1, min(trials, default)), None
    if on_cluster or requested <= fits:
        return min(trials, requested), None
    room = (f"{gpus:g} GPUs at {workers} per trial" if gpu else
            f"{cpus:g} CPUs with one kept for reading data")
    return min(trials, fits), f"--max-concurrent {requested} does not fit {room}; running {fits} at a time"


def run_sweep(data_dir: str, *, trials: int | None = None, max_concurrent: int | None = None,
              preset: str | None = None, config_file: str | None = None, space_file: str | None = None,
              tune_lr: bool | None = None, scheduler: str | None = None, max_minutes: float | None = None,
              epochs: int | None = None, storage: str | None = None, name: str | None = None, resume: bool = False,
              cache: str | None = None, workers: int | None = None, gpu: bool | None = None,
              num_cpus: int | None = None, library: str | None = None, seed: int | None = None,
              log: Callable[[str], None] | None = None, **prepare_options) -> SweepResult:
    """Run (or with ``resume``, continue) the sweep ``name`` over the audio in ``data_dir``.

    The defining options (trials, preset, config, space, LR, scheduler, epochs, cache, workers, GPU,
    seed) are fixed when a sweep starts: ``resume`` refuses them. ``max_concurrent``,
    ``max_minutes``, ``num_cpus`` and ``library`` belong to each call. ``prepare_options`` go to
    :func:`prepare_dataset`. Raises :class:`SweepError`, :class:`~distill.sweep_space.SpaceError`,
    :class:`~distill.training_config.ConfigError` or :class:`~distill.prepare.PrepareError` with a
    readable message. Ctrl-C ends the sweep with ``stopped == "interrupted"``: finished trials are
    kept and ``resume`` runs the rest.
    """
    say = log or (lambda message: None)
    root = data_location(data_dir)
    defining = {"--trials": trials, "--preset": preset, "--config": config_file, "--space": space_file,
                "--tune-lr": tune_lr, "--scheduler": scheduler, "--epochs": epochs, "--cache": cache,
                "--workers": workers, "--gpu": gpu, "--seed": seed}
    if resume:
        definition, folder = resumed_sweep(root, storage=storage, name=name,
                                           changed=[k for k, v in defining.items() if v not in (None, False)])
    else:
        definition, folder = define_sweep(
            root, storage=storage, name=name, trials=DEFAULT_TRIALS if trials is None else trials, preset=preset,
            config_file=config_file, space_file=space_file, tune_lr=bool(tune_lr), scheduler=scheduler or "asha",
            epochs=epochs, cache=cache, workers=workers or 1, gpu=bool(gpu), seed=seed or 0)
    space = SearchSpace.from_dict(definition["space"], f"{folder.display(SWEEP_FILE)} space")
    cfg = resolve_config(root, definition["preset"], None, definition["base"])
    prepared = prepare_dataset(root, definition["cache"], cfg.prepare, num_cpus=num_cpus, log=say,
                               **prepare_options)
    if prepared.split_note:
        say(f"note: {prepared.split_note}")
    ensure_ray(num_cpus)
    import ray

    resources = ray.cluster_resources()
    on_cluster = bool(os.environ.get("RAY_ADDRESS"))
    concurrency, note = plan_concurrency(definition["trials"], max_concurrent, definition["workers"],
                                         definition["gpu"], resources.get("CPU", 1.0), resources.get("GPU", 0.0),
                                         on_cluster)
    notes = [note] if note else []
    for line in notes:
        say(f"note: {line}")
    definition.update(status="running", updated=now())
    write_definition(folder, definition)
    job = {"data_dir": root, "cache": definition["cache"], "runs": folder.locate(RUNS_DIR),
           "preset": definition["preset"], "base": definition["base"], "workers": definition["workers"],
           "gpu": definition["gpu"],
           "sharing": asdict(Sharing(int(resources.get("CPU", 1)), on_cluster, concurrency, TRIAL_DRIVER_CPUS))}
    rungs = asha_rungs(definition["epochs"]) if definition["scheduler"] == "asha" else None
    schedule = (f"ASHA stops laggards from epoch {rungs[0]}" if rungs else "every trial runs to its end"
                + (" (ASHA needs at least 2 epochs per trial)" if definition["scheduler"] == "asha" else ""))
    say(f"{'resuming' if resume else 'starting'} sweep {definition['name']}: {definition['trials']} trials, "
        f"{concurrency} at a time, {schedule}; searching {space.describe()}")
    # Every trial reads the same rows: they are read into Ray's object store once, here, and the
    # trials share them (measured: reading them took ~10 s of each tiny trial's ~32 s on 2 CPUs).
    # A searched seed orders the blocks differently per trial, so then each trial reads its own.
    searched = {d.field for d in space.searched}
    shared = None if "train.seed" in searched else training_datasets(PreparedDataset.open(definition["cache"]),
                                                                      cfg.train.seed)
    stopped = run_experiment(folder, definition, space, job, shared, concurrency, max_minutes, resume, say)
    return _finish(folder, definition, space, stopped, concurrency, library, notes, say, num_cpus)


def _finish(folder: Store, definition: dict, space: SearchSpace, stopped: str, concurrency: int,
            library: str | None, notes: list[str], say: Callable[[str], None], num_cpus: int | None) -> SweepResult:
    outcomes = read_outcomes(folder, space, stopped)
    if stopped == "sweep_budget" and len(outcomes) == definition["trials"] and all(
            o.status not in ("sweep_budget", "pending") for o in outcomes):
        stopped = "completed"  # the budget ran out just as the last trial finished
    for outcome in outcomes:  # a stopped trial's run folder says why (its driver was ended mid-run)
        if outcome.run_dir and outcome.status in ("stopped_early", "sweep_budget", "interrupted"):
            RunFolder.open(outcome.run_dir).update_run(status=outcome.status, error=None)
    fields = [d.field for d in space.searched]
    best = pick_best(outcomes)
    result = SweepResult(definition["name"], folder.display(), stopped, outcomes, best, concurrency, fields,
                         notes=notes)
    folder.write_bytes(RESULTS_CSV, results_csv(outcomes, [d.field for d in space.dimensions]))
    folder.write_bytes(PLOT, objective_plot_png(outcomes, space.searched, best))
    result.results_csv, result.plot = folder.display(RESULTS_CSV), folder.display(PLOT)
    if best is not None:
        config = merge(definition["base"], overrides(best.params))
        header = [f"The best trial of sweep {definition['name']} (trial {best.number}, {best.trial}): "
                  f"validation MR-STFT {best.val_mrstft:.4f} at epoch {best.best_epoch}.",
                  f"Train it with: distill train {definition['data_dir']} --config {folder.display(BEST_CONFIG)}",
                  "Raise train.epochs for a longer final run."]
        folder.write_bytes(BEST_CONFIG, best_config_toml(definition["preset"], config, header).encode("utf-8"))
        result.best_config = folder.display(BEST_CONFIG)
    if stopped != "interrupted" and best is not None:
        result.model = _keep_best(folder, definition, best, library, say, num_cpus)
    definition.update(status=stopped, updated=now(), best=None if best is None else {
        "trial": best.trial, "params": best.params, "val_mrstft": best.val_mrstft}, model=result.model)
    write_definition(folder, definition)
    return result


def _keep_best(folder: Store, definition: dict, best: TrialOutcome, library: str | None,
               say: Callable[[str], None], num_cpus: int | None) -> dict | None:
    """The best trial's model, into the library under the sweep's name (once per best trial)."""
    previous = definition.get("model")
    if previous and (definition.get("best") or {}).get("trial") == best.trial:
        return previous
    run = RunFolder.open(folder.locate(f"{RUNS_DIR}/{best.trial}"))
    if run.read_report() is None:
        # Stopped before its end (scheduler, budget): its best checkpoint is there, its model file
        # is not. Resuming it with no epochs left runs just the end of training: the quality report
        # and the model file, from the best checkpoint.
        say(f"writing the model file of trial {best.number} (it stopped before its end)")
        train_model(definition["data_dir"], resume=best.trial, storage=folder.locate(RUNS_DIR),
                    overrides={"train": {"epochs": best.epochs}}, num_cpus=num_cpus, keep=False, yes=True)
        run.update_run(status=best.status)  # what stopped it, not the ending's "completed"
    try:
        return keep_in_library(run, library, name=definition["name"])
    except (ValueError, OSError) as exc:
        say(f"warning: the best model was not added to the library ({exc}); add it with: "
            f"distill model import {run.display(MODEL_FILE)}")
        return None


__all__ = ["SweepError", "SweepResult", "plan_concurrency", "run_sweep"]
