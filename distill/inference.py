"""From a trained model to audio: the decode → de-normalise → synthesise path everything shares.

Training previews, the quality report and (later) generation, Serve and the UI all turn model
output into sound through these functions, so what a user hears anywhere is what was measured.
No Ray, no UI imports.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from distill.model import DOWNSAMPLE, SpectrogramVAE, from_model_space, to_model_space
from distill.representation import synthesize
from distill.spectral_config import SpectralConfig
from distill.stats import SpectralStats


def model_to_audio(x: torch.Tensor, stats: SpectralStats, spectral: SpectralConfig,
                   length: int | None = None) -> torch.Tensor:
    """Model-space spectrograms ``(B, 2, n_mels, N)`` → audio ``(B, length)`` (listening synthesis)."""
    raw = from_model_space(x, stats.mean.to(x.device), stats.std.to(x.device), spectral.log_floor)
    return synthesize(raw, spectral, length=length)


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.device]:
    """Eval mode (no dropout) for the block, the model's own mode after it; yields the model's device."""
    was_training = model.training
    model.eval()
    try:
        yield next(model.parameters()).device
    finally:
        model.train(was_training)


@torch.no_grad()
def reconstruct(model: SpectrogramVAE, spec: torch.Tensor, stats: SpectralStats, spectral: SpectralConfig,
                length: int, batch_size: int = 8) -> torch.Tensor:
    """Raw spectrograms ``(E, 2, n_mels, N)`` → the model's reconstructions as audio ``(E, length)``.

    Uses the posterior mean (no sampling) in eval mode; runs in batches of ``batch_size`` on the
    model's device and returns CPU audio.
    """
    out = []
    with eval_mode(model) as device:
        for first in range(0, spec.shape[0], batch_size):
            part = spec[first:first + batch_size].to(device, torch.float32)
            x = to_model_space(part, stats.mean.to(device), stats.std.to(device))
            recon, _, _ = model(x)
            out.append(model_to_audio(recon, stats, spectral, length).cpu())
    return torch.cat(out) if out else torch.zeros(0, length)


@torch.no_grad()
def sample_prior(model: SpectrogramVAE, count: int, frames: int, stats: SpectralStats, spectral: SpectralConfig,
                 seed: int = 0, length: int | None = None) -> torch.Tensor:
    """``count`` sounds decoded from latent sequences drawn from the prior N(0, I) → audio ``(count, length)``.

    ``frames`` spectrogram frames each (``length`` defaults to ``(frames - 1) · hop``); the latent
    sequence has ``ceil(frames / 32)`` steps. The draw depends only on ``seed``.
    """
    steps = -(-frames // DOWNSAMPLE)
    z = torch.randn(count, model.cfg.latent_dim, steps, generator=torch.Generator().manual_seed(seed))
    with eval_mode(model) as device:
        return model_to_audio(model.decode(z.to(device), frames), stats, spectral, length).cpu()
