"""One training worker's whole job, without Ray: resume, train, checkpoint, report, evaluate.

Ray Train's worker function (:mod:`distill.ray_layer.train`) calls :func:`run_worker` with its
dataset shard, its DDP wrapper and ``ray.train.report``; a benchmark or a test calls it with
plain iterables. Every rank trains; rank 0 alone writes the run folder and the checkpoints.

Per epoch (rank 0): the waveform metric (validation MR-STFT of the model's reconstructions
against the original audio, :mod:`distill.evaluation`), one metrics row, the checkpoint (model,
optimiser, schedule, epoch, RNG states, config, normalisation statistics, metric history),
``metrics.csv``, the loss curve, progress, and audio previews every ``run.preview_every`` epochs.
At the end: the quality report of the best checkpoint next to the representation's ceiling.

Resume is the same call: when the run folder has a checkpoint, training continues from the latest
one (a restarted worker after a failure does exactly this), so at most one epoch is lost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch

from distill.checkpoint import BEST, latest_checkpoint, load_checkpoint, save_checkpoint
from distill.distributed import Collective, SingleProcess
from distill.evaluation import EvalSet, ceiling_mrstft, load_eval_set, model_mrstft
from distill.inference import sample_prior
from distill.loss import VAELoss
from distill.model import SpectrogramVAE, to_model_space
from distill.plots import loss_curve_png
from distill.prepared import PreparedDataset
from distill.run_folder import PREVIEWS, RunFolder, now
from distill.run_model import save_run_model
from distill.stats import SpectralStats
from distill.train_loop import EpochReport, LoopState, train_loop
from distill.training_config import TrainingConfig

PROGRESS_SECONDS = 2.0  # rank 0 rewrites progress.json at most this often within an epoch


@dataclass(frozen=True)
class RunSpec:
    """What every worker needs to find its run (plain strings: it travels to Ray workers)."""

    run_dir: str  # run folder, path or URI
    cache: str  # prepared cache, path or URI
    data_dir: str  # the audio folder (originals for the quality measurements)
    config: dict  # TrainingConfig.to_dict()
    analyse: bool = True  # the latent analysis (sliders) in the model file; sweep trials leave it to the kept one


@dataclass
class WorkerEnv:
    """How this process trains: its rank, data, device, and the hooks the Ray layer fills in."""

    train_batches: Callable[[int], Iterable[torch.Tensor]]  # epoch → raw (B, 2, n_mels, frames) batches
    val_batches: Callable[[], Iterable[torch.Tensor]] | None  # the same raw batches on every rank
    steps_per_epoch: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rank: int = 0
    wrap_model: Callable[[torch.nn.Module], torch.nn.Module] = lambda m: m  # e.g. DDP
    collective: Collective = field(default_factory=SingleProcess)
    report: Callable[[dict], None] = lambda metrics: None  # ray.train.report on Ray
    after_epoch: Callable[[int, int], None] | None = None  # (epoch, rank); failure injection in tests


def _normalised(batches: Iterable[torch.Tensor], stats: SpectralStats, device: torch.device) -> Iterator[torch.Tensor]:
    mean, std = stats.mean.to(device), stats.std.to(device)
    for batch in batches:
        yield to_model_space(batch.to(device, non_blocking=True).float(), mean, std)


def _row(report: EpochReport, val_mrstft: float | None, elapsed: float) -> dict:
    """One metrics row: loss terms as ``train_loss_<term>``/``val_loss_<term>``; ``val_mrstft`` is the
    waveform metric against the original audio (comparable across loss weights, unlike the loss)."""
    row = {"epoch": report.epoch, "step": report.step}
    row.update({f"train_loss_{k}": v for k, v in report.train.items() if k != "beta"})
    row.update({f"val_loss_{k}": v for k, v in report.val.items() if k != "beta"})
    row.update(val_mrstft=val_mrstft, kl_beta=report.train.get("beta"), lr=report.lr,
               seconds=round(report.seconds, 3), train_seconds=round(report.train_seconds, 3),
               samples=report.samples,
               data_wait_seconds=round(report.data_seconds, 3), skipped_steps=report.skipped_steps,
               best=report.best, elapsed_seconds=round(elapsed, 3))
    return row


class _Rank0:
    """What only rank 0 does: measure against the originals, write the run folder and checkpoints."""

    def __init__(self, spec: RunSpec, cfg: TrainingConfig, run: RunFolder, prepared: PreparedDataset,
                 stats: SpectralStats, model: SpectrogramVAE, history: list[dict]):
        self.cfg, self.run, self.stats, self.model, self.history = cfg, run, stats, model, history
        self.prepared = prepared
        self.analyse = spec.analyse
        self.spectral = cfg.prepare.spectral
        self.full = load_eval_set(prepared, spec.data_dir, max(cfg.run.report_chunks, cfg.run.eval_chunks))
        self.eval = self.full.subset(cfg.run.eval_chunks)
        self.ceiling = ceiling_mrstft(self.eval, self.spectral)
        self.started = time.monotonic()
        self.last_progress = 0.0

    def preview(self, folder: str, eval_set: EvalSet, recon: torch.Tensor) -> None:
        count = min(self.cfg.run.num_previews, len(eval_set))
        if count == 0:
            return
        rate = self.spectral.sample_rate
        for k in range(count):
            self.run.write_wav(f"{folder}/original-{k + 1}.wav", eval_set.audio[k].numpy(), rate)
            self.run.write_wav(f"{folder}/recon-{k + 1}.wav", recon[k].numpy(), rate)
        prior = sample_prior(self.model, count, eval_set.spec.shape[-1], self.stats, self.spectral,
                             seed=self.cfg.train.seed, length=eval_set.audio.shape[-1])
        for k in range(count):
            self.run.write_wav(f"{folder}/prior-{k + 1}.wav", prior[k].numpy(), rate)

    def progress(self, state: str, epoch: int, batches: int, steps_per_epoch: int, row: dict | None) -> None:
        cfg = self.cfg.train
        elapsed = time.monotonic() - self.started
        done = row["epoch"] if row else epoch
        rows = [r for r in self.history if r.get("seconds")]
        eta = None
        if rows:
            eta = sum(r["seconds"] for r in rows[-5:]) / len(rows[-5:]) * max(0, cfg.epochs - done)
            if cfg.max_minutes is not None:
                eta = min(eta, max(0.0, 60 * cfg.max_minutes - elapsed))
        self.run.write_progress({"state": state, "epoch": epoch, "epochs": cfg.epochs, "batches": batches,
                                 "batches_per_epoch": steps_per_epoch, "eta_seconds": eta,
                                 "last": row, "ceiling_mrstft": self.ceiling, "updated": now()})
        self.last_progress = time.monotonic()

    def on_epoch(self, report: EpochReport, state: LoopState, steps_per_epoch: int) -> dict:
        score, recon = model_mrstft(self.model, self.eval, self.stats, self.spectral)
        row = _row(report, score, time.monotonic() - self.started)
        self.history.append(row)
        payload = {"model": self.model.state_dict(), "loop": state.to_dict(), "config": self.cfg.to_dict(),
                   "stats": {"mean": self.stats.mean, "std": self.stats.std}, "metrics": self.history}
        save_checkpoint(self.run.store, payload, epoch=report.epoch, best=report.best,
                        keep_last=self.cfg.run.keep_last)
        every = self.cfg.run.preview_every
        if every and report.epoch % every == 0:
            self.preview(f"{PREVIEWS}/epoch-{report.epoch:04d}", self.eval, recon)
        self.run.write_metrics(self.history)
        self.run.write_curve(loss_curve_png(self.history, self.ceiling))
        self.progress("training", report.epoch, steps_per_epoch, steps_per_epoch, row)
        return row

    def finish(self, stopped: str, state: LoopState) -> dict:
        """Quality report of the best checkpoint on up to ``report_chunks`` chunks; final previews."""
        best = load_checkpoint(self.run.store, BEST) if self.run.store.exists(BEST) else None
        if best is not None:
            self.model.load_state_dict(best["model"])
        score, recon = model_mrstft(self.model, self.full, self.stats, self.spectral)
        ceiling = ceiling_mrstft(self.full, self.spectral)
        self.preview(f"{PREVIEWS}/final", self.full, recon)
        report = {
            "stopped": stopped, "epochs": state.epoch, "steps": state.step, "skipped_steps": state.skipped_steps,
            "best_epoch": best["epoch"] if best else None,
            "checkpoint": self.run.display(BEST) if best else None,
            "val_mrstft": score, "ceiling_mrstft": ceiling,
            "model_share": None if score <= 0 else max(0.0, (score - ceiling) / score),
            "eval_chunks": len(self.full), "eval_split": self.full.split,
            "eval_files": sorted(set(self.full.sources)),
            "note": ("measured on training chunks: the collection has no validation files"
                     if self.full.split != "val" else ""),
            "seconds": round(time.monotonic() - self.started, 3), "finished": now()}
        # The model file carries the report, so it is written first and the report then names it.
        report["model_file"] = save_run_model(self.run, self.prepared, self.model, self.cfg, self.stats, report,
                                              analyse=self.analyse)
        self.run.write_report(report)
        self.run.write_curve(loss_curve_png(self.history, self.ceiling))
        self.progress("finished", state.epoch, 0, 0, self.history[-1] if self.history else None)
        return report


def run_worker(spec: RunSpec, env: WorkerEnv) -> dict | None:
    """Train (or continue) the run ``spec`` in this process; rank 0 returns the final report."""
    cfg = TrainingConfig.from_dict(spec.config)
    run = RunFolder.open(spec.run_dir)
    prepared = PreparedDataset.open(spec.cache)
    stats = prepared.stats
    torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank and every fresh start
    model = SpectrogramVAE(cfg.model)
    loss = VAELoss(cfg.loss, cfg.prepare.spectral, stats.mean, stats.std)
    state, history = None, []
    latest = latest_checkpoint(run.store)
    if latest is not None:
        payload = load_checkpoint(run.store, latest)
        model.load_state_dict(payload["model"])
        state, history = LoopState(**payload["loop"]), list(payload["metrics"])
    model.to(env.device)
    trained = env.wrap_model(model)
    rank0 = _Rank0(spec, cfg, run, prepared, stats, model, history) if env.rank == 0 else None

    def on_epoch(report: EpochReport, loop_state: LoopState) -> None:
        row = rank0.on_epoch(report, loop_state, env.steps_per_epoch) if rank0 else None
        metrics = row or {"epoch": report.epoch, "step": report.step}
        env.report({k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
                    and v is not None and math.isfinite(v)})
        if env.after_epoch is not None:
            env.after_epoch(report.epoch, env.rank)

    def on_step(epoch: int, batches: int) -> None:
        if rank0 and time.monotonic() - rank0.last_progress > PROGRESS_SECONDS:
            rank0.progress("training", epoch, batches, env.steps_per_epoch, history[-1] if history else None)

    if rank0:
        run.update_run(status="training", resumed_from=latest)
        rank0.progress("training", state.epoch if state else 0, 0, env.steps_per_epoch,
                       history[-1] if history else None)
    val = None
    if env.val_batches is not None:
        val = lambda: _normalised(env.val_batches(), stats, env.device)  # noqa: E731
    state, stopped = train_loop(
        trained, loss, lambda epoch: _normalised(env.train_batches(epoch), stats, env.device), val, cfg.train,
        env.steps_per_epoch, device=env.device, state=state, on_epoch=on_epoch, collective=env.collective,
        on_step=on_step)
    if rank0 is None:
        return None
    report = rank0.finish(stopped, state)
    run.update_run(status=stopped, finished=report["finished"])
    return report
