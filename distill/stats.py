"""Per-channel, per-band dataset statistics of the representation, and normalisation with them.

Statistics are per channel *and* per mel band, shape ``(2, n_mels)``: low and high bands differ
by tens of dB in log amplitude, so one mean per channel would leave the model to learn the
spectral tilt. :class:`StatsAccumulator` adds batches one at a time (sums in float64, so shards
can be merged in any order) and never needs the whole dataset in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

STD_FLOOR = 1e-3  # smallest std used for scaling: a constant band must not blow up to infinity


@dataclass(frozen=True)
class SpectralStats:
    """Mean and standard deviation of every (channel, band), each ``(2, n_mels)`` float32."""

    mean: torch.Tensor
    std: torch.Tensor

    def __post_init__(self) -> None:
        if self.mean.shape != self.std.shape or self.mean.dim() != 2 or self.mean.shape[0] != 2:
            raise ValueError(f"stats must be (2, n_mels) tensors, got mean {tuple(self.mean.shape)} "
                             f"and std {tuple(self.std.shape)}")

    def _broadcast(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if spec.dim() != 4 or spec.shape[1:3] != self.mean.shape:
            raise ValueError(f"spec must be (batch, 2, {self.mean.shape[1]}, frames), got {tuple(spec.shape)}")
        mean = self.mean.to(spec.device, spec.dtype)[None, :, :, None]
        std = self.std.to(spec.device, spec.dtype).clamp_min(STD_FLOOR)[None, :, :, None]
        return mean, std

    def normalize(self, spec: torch.Tensor) -> torch.Tensor:
        """``(B, 2, n_mels, N)`` → zero-mean, unit-variance per (channel, band)."""
        mean, std = self._broadcast(spec)
        return (spec - mean) / std

    def denormalize(self, spec: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        mean, std = self._broadcast(spec)
        return spec * std + mean

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "SpectralStats":
        try:
            return cls(torch.tensor(data["mean"], dtype=torch.float32), torch.tensor(data["std"], dtype=torch.float32))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid stats: {exc}") from None


class StatsAccumulator:
    """Streaming sums for :class:`SpectralStats`; ``add`` batches, ``merge`` partial results."""

    def __init__(self, n_mels: int):
        self.count = 0
        self.sum = torch.zeros(2, n_mels, dtype=torch.float64)
        self.sum_sq = torch.zeros(2, n_mels, dtype=torch.float64)

    def add(self, spec: torch.Tensor) -> None:
        """Add a batch ``(B, 2, n_mels, N)``."""
        if spec.dim() != 4 or spec.shape[1:3] != self.sum.shape:
            raise ValueError(f"spec must be (batch, 2, {self.sum.shape[1]}, frames), got {tuple(spec.shape)}")
        values = spec.detach().to("cpu", torch.float64)
        self.count += values.shape[0] * values.shape[3]
        self.sum += values.sum(dim=(0, 3))
        self.sum_sq += values.square().sum(dim=(0, 3))

    def merge(self, other: "StatsAccumulator") -> "StatsAccumulator":
        self.count += other.count
        self.sum += other.sum
        self.sum_sq += other.sum_sq
        return self

    def result(self) -> SpectralStats:
        if self.count == 0:
            raise ValueError("no frames were added: cannot compute statistics of an empty dataset")
        mean = self.sum / self.count
        var = (self.sum_sq / self.count - mean.square()).clamp_min(0.0)
        return SpectralStats(mean.float(), var.sqrt().float())
