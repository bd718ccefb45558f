"""The 2-channel convolutional VAE: ``(B, 2, n_mels, frames)`` ⇄ latent sequence ``(B, latent, frames/32)``.

Encoder: five stride-2 conv blocks 2 → 64 → 128 → 256 → 512 → 512 over (mel, time), then the
frequency axis (n_mels / 32 rows) is folded into channels and a 1×1 convolution gives the mean and
log-variance of a latent *sequence*, one latent vector per 32 frames (0.34 s at the defaults).
Why a sequence and not one vector per chunk: the decoder then works for any number of frames, so
generation of any length and slow evolution through latent space need no second model, and the
latent vectors of all time steps are the samples the PCA sliders are fitted on. The decoder
mirrors the encoder with transposed convolutions.

Normalisation and output heads agree (the earlier prototype put Softplus/Tanh on z-scored targets
they could not reach):

* channel 0 (log amplitude) is z-scored per mel band with the training statistics; its head is
  linear, because a z-score can take any real value;
* channel 1 (IF) is *not* z-scored: it already lies in [-1, 1], and bands that are almost always
  silent have IF ≡ 0 and a standard deviation near 0, so z-scoring would blow their rare non-zero
  values up by 1000×. Its head is ``tanh``, whose range is exactly [-1, 1].

Inputs are zero-padded so both axes divide by 32; outputs are cropped back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from distill.config_io import config_to_dict, config_values

DOWNSAMPLE = 32  # 2 ** number of stride-2 blocks
# Largest band amplitude the decoder may hand to synthesis: +12 dB above a full-scale sine's band
# amplitude (1.0). The channel-0 head is linear (it predicts z-scores), so early in training it
# can say z = 30, and exp() of that made audio of 1e12 inside the loss: the first epoch's mean
# loss was 2.4e12 and it set Adam's moments back for several epochs (measured with
# benchmarks/learning_curve.py). Real recordings never come near the bound; the z-space L1 term
# still pulls such outputs back, since the clamp sits only on the way to audio.
MAX_BAND_AMPLITUDE = 4.0


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the model; stored in every checkpoint and model file."""

    n_mels: int = 128  # mel bands of the input (must divide by 32 after padding; any value works)
    latent_dim: int = 128  # size of each latent vector
    channels: tuple[int, ...] = (64, 128, 256, 512, 512)  # encoder widths, one per stride-2 block
    dropout: float = 0.1  # after every block (presets change it)

    def __post_init__(self) -> None:
        if len(self.channels) != 5 or any(c <= 0 for c in self.channels):
            raise ValueError(f"channels must be five positive widths (one per stride-2 block), got {self.channels}")
        if self.latent_dim <= 0:
            raise ValueError(f"latent_dim must be positive, got {self.latent_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.n_mels < 2:
            raise ValueError(f"n_mels must be at least 2, got {self.n_mels}")

    @property
    def folded_mels(self) -> int:
        """Mel rows left after the encoder (padded n_mels / 32)."""
        return -(-self.n_mels // DOWNSAMPLE)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        return cls(**config_values(cls, data, "model config"))


def _groups(channels: int) -> int:
    return next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)


def _block(conv: nn.Module, out_channels: int, dropout: float) -> nn.Sequential:
    # GroupNorm, not BatchNorm: batches are small (and 1 at generation), and DDP needs no sync.
    return nn.Sequential(conv, nn.GroupNorm(_groups(out_channels), out_channels), nn.SiLU(), nn.Dropout2d(dropout))


class SpectrogramVAE(nn.Module):
    """``forward(x (B, 2, M, N))`` → ``(reconstruction (B, 2, M, N), mean, logvar (B, latent, ⌈N/32⌉))``.

    ``x`` is the model-space input: channel 0 z-scored, channel 1 raw IF (see the module docstring).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        widths = (2, *cfg.channels)
        self.encoder = nn.Sequential(*(
            _block(nn.Conv2d(a, b, kernel_size=3, stride=2, padding=1), b, cfg.dropout)
            for a, b in zip(widths[:-1], widths[1:], strict=True)))
        folded = cfg.channels[-1] * cfg.folded_mels
        self.to_latent = nn.Conv1d(folded, 2 * cfg.latent_dim, kernel_size=1)
        self.from_latent = nn.Conv1d(cfg.latent_dim, folded, kernel_size=1)
        back = tuple(reversed(widths))  # 512, 512, 256, 128, 64, 2
        self.decoder = nn.Sequential(*(
            _block(nn.ConvTranspose2d(a, b, kernel_size=4, stride=2, padding=1), b, cfg.dropout)
            for a, b in zip(back[:-2], back[1:-1], strict=True)))
        self.head = nn.ConvTranspose2d(back[-2], 2, kernel_size=4, stride=2, padding=1)

    @staticmethod
    def _pad(x: torch.Tensor) -> torch.Tensor:
        mels, frames = x.shape[-2:]
        return nn.functional.pad(x, (0, -frames % DOWNSAMPLE, 0, -mels % DOWNSAMPLE))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 2, M, N)`` → mean, logvar ``(B, latent, ⌈N/32⌉)``."""
        if x.dim() != 4 or x.shape[1] != 2 or x.shape[2] != self.cfg.n_mels:
            raise ValueError(f"expected (batch, 2, {self.cfg.n_mels}, frames), got {tuple(x.shape)}")
        h = self.encoder(self._pad(x))  # (B, C, M/32, N/32)
        stats = self.to_latent(h.flatten(1, 2))  # fold mel rows into channels
        mean, logvar = stats.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)  # keeps exp() finite in the KL and the sampling

    def decode(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Latent sequence ``(B, latent, T)`` → ``(B, 2, n_mels, frames)`` (default ``32·T``)."""
        h = self.from_latent(z).unflatten(1, (self.cfg.channels[-1], self.cfg.folded_mels))
        out = self.head(self.decoder(h))[:, :, :self.cfg.n_mels, :frames]
        # Heads that match the targets (module docstring): linear z-score, tanh IF.
        return torch.stack([out[:, 0], torch.tanh(out[:, 1])], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if self.training else mean
        return self.decode(z, x.shape[-1]), mean, logvar


def to_model_space(spec: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Raw representation ``(B, 2, M, N)`` → model input: ch 0 z-scored per band, ch 1 unchanged.

    ``mean``/``std`` are the ``(2, M)`` training statistics (only channel 0's row is used).
    """
    mu, sigma = mean[0].to(spec)[None, :, None], std[0].to(spec).clamp_min(1e-3)[None, :, None]
    return torch.stack([(spec[:, 0] - mu) / sigma, spec[:, 1]], dim=1)


def from_model_space(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, log_floor: float) -> torch.Tensor:
    """Inverse of :func:`to_model_space`; log amplitude clamped to [ln(log_floor), ln(MAX_BAND_AMPLITUDE)]:
    its true minimum, and a maximum no recording reaches (see :data:`MAX_BAND_AMPLITUDE`)."""
    mu, sigma = mean[0].to(x)[None, :, None], std[0].to(x).clamp_min(1e-3)[None, :, None]
    log_amp = (x[:, 0] * sigma + mu).clamp(math.log(log_floor), math.log(MAX_BAND_AMPLITUDE))
    return torch.stack([log_amp, x[:, 1].clamp(-1.0, 1.0)], dim=1)
