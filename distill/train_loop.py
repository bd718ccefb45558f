"""The plain training loop: iterables of batches in, reports through a callback out; no Ray inside.

Ray Train's worker function (and Tune's trials) call :func:`train_loop` with their dataset shards;
tests call it with lists of tensors. Batches are model-space tensors ``(B, 2, n_mels, frames)``
(``distill.model.to_model_space``). The loop does AdamW with a cosine learning-rate schedule over
all steps, gradient clipping, mixed precision on CUDA, early stopping on the validation loss, and a
wall-clock budget. A step whose loss or gradients are not finite is skipped and counted, never
applied. Everything besides the weights that is needed to continue exactly (optimiser, schedule,
epoch, step, best validation loss, RNG states) is in :class:`LoopState`; a checkpoint stores it
next to ``model.state_dict()``. Runs continue at epoch boundaries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import torch

from distill.config_io import config_to_dict, config_values
from distill.distributed import Collective, SingleProcess

STOP_REASONS = ("completed", "early_stop", "time_budget", "interrupted")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (presets fill these; every field can be overridden)."""

    epochs: int = 50
    batch_size: int = 16
    lr: float = 1e-3  # peak learning rate (cosine decay to lr · min_lr_ratio)
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # max global gradient norm
    patience: int = 10  # epochs without a better validation loss before stopping; 0 = never
    max_minutes: float | None = None  # wall-clock budget; None = none
    amp: bool = True  # mixed precision when training on CUDA (ignored on CPU)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("lr", "weight_decay", "grad_clip", "min_lr_ratio"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"train.{name} must be a finite number >= 0, got {value!r}")
        if self.patience < 0:
            raise ValueError(f"train.patience must be >= 0, got {self.patience}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"train.max_minutes must be positive, got {self.max_minutes}")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return cls(**config_values(cls, data, "train"))


@dataclass
class EpochReport:
    epoch: int  # 1-based
    step: int  # optimiser steps so far
    train: dict[str, float]  # mean of each loss term over the epoch's applied steps
    val: dict[str, float]  # mean of each loss term over the validation batches ({} without them)
    lr: float
    seconds: float
    skipped_steps: int  # steps skipped this epoch because of a non-finite loss or gradient
    best: bool  # the best validation loss so far
    data_seconds: float = 0.0  # time spent waiting for the next training batch (input pipeline stalls)
    samples: int = 0  # training examples this epoch (this rank)
    train_seconds: float = 0.0  # the training steps alone (``seconds`` adds validation)


@dataclass
class LoopState:
    """What a checkpoint needs to continue exactly where the loop stopped."""

    epoch: int = 0
    step: int = 0
    best_val: float = math.inf
    epochs_without_improvement: int = 0
    skipped_steps: int = 0
    optimizer: dict = field(default_factory=dict)
    scheduler: dict = field(default_factory=dict)
    rng: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _mean(sums: dict[str, float], count: int) -> dict[str, float]:
    return {k: v / count for k, v in sums.items()} if count else {}


def train_loop(model: torch.nn.Module, loss_fn: torch.nn.Module, train_batches: Callable[[int], Iterable],
               val_batches: Callable[[], Iterable] | None, cfg: TrainConfig, steps_per_epoch: int, *,
               device: torch.device | str = "cpu", state: LoopState | None = None,
               on_epoch: Callable[[EpochReport, LoopState], bool | None] | None = None,
               collective: Collective | None = None,
               on_step: Callable[[int, int], None] | None = None) -> tuple[LoopState, str]:
    """Train ``model`` and return the final :class:`LoopState` and why it stopped (:data:`STOP_REASONS`).

    ``train_batches(epoch)`` yields model-space batches ``(B, 2, n_mels, frames)`` for one epoch;
    ``val_batches()`` the validation batches. ``loss_fn(recon, target, mean, logvar, step)`` returns
    a dict of terms with ``total`` (``distill.loss.VAELoss``). ``on_epoch(report, state)`` is called
    after every epoch (checkpointing, progress); returning True stops the run ("interrupted").
    ``state`` continues an earlier run (from a checkpoint). Under DDP, ``collective``
    (:mod:`distill.distributed`) makes every rank take the same skip and stop decisions; each rank
    must then yield the same number of batches per epoch (Ray Train's equal split does), and
    ``val_batches`` must be the same on every rank. ``on_step(epoch, batches_done)`` is called after
    every batch (live progress within long epochs).
    """
    collective = collective or SingleProcess()
    device = torch.device(device)
    model.to(device)
    loss_fn.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = max(1, cfg.epochs * steps_per_epoch)

    def cosine(step: int) -> float:
        progress = min(1.0, step / total_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, cosine)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if state is None:
        torch.manual_seed(cfg.seed)
        state = LoopState()
    else:
        optimiser.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        _set_rng_state(state.rng)
    started = time.monotonic()
    deadline = None if cfg.max_minutes is None else started + 60 * cfg.max_minutes
    reason = "completed"
    while state.epoch < cfg.epochs:
        epoch_start, sums, applied, skipped = time.monotonic(), {}, 0, 0
        data_seconds, samples = 0.0, 0
        model.train()
        batches = iter(train_batches(state.epoch))
        while True:
            waited = time.monotonic()
            batch = next(batches, None)
            data_seconds += time.monotonic() - waited
            if batch is None:
                break
            samples += batch.shape[0]
            batch = batch.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=use_amp):
                recon, mean, logvar = model(batch)
            terms = loss_fn(recon.float(), batch, mean.float(), logvar.float(), state.step)
            optimiser.zero_grad(set_to_none=True)
            # Backward even when the loss is not finite: under DDP every rank must join the
            # gradient all-reduce inside backward(). The step is skipped below, on all ranks.
            scaler.scale(terms["total"]).backward()
            scaler.unscale_(optimiser)
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
            bad, out_of_time = collective.any([
                not (torch.isfinite(terms["total"]) and torch.isfinite(norm)),
                deadline is not None and time.monotonic() > deadline])
            if bad:
                skipped += 1
                optimiser.zero_grad(set_to_none=True)
                scaler.update()
            else:
                scaler.step(optimiser)
                scaler.update()
                scheduler.step()
                state.step += 1
                applied += 1
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach())
            if on_step is not None:
                on_step(state.epoch, applied + skipped)
            if out_of_time:
                reason = "time_budget"
                break
        train_seconds = time.monotonic() - epoch_start
        state.epoch += 1
        state.skipped_steps += skipped
        val = evaluate(model, loss_fn, val_batches, device, state.step) if val_batches else {}
        train_means = _epoch_means(sums, applied, collective)
        monitored = val.get("total", train_means.get("total", math.inf))
        best = monitored < state.best_val
        if best:
            state.best_val, state.epochs_without_improvement = monitored, 0
        else:
            state.epochs_without_improvement += 1
        state.optimizer, state.scheduler, state.rng = optimiser.state_dict(), scheduler.state_dict(), _rng_state()
        report = EpochReport(state.epoch, state.step, train_means, val,
                             scheduler.get_last_lr()[0],
                             time.monotonic() - epoch_start, skipped, best, data_seconds, samples,
                             train_seconds)
        if on_epoch is not None and on_epoch(report, state):
            return state, "interrupted"
        if reason == "time_budget":
            break
        if cfg.patience and state.epochs_without_improvement >= cfg.patience:
            reason = "early_stop"
            break
        if deadline is not None and time.monotonic() > deadline:
            reason = "time_budget"
            break
    return state, reason


def _epoch_means(sums: dict[str, float], applied: int, collective: Collective) -> dict[str, float]:
    """Means of the epoch's loss terms over every rank's applied steps (identical on all ranks)."""
    if collective.world_size == 1:
        return _mean(sums, applied)
    keys = sorted(sums) if sums else []
    totals = collective.sum([sums.get(k, 0.0) for k in keys] + [float(applied)])
    # A rank with no applied steps has no keys; ranks with keys agree on them (same loss terms).
    return _mean(dict(zip(keys, totals[:-1], strict=True)), int(totals[-1])) if keys else {}


@torch.no_grad()
def evaluate(model: torch.nn.Module, loss_fn: torch.nn.Module, batches: Callable[[], Iterable],
             device: torch.device, step: int) -> dict[str, float]:
    """Mean loss terms over ``batches()`` in eval mode (the posterior mean, no sampling)."""
    model.eval()
    sums, count = {}, 0
    for batch in batches():
        batch = batch.to(device)
        recon, mean, logvar = model(batch)
        terms = loss_fn(recon, batch, mean, logvar, step)
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value)
        count += 1
    model.train()
    return _mean(sums, count)
