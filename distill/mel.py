"""Mel scale and triangular mel filterbanks (torch only).

The filterbank reproduces ``librosa.filters.mel`` (Slaney mel scale by default, HTK on request;
``norm="slaney"`` area normalisation or ``norm=None`` peak-1 triangles) so that numbers computed
here can be compared with the wider audio world. The representation itself uses a *band-average*
normalisation (each row sums to 1, see :func:`band_average_weights`), because a band then holds the
mean power of its bins and mapping it back to linear bins preserves loudness.
"""

from __future__ import annotations

import math

import torch

# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_SLANEY_F_SP = 200.0 / 3.0
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: torch.Tensor, htk: bool = False) -> torch.Tensor:
    """Frequency in Hz → mel (elementwise, float64 recommended)."""
    hz = torch.as_tensor(hz, dtype=torch.float64)
    if htk:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    linear = hz / _SLANEY_F_SP
    log = _SLANEY_MIN_LOG_MEL + torch.log(hz.clamp_min(_SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    return torch.where(hz >= _SLANEY_MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: torch.Tensor, htk: bool = False) -> torch.Tensor:
    """Mel → frequency in Hz (inverse of :func:`hz_to_mel`)."""
    mel = torch.as_tensor(mel, dtype=torch.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    linear = _SLANEY_F_SP * mel
    log = _SLANEY_MIN_LOG_HZ * torch.exp(_SLANEY_LOGSTEP * (mel - _SLANEY_MIN_LOG_MEL))
    return torch.where(mel >= _SLANEY_MIN_LOG_MEL, log, linear)


def band_edges_hz(n_mels: int, f_min: float, f_max: float, htk: bool = False) -> torch.Tensor:
    """The ``n_mels + 2`` corner frequencies (Hz, float64) of the triangular bands.

    Band ``m`` rises from ``edges[m]`` to its peak at ``edges[m + 1]`` and falls to ``edges[m + 2]``.
    """
    mels = torch.linspace(float(hz_to_mel(torch.tensor(f_min), htk)), float(hz_to_mel(torch.tensor(f_max), htk)),
                          n_mels + 2, dtype=torch.float64)
    return mel_to_hz(mels, htk)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None,
                   htk: bool = False, norm: str | None = "slaney") -> torch.Tensor:
    """Triangular mel filterbank, shape ``(n_mels, n_fft // 2 + 1)``, float64; equals librosa's.

    ``norm="slaney"`` divides each triangle by its width in Hz (constant energy per band, librosa's
    default); ``norm=None`` leaves peak-1 triangles.
    """
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    fft_freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    edges = band_edges_hz(n_mels, f_min, f_max, htk)
    widths = edges[1:] - edges[:-1]  # (n_mels + 1,)
    ramps = edges[:, None] - fft_freqs[None, :]  # (n_mels + 2, n_bins)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    if norm == "slaney":
        weights = weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


def band_average_weights(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                         f_max: float | None = None) -> torch.Tensor:
    """Peak-1 triangles with each row scaled to sum to 1, shape ``(n_mels, n_bins)``, float64.

    ``weights @ power`` is then the (triangle-weighted) mean power of the bins in each band, in the
    same units as a single bin. Bands too narrow to hold any bin centre would be empty rows; they
    get the single nearest bin instead so that no band is ever undefined.
    """
    weights = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, norm=None)
    empty = weights.sum(dim=1) <= 0
    if bool(empty.any()):
        f_max = sample_rate / 2.0 if f_max is None else float(f_max)
        centres = band_edges_hz(n_mels, f_min, f_max)[1:-1]
        nearest = torch.round(centres * n_fft / sample_rate).long().clamp(0, n_fft // 2)
        rows = torch.nonzero(empty).flatten()
        weights[rows, nearest[rows]] = 1.0
    return weights / weights.sum(dim=1, keepdim=True)


def band_centres_bins(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                      f_max: float | None = None) -> torch.Tensor:
    """Centre (peak) frequency of every band in units of linear FFT bins, shape ``(n_mels,)``."""
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    return band_edges_hz(n_mels, f_min, f_max)[1:-1] * n_fft / sample_rate


def band_half_widths_bins(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                          f_max: float | None = None) -> torch.Tensor:
    """Half of each triangle's base width in linear FFT bins, shape ``(n_mels,)``."""
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    edges = band_edges_hz(n_mels, f_min, f_max) * n_fft / sample_rate
    return (edges[2:] - edges[:-2]) / 2.0
