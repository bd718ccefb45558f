"""Training on Ray Train (V2): the function behind ``distill train``, ``jobs/train.py`` and Tune trials.

``train_model`` = plan the run (:mod:`distill.training_run`) → bring the prepared cache up to date
on Ray Data (:func:`distill.ray_layer.prepare.prepare_dataset`) → a ``TorchTrainer`` whose workers
stream their shard of the Parquet rows (``get_dataset_shard`` → ``iter_torch_batches``), normalise
on the fly and train with DDP (:func:`distill.training_session.run_worker`) → the quality report.

Checkpoints: one bookkeeper, ours (:mod:`distill.checkpoint`), not ``ray.train.report(checkpoint=)``.
Why: (1) the policy "the last K and the best" is not expressible with ``CheckpointConfig`` (it keeps
the top K by one score); (2) the same files serve the plain loop, Tune trials and the model file
export; (3) they load with ``weights_only`` and are written atomically on any pyarrow filesystem.
Ray Train still does the fault tolerance: with ``FailureConfig(max_failures)`` a failed worker
group is restarted, and the restarted workers continue from our latest checkpoint in the run
folder, exactly as ``--resume`` does. Metrics go to ``ray.train.report`` every epoch (Tune reads
them there).

Learned on Ray 2.60 (Train V2 is the default): ``TorchTrainer.restore`` and
``resume_from_checkpoint=`` raise — a run resumes by calling ``fit()`` again; with 2 CPUs and
workers at 1 CPU each Ray Data gets nothing and the run hangs, so local workers get fractional
CPUs and one CPU stays free for reading. ``ray.train.report`` must be called by every worker.
"""

from __future__ import annotations

import io
import logging
import math
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow.parquet as pq

from distill.checkpoint import BEST
from distill.prepare import PrepareError
from distill.prepared import PreparedDataset
from distill.ray_layer import configure_ray_data, ensure_ray
from distill.ray_layer.prepare import prepare_dataset, read_split
from distill.run_folder import RunFolder
from distill.run_model import keep_in_library
from distill.split import TRAIN, VAL
from distill.training_run import PlannedRun, plan_run, record_run
from distill.training_session import RunSpec

POLL_SECONDS = 1.0
# A split whose decoded rows fit in this share of Ray's object store is read once and kept there
# (``materialize``); bigger ones stream from Parquet every epoch. Measured on the example data: a
# streamed epoch of 9 small shard files paid 1–2.5 s of read-task start-up (4–5 s next to a
# training worker on 2 CPUs), a materialized one 0.01–0.05 s.
MATERIALIZE_SHARE = 0.25
SHUFFLE_ROWS = 256  # local shuffle buffer per worker (rows of ~96 kB at the defaults)
MIN_WORKER_CPUS = 0.25  # the smallest Ray CPU share a local worker asks for (a sweep fits its trials to it)


class TrainError(RuntimeError):
    """Training failed (after Ray Train's retries); the message is the cause, on one line."""


@dataclass
class TrainResult:
    run_dir: str
    checkpoint: str | None  # the best checkpoint
    epochs: int
    val_mrstft: float | None
    ceiling_mrstft: float | None
    stopped: str  # completed | early_stop | time_budget | interrupted
    report: dict
    model: dict | None = None  # {"name", "id", "library"} of the model file kept in the library

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("report")
        return data


