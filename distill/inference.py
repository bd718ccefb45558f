"""From a trained model to audio: the decode → de-normalise → synthesise path everything shares.

Training previews, the quality report and (later) generation, Serve and the UI all turn model
output into sound through these functions, so what a user hears anywhere is what was measured.
No Ray, no UI imports.
"""

from __future__ import annotations

import torch

from distill.model import SpectrogramVAE, from_model_space, to_model_space
from distill.representation import synthesize
from distill.spectral_config import SpectralConfig
from distill.stats import SpectralStats


def model_to_audio(x: torch.Tensor, stats: SpectralStats, spectral: SpectralConfig,
                   length: int | None = None) -> torch.Tensor:
    """Model-space spectrograms ``(B, 2, n_mels, N)`` → audio ``(B, length)`` (listening synthesis)."""
    raw = from_model_space(x, stats.mean.to(x.device), stats.std.to(x.device), spectral.log_floor)
    return synthesize(raw, spectral, length=length)


@torch.no_grad()
def reconstruct(model: SpectrogramVAE, spec: torch.Tensor, stats: SpectralStats, spectral: SpectralConfig,
                length: int, batch_size: int = 8) -> torch.Tensor:
    """Raw spectrograms ``(E, 2, n_mels, N)`` → the model's reconstructions as audio ``(E, length)``.

    Uses the posterior mean (no sampling) in eval mode; runs in batches of ``batch_size`` on the
    model's device and returns CPU audio.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for first in range(0, spec.shape[0], batch_size):
            part = spec[first:first + batch_size].to(device, torch.float32)
            x = to_model_space(part, stats.mean.to(device), stats.std.to(device))
            recon, _, _ = model(x)
            out.append(model_to_audio(recon, stats, spectral, length).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, length)


@torch.no_grad()
def sample_prior(model: SpectrogramVAE, count: int, frames: int, stats: SpectralStats, spectral: SpectralConfig,
                 seed: int = 0, length: int | None = None) -> torch.Tensor:
    """``count`` sounds decoded from latent sequences drawn from the prior N(0, I) → audio ``(count, length)``.

    ``frames`` spectrogram frames each (``length`` defaults to ``(frames - 1) · hop``); the latent
    sequence has ``ceil(frames / 32)`` steps. The draw depends only on ``seed``.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    steps = -(-frames // 32)
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(count, model.cfg.latent_dim, steps, generator=generator).to(device)
    try:
        audio = model_to_audio(model.decode(z, frames), stats, spectral, length).cpu()
    finally:
        model.train(was_training)
    return audio
