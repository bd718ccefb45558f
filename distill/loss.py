"""The training loss: a multi-resolution STFT loss on *audio*, per-channel spectrogram terms, and KL.

Audio term. The decoder output is turned into audio with the product's own differentiable
synthesis (``distill.representation.synthesize``, the same phase rebuild users hear) and compared
with auraloss's multi-resolution STFT loss at resolutions suited to 48 kHz. The reference is the
*target spectrogram's own synthesis*, not the original chunk audio: (1) a perfect reconstruction
then scores exactly 0, so the term measures the model and not the representation's round-trip
error (0.93 MR-STFT on real recordings), which no model weight can reduce and which would otherwise
dominate the gradient; (2) both sides share one phase rebuild, so the term compares what the
model controls — magnitudes and IF — as heard; (3) the shards need not store audio. The model's
distance to the *original* audio is still what the validation metric and the quality report
measure (with the fixed evaluation setting of ``distill.quality``).

Spectrogram terms. L1 on channel 0 in model space (z-scored log amplitude), and L1 on the IF
channel weighted by how audible the target band is: 0 at or below ``if_threshold_db``, rising
linearly to 1 at 0 dBFS. The weight is a fixed function of the target, averaged over all elements:
no division by a data-dependent mean that could be near zero on a quiet batch.

KL. Per latent dimension, averaged over batch and time, floored at ``free_bits`` nats (dimensions
below the floor are not pushed further towards the prior, which keeps them usable), summed over
dimensions and scaled by β, which warms up linearly from 0 over ``kl_warmup_steps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import auraloss
import torch

from distill.config_io import config_to_dict, config_values
from distill.model import from_model_space
from distill.representation import synthesize
from distill.spectral_config import PHASE_METHOD_NAMES, SpectralConfig


@dataclass(frozen=True)
class LossConfig:
    """Every weight of the loss (Ray Tune sweeps these)."""

    # Audio term. 0.1 for now (a one-off toy measurement): at 1.0 its gradient (through the phase
    # rebuild) swamped the others and a small model could not fit two steady tones in 80 steps
    # (magnitude L1 0.75 → 0.65; → 0.47 at 0.1, → 0.10 without it). Provisional until the
    # learning-curve benchmark of issue #4 and Tune.
    mrstft_weight: float = 0.1
    mrstft_fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256)  # 43, 21, 11, 5 ms at 48 kHz; hop n/4
    magnitude_weight: float = 1.0  # L1 on z-scored log amplitude
    if_weight: float = 1.0  # audibility-weighted L1 on IF
    kl_beta: float = 1e-3  # β after warm-up
    kl_warmup_steps: int = 2000  # optimiser steps for β to rise from 0
    free_bits: float = 0.05  # nats per latent dimension below which KL is not penalised
    synthesis: str = "pghi"  # phase rebuild used by the audio term (see distill.phase.METHODS)

    def __post_init__(self) -> None:
        for name in ("mrstft_weight", "magnitude_weight", "if_weight", "kl_beta", "free_bits"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"loss.{name} must be a finite number >= 0, got {value!r}")
        if len(self.mrstft_fft_sizes) < 3 or any(n < 16 or n & (n - 1) for n in self.mrstft_fft_sizes):
            raise ValueError(f"loss.mrstft_fft_sizes needs >= 3 powers of two >= 16, got {self.mrstft_fft_sizes}")
        if self.kl_warmup_steps < 0:
            raise ValueError(f"loss.kl_warmup_steps must be >= 0, got {self.kl_warmup_steps}")
        if self.synthesis not in PHASE_METHOD_NAMES:
            raise ValueError(f"loss.synthesis must be one of {list(PHASE_METHOD_NAMES)}, got {self.synthesis!r}")

    def beta(self, step: int) -> float:
        """KL weight at optimiser step ``step``."""
        if self.kl_warmup_steps == 0:
            return self.kl_beta
        return self.kl_beta * min(1.0, step / self.kl_warmup_steps)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LossConfig:
        return cls(**config_values(cls, data, "loss"))


def audibility(log_amp: torch.Tensor, spectral: SpectralConfig) -> torch.Tensor:
    """Raw log amplitude → weight in [0, 1]: 0 at or below ``if_threshold_db``, 1 at 0 dBFS."""
    amplitude = (log_amp.exp() - spectral.log_floor).clamp_min(1e-12)
    db = 20.0 * torch.log10(amplitude)
    return ((db - spectral.if_threshold_db) / -spectral.if_threshold_db).clamp(0.0, 1.0)


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """KL(q(z|x) ‖ N(0, I)) for ``(B, latent, T)`` posteriors: per dimension, floored, summed."""
    per_element = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)
    per_dimension = per_element.mean(dim=(0, 2))
    return per_dimension.clamp_min(free_bits).sum()


class VAELoss(torch.nn.Module):
    """``loss(recon, target, mean, logvar, step)`` → dict of scalar terms and their weighted ``total``.

    ``recon`` and ``target`` are in model space (``distill.model.to_model_space``) ``(B, 2, M, N)``;
    ``stats_mean``/``stats_std`` are the ``(2, M)`` training statistics used to return to raw values.
    """

    def __init__(self, cfg: LossConfig, spectral: SpectralConfig, stats_mean: torch.Tensor,
                 stats_std: torch.Tensor):
        super().__init__()
        self.cfg, self.spectral = cfg, spectral
        self.register_buffer("stats_mean", stats_mean.detach().clone().float())
        self.register_buffer("stats_std", stats_std.detach().clone().float())
        self.mrstft = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=list(cfg.mrstft_fft_sizes), hop_sizes=[n // 4 for n in cfg.mrstft_fft_sizes],
            win_lengths=list(cfg.mrstft_fft_sizes))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        return from_model_space(x, self.stats_mean, self.stats_std, self.spectral.log_floor)

    def forward(self, recon: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        raw_target = self.raw(target)
        magnitude = (recon[:, 0] - target[:, 0]).abs().mean()
        weight = audibility(raw_target[:, 0], self.spectral)
        inst_freq = (weight * (recon[:, 1] - target[:, 1]).abs()).mean()
        kl = kl_divergence(mean, logvar, cfg.free_bits)
        terms = {"magnitude": magnitude, "if": inst_freq, "kl": kl}
        if cfg.mrstft_weight > 0:
            length = (target.shape[-1] - 1) * self.spectral.hop_length
            audio = synthesize(self.raw(recon), self.spectral, length=length, method=cfg.synthesis)
            with torch.no_grad():
                reference = synthesize(raw_target, self.spectral, length=length, method=cfg.synthesis)
            terms["mrstft"] = self.mrstft(audio[:, None].float(), reference[:, None].float())
        else:
            terms["mrstft"] = torch.zeros((), device=recon.device)
        beta = cfg.beta(step)
        terms["total"] = (cfg.mrstft_weight * terms["mrstft"] + cfg.magnitude_weight * magnitude
                          + cfg.if_weight * inst_freq + beta * kl)
        terms["beta"] = torch.tensor(beta)
        return terms