@dataclass(frozen=True)
class Sharing:
    """The machine one run's workers are planned on (see :func:`plan_workers`)."""

    total_cpus: int | None  # the CPUs Ray has (None: this machine's)
    on_cluster: bool  # a cluster's resources: whole CPUs per worker, Ray places them
    runs: int = 1  # runs training at the same time on these CPUs (a sweep's concurrent trials)
    driver_cpus: float = 0.0  # CPUs each run's driver holds (a Tune trial's share)


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers, with what resources, and how each one reads (sent to the workers)."""

    workers: int
    gpu: bool
    cpus_per_worker: float
    threads: int | None  # torch threads per worker (None: Ray's default)
    batch_size: int  # per worker
    steps_per_epoch: int
    has_val: bool


def plan_workers(workers: int, gpu: bool, batch_size: int, rows_train: int, rows_val: int,
                 total_cpus: int | None, on_cluster: bool, runs: int = 1, driver_cpus: float = 0.0) -> WorkerPlan:
    """Resources per worker so that Ray Data and training never starve each other.

    Locally, workers share all CPUs but one, which stays free for Ray Data (fractional CPUs: a
    Ray CPU is a scheduling unit, torch threads are set separately). ``runs`` runs train at the
    same time (a sweep's concurrent trials), each with a driver holding ``driver_cpus``: they
    split the same CPUs. ``batch_size`` is the global batch; each worker takes its share, so
    results do not depend on the worker count.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if on_cluster or gpu:
        cpus, threads = 1.0, None
    else:
        total = total_cpus or os.cpu_count() or 1
        slots = workers * runs
        free = total - 1 - runs * driver_cpus
        cpus = max(MIN_WORKER_CPUS, min(1.0, free / slots)) if total > 1 else 0.5 / slots
        threads = max(1, int(total // slots))
    per_worker = max(1, batch_size // workers)
    rows_per_worker = rows_train // workers  # Ray Train's split is equal: the remainder is dropped
    if rows_per_worker < 1:
        raise ValueError(f"{workers} workers need at least {workers} training rows, the cache has {rows_train}")
    return WorkerPlan(workers, gpu, cpus, threads, per_worker, math.ceil(rows_per_worker / per_worker),
                      rows_val > 0)


def _worker(config: dict) -> None:
    """Ray Train's ``train_loop_per_worker``: wire this worker's shard, device and DDP, then train."""
    import ray.train
    import ray.train.torch
    import torch

    from distill.distributed import SingleProcess, TorchDistributed
    from distill.training_session import WorkerEnv, run_worker

    for name in ("ray.data", "ray.train"):  # per-epoch "execution finished" / "Reporting result" lines
        logging.getLogger(name).setLevel(logging.WARNING)
    plan = WorkerPlan(**config["plan"])
    if plan.threads:
        torch.set_num_threads(plan.threads)
    context = ray.train.get_context()
    device = ray.train.torch.get_device()
    seed = config["seed"]
    train_shard = ray.train.get_dataset_shard(TRAIN)
    val_shard = ray.train.get_dataset_shard(VAL) if plan.has_val else None

    def train_batches(epoch: int):
        # A different, reproducible order every epoch (seeded by epoch), so a resumed run sees the
        # same batches as an uninterrupted one.
        for batch in train_shard.iter_torch_batches(batch_size=plan.batch_size, local_shuffle_buffer_size=SHUFFLE_ROWS,
                                                    local_shuffle_seed=seed * 100_003 + epoch):
            yield batch["spec"]

    def val_batches():
        for batch in val_shard.iter_torch_batches(batch_size=plan.batch_size):
            yield batch["spec"]

    world = context.get_world_size()
    env = WorkerEnv(
        train_batches=train_batches, val_batches=val_batches if val_shard is not None else None,
        steps_per_epoch=plan.steps_per_epoch, device=device, rank=context.get_world_rank(),
        wrap_model=lambda model: ray.train.torch.prepare_model(model, move_to_device=False),
        collective=TorchDistributed(device) if world > 1 else SingleProcess(),
        report=lambda metrics: ray.train.report(metrics), after_epoch=config.get("after_epoch"))
    run_worker(RunSpec(**config["spec"]), env)


def cause_line(text: str, fallback: str) -> str:
    """The innermost readable line of a Ray failure's text (a traceback): its last error line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors[-1] if errors else lines[-1] if lines else fallback)[:300]


def _cause(exc: BaseException) -> str:
    return cause_line(str(exc), type(exc).__name__)


def train_model(data_dir: str, *, preset: str | None = None, config_file: str | None = None,
                overrides: dict | None = None, name: str | None = None, storage: str | None = None,
                resume: str | None = None, cache: str | None = None, workers: int = 1, gpu: bool = False,
                num_cpus: int | None = None, max_failures: int = 2,
                progress: Callable[[dict], None] | None = None, log: Callable[[str], None] | None = None,
                after_epoch: Callable[[int, int], None] | None = None,
                prepare_progress: Callable | None = None, library: str | None = None, keep: bool = True,
                sharing: Sharing | None = None, callbacks: list | None = None, datasets: dict | None = None,
                analyse: bool = True, **prepare_options) -> TrainResult:
    """Train a model on the audio in ``data_dir`` (or continue the run ``resume``) on Ray Train.

    ``overrides`` are nested config fields (``{"train": {"epochs": 5}}``); ``progress`` receives the
    run's ``progress.json`` whenever it changes; ``after_epoch(epoch, rank)`` runs on every worker
    after every epoch (tests inject failures with it). ``prepare_options`` go to
    :func:`prepare_dataset` (``yes``, ``confirm``, …). The finished run's model file is added to
    ``library`` (default: the user's, from the settings) unless ``keep`` is false. A sweep's trials
    pass ``sharing`` (how many runs split the machine), ``callbacks`` (Ray Train user callbacks,
    e.g. Tune's reporter) and ``datasets`` (:func:`training_datasets` of the same cache, read once
    for all trials) and ``analyse=False`` (no latent analysis in the run's model file: only the kept
    trial's needs sliders). Raises :class:`TrainError`,
    :class:`~distill.training_run.RunError`, :class:`~distill.training_config.ConfigError` or
    :class:`~distill.prepare.PrepareError` with a readable message.
    """
    say = log or (lambda message: None)
    planned = plan_run(data_dir, preset=preset, config_file=config_file, overrides=overrides, name=name,
                       storage=storage, resume=resume, cache=cache)
    cfg = planned.config
    say(f"{'resuming' if planned.resumed else 'starting'} run {planned.run.display()} (preset {cfg.preset})")
    prepared_result = prepare_dataset(planned.data_dir, planned.cache, cfg.prepare, num_cpus=num_cpus, log=say,
                                      progress=prepare_progress, **prepare_options)
    prepared = PreparedDataset.open(planned.cache)
    if prepared.num_rows(TRAIN) == 0:
        raise PrepareError(f"{prepared.store.display()}: no training rows (every file is in the validation split)")
    if prepared_result.split_note:
        say(f"note: {prepared_result.split_note}")
    sharing = sharing or Sharing(num_cpus, bool(os.environ.get("RAY_ADDRESS")))
    plan = plan_workers(workers, gpu, cfg.train.batch_size, prepared.num_rows(TRAIN), prepared.num_rows(VAL),
                        sharing.total_cpus, sharing.on_cluster, sharing.runs, sharing.driver_cpus)
    record_run(planned, workers=workers, gpu=gpu)
    if datasets is None:
        ensure_ray(num_cpus)
        datasets = training_datasets(prepared, cfg.train.seed)
    result = _fit(planned, prepared, plan, num_cpus, max_failures, progress, after_epoch, callbacks or [], datasets,
                  analyse)
    if keep and result.stopped != "interrupted":
        try:
            result.model = keep_in_library(planned.run, library)
        except (ValueError, OSError) as exc:  # the run is fine; only the library is unusable
            say(f"warning: the model was not added to the library ({exc}); add it with: "
                f"distill model import {planned.run.display('model.distill')}")
        if result.model:
            say(f"model {result.model['name']} ({result.model['id']}) kept in {result.model['library']}")
    return result


def training_datasets(prepared: PreparedDataset, seed: int) -> dict:
    """The Ray Datasets a run trains on: ``train`` (blocks in an order seeded by ``seed``) and ``val``."""
    configure_ray_data()
    datasets = {TRAIN: _dataset(prepared, TRAIN, seed)}
    if prepared.num_rows(VAL) > 0:
        datasets[VAL] = _dataset(prepared, VAL, None)
    return datasets


def _dataset(prepared: PreparedDataset, split: str, seed: int | None):
    """One split's ``spec`` column as a Ray Dataset: kept in the object store when it fits, else streamed.

    Blocks come in a fixed order (one per shard; shuffled by ``seed`` for training), not in task
    completion order, so every run, and every resumed run, sees the same rows in the same order;
    ingest sets ``preserve_order`` for iteration too.
    """
    import ray

    order = list(range(len(prepared.shard_paths(split))))
    if seed is not None:
        order = [int(i) for i in np.random.default_rng(seed).permutation(len(order))]
    decoded = prepared.num_rows(split) * prepared.config.bytes_per_row
    if decoded <= MATERIALIZE_SHARE * ray.cluster_resources().get("object_store_memory", 0):
        # Read here and put in the object store as it is: reading it through Ray Data and
        # materialize() cost 2.5-3 s per split in read-task start-up (measured, example data,
        # 2 CPUs), for a few MB that pyarrow reads in milliseconds.
        paths = prepared.shard_paths(split)
        tables = [pq.read_table(io.BytesIO(prepared.store.read_bytes(paths[i])), columns=["spec"]) for i in order]
        ds = ray.data.from_arrow(tables)
    else:
        ds = read_split(prepared, split).select_columns(["spec"])
        if seed is not None:
            ds = ds.randomize_block_order(seed=seed)
    ds.context.execution_options.preserve_order = True
    return ds


def _fit(planned: PlannedRun, prepared: PreparedDataset, plan: WorkerPlan, num_cpus: int | None,
         max_failures: int, progress: Callable[[dict], None] | None, after_epoch, callbacks: list,
         datasets: dict, analyse: bool = True) -> TrainResult:
    import ray.train
    from ray.train.torch import TorchTrainer

    ensure_ray(num_cpus)
    configure_ray_data()
    with warnings.catch_warnings():  # Ray 2.60 warns about its own deprecated default field
        warnings.simplefilter("ignore")
        ingest = ray.train.DataConfig.default_ingest_options()
    ingest.preserve_order = True
    cfg = planned.config
    spec = RunSpec(planned.run.store.locate(), planned.cache, planned.data_dir, cfg.to_dict(), analyse=analyse)
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"spec": asdict(spec), "plan": asdict(plan), "seed": cfg.train.seed,
                           "after_epoch": after_epoch},
        scaling_config=ray.train.ScalingConfig(
            num_workers=plan.workers, use_gpu=plan.gpu,
            resources_per_worker={"CPU": plan.cpus_per_worker, **({"GPU": 1} if plan.gpu else {})}),
        run_config=ray.train.RunConfig(name=planned.name, storage_path=planned.storage,
                                       failure_config=ray.train.FailureConfig(max_failures=max_failures),
                                       callbacks=callbacks,
                                       # Progress is ours (progress.json); Ray's per-report INFO lines
                                       # would repeat every metric on the console.
                                       logging_config=ray.train.LoggingConfig(log_level="WARNING")),
        datasets=datasets,
        # Validation is not split: every rank evaluates all of it, so all agree on early stopping
        # without communication. preserve_order makes each epoch's batches reproducible (resume).
        dataset_config=ray.train.DataConfig(datasets_to_split=[TRAIN], execution_options=ingest))
    # fit() runs in a thread and this thread polls progress: Ray Train's fit() installs its own
    # SIGINT handler when it runs in the main thread, which aborts the run and ends the process
    # with SystemExit before our code can report anything (Ray 2.60). Off the main thread it does
    # not, so Ctrl-C reaches us as KeyboardInterrupt here; leaving the process (which stops the
    # embedded Ray) or the job (on a cluster) then stops the workers.
    outcome: dict = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # noqa: BLE001 — handed to the main thread below
            outcome["error"] = exc

    worker = threading.Thread(target=fit, name="distill-train-fit", daemon=True)
    worker.start()
    last = None
    try:
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            if progress is not None and (current := planned.run.read_progress()) and current != last:
                last = current
                progress(current)
    except KeyboardInterrupt:  # Ctrl-C: what the last finished epoch left is the result
        planned.run.update_run(status="interrupted")
        return _result(planned.run, "interrupted")
    if "error" in outcome:  # Ray Train wraps worker failures in its own error types
        exc = outcome["error"]
        planned.run.update_run(status="failed", error=_cause(exc))
        raise TrainError(f"training failed: {_cause(exc)}") from None
    return _result(planned.run, None)


def _result(run: RunFolder, stopped: str | None) -> TrainResult:
    """The run's outcome: its final report, or (interrupted) what its last finished epoch left."""
    if stopped is None and (report := run.read_report()):
        return TrainResult(run_dir=run.display(), checkpoint=report.get("checkpoint"), epochs=report["epochs"],
                           val_mrstft=report["val_mrstft"], ceiling_mrstft=report["ceiling_mrstft"],
                           stopped=report["stopped"], report=report)
    rows = run.read_metrics()
    progress = run.read_progress() or {}
    return TrainResult(run_dir=run.display(), checkpoint=run.display(BEST) if run.store.exists(BEST) else None,
                       epochs=rows[-1]["epoch"] if rows else 0,
                       val_mrstft=rows[-1].get("val_mrstft") if rows else None,
                       ceiling_mrstft=progress.get("ceiling_mrstft"), stopped=stopped or "interrupted", report={})
