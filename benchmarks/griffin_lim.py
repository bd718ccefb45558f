"""Griffin-Lim phase retrieval: a *baseline for benchmarks only* — the product never uses it.

Runs from the same linear magnitude estimate the product's synthesis uses, so the comparison is
about phase alone. Uses the "fast" momentum variant (Perraudin et al. 2013, momentum 0.99), as
librosa does, started from random phase (librosa's default).
"""

from __future__ import annotations

import math

import torch

from distill.representation import SpectralConfig, linear_magnitude
from distill.stft import istft, stft


def griffin_lim(spec: torch.Tensor, cfg: SpectralConfig, length: int, n_iter: int = 32,
                momentum: float = 0.99, seed: int = 0) -> torch.Tensor:
    """Representation ``(B, 2, n_mels, N)`` → audio ``(B, length)`` using channel 0 only."""
    magnitude = linear_magnitude(spec, cfg)
    gen = torch.Generator().manual_seed(seed)
    angles = torch.polar(torch.ones_like(magnitude),
                         torch.rand(magnitude.shape, generator=gen) * 2 * math.pi)
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        wave = istft(magnitude * angles, cfg.n_fft, cfg.hop_length, length=length)
        rebuilt = stft(wave, cfg.n_fft, cfg.hop_length)
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous
        angles = accelerated / accelerated.abs().clamp_min(1e-16)
        previous = rebuilt
    return istft(magnitude * angles, cfg.n_fft, cfg.hop_length, length=length)
