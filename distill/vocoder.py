"""Fast pitch and tempo changes: a phase vocoder with identity phase locking, plus soxr resampling.

Why not sinc pitch shifting (torchaudio's ``pitch_shift``): it resamples with a long windowed-sinc
kernel built per call and took 40 s per second of 48 kHz audio on the project's CPU. Here a pitch
shift of ``p = 2**(semitones/12)`` at playback speed ``r`` is one vectorised phase-vocoder stretch
at rate ``r / p`` (tempo only, pitch kept) followed by one soxr resample by ``p`` (which moves
pitch and tempo together) — the librosa recipe, fused so that pitch and speed cost one pass.
Everything is vectorised over frames (a cumulative sum, no Python loop), so a 2 s chunk takes a
few milliseconds.

Identity phase locking (Laroche & Dolson 1999): every bin takes the phase advance of the spectral
peak that dominates it, so the bins of one partial stay coherent instead of drifting apart — that
drift is the "phasiness" of a plain phase vocoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import soxr
import torch

from distill.stft import istft, polar, stft

N_FFT = 2048  # 43 ms at 48 kHz: resolves partials ~25 Hz apart; the usual choice for music
HOP = 512  # n_fft / 4, the overlap the Hann window needs to overlap-add flat


def _peak_of_each_bin(mag: torch.Tensor) -> torch.Tensor:
    """``(K, N)`` magnitudes → index ``(K, N)`` of the local spectral peak each bin belongs to.

    Peaks are local maxima along frequency; each bin is assigned to the nearest peak (ties to the
    lower one), found with two cumulative scans instead of a search per bin.
    """
    num_bins = mag.shape[0]
    padded = torch.nn.functional.pad(mag.T, (1, 1), value=-1.0)  # (N, K + 2)
    is_peak = (padded[:, 1:-1] >= padded[:, :-2]) & (padded[:, 1:-1] > padded[:, 2:])  # (N, K)
    bins = torch.arange(num_bins).expand_as(is_peak)
    # Nearest peak at or below / at or above every bin (cummax of peak indices, and the mirror).
    below = torch.where(is_peak, bins, torch.full_like(bins, -1)).cummax(dim=1).values
    above_rev = torch.where(is_peak.flip(1), bins, torch.full_like(bins, -1)).cummax(dim=1).values
    above = (num_bins - 1 - above_rev).flip(1)
    above = torch.where(above_rev.flip(1) < 0, torch.full_like(above, -1), above)
    use_above = (below < 0) | ((above >= 0) & (above - bins < bins - below))
    nearest = torch.where(use_above, above, below)
    return torch.where(nearest < 0, bins, nearest).T  # frames with no peak keep their own bin


@dataclass(frozen=True)
class VocoderAnalysis:
    """The STFT of a signal as the vocoder uses it; compute once, stretch it many ways.

    All ``(K, N + 2)``: two silent frames are appended so interpolation past the end is defined.
    """

    magnitude: torch.Tensor
    phase: torch.Tensor
    peak: torch.Tensor  # long: the spectral peak each bin belongs to, per analysis frame
    num_samples: int

    @property
    def num_frames(self) -> int:
        return self.magnitude.shape[1] - 2


def analyse(wave: np.ndarray, lock_phases: bool = True) -> VocoderAnalysis:
    """``(T,)`` → :class:`VocoderAnalysis` (one STFT, magnitudes, phases and peak regions).

    ``lock_phases=False`` gives the plain phase vocoder (every bin its own "peak"), kept for the
    benchmark that measures what locking buys.
    """
    x = torch.tensor(np.asarray(wave, dtype=np.float32))[None]  # a copy: Ray hands out read-only arrays
    spec = torch.nn.functional.pad(stft(x, N_FFT, HOP)[0], (0, 2))  # (K, N + 2)
    magnitude = spec.abs()
    # Peaks from the analysis frames, as Laroche & Dolson do: shared by every stretch of this signal.
    if lock_phases:
        peak = _peak_of_each_bin(magnitude)
    else:
        peak = torch.arange(magnitude.shape[0])[:, None].expand_as(magnitude).contiguous()
    return VocoderAnalysis(magnitude, spec.angle(), peak, len(wave))


def stretch(analysis: VocoderAnalysis, rate: float, num_samples: int | None = None) -> np.ndarray:
    """Tempo × ``rate`` of the first ``num_samples`` (default all) analysed samples → ``(≈num_samples / rate,)``."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    num_samples = analysis.num_samples if num_samples is None else min(num_samples, analysis.num_samples)
    length = max(1, round(num_samples / rate))
    frames = min(num_samples // HOP + 1, analysis.num_frames)
    steps = torch.arange(0, frames, rate, dtype=torch.float64)  # output frame positions
    left = steps.floor().long()
    frac = (steps - left).float()
    mag_in, phase_in = analysis.magnitude, analysis.phase
    right = left + 1
    # index_select, not mag_in[:, left]: advanced indexing was 5× slower here (measured).
    mag = (1 - frac) * mag_in.index_select(1, left) + frac * mag_in.index_select(1, right)  # (K, M)
    phase_a = phase_in.index_select(1, left)
    num_bins = mag.shape[0]
    expected = 2 * math.pi * HOP / N_FFT * torch.arange(num_bins, dtype=torch.float32)[:, None]
    advance = phase_in.index_select(1, right) - phase_a - expected
    advance = advance - 2 * math.pi * torch.round(advance / (2 * math.pi)) + expected  # (K, M)
    # Locked phase: the peak's accumulated phase plus the bin's own offset from the peak in the
    # analysis frame, so the partial's shape across bins is kept exactly.
    accumulated = phase_in[:, :1] + torch.cumsum(advance, dim=1) - advance  # (K, M)
    locked = torch.gather(accumulated - phase_a, 0, analysis.peak.index_select(1, left)) + phase_a
    out = polar(mag, locked)
    return istft(out[None], N_FFT, HOP, length=length)[0].numpy().astype(np.float32)


def time_stretch(wave: np.ndarray, rate: float) -> np.ndarray:
    """Change tempo by ``rate`` (> 1 faster) keeping pitch: ``(T,) -> (round(T / rate),)`` float32."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if abs(rate - 1.0) < 1e-6:
        return np.asarray(wave, dtype=np.float32).copy()
    return stretch(analyse(wave), rate)


def change_pitch_and_speed(wave: np.ndarray, sample_rate: int, semitones: float = 0.0, speed: float = 1.0,
                           analysis: VocoderAnalysis | None = None) -> np.ndarray:
    """Shift pitch by ``semitones`` and play ``speed`` times faster: ``(T,) -> (≈T / speed,)`` float32.

    ``speed`` changes tempo only (pitch kept); ``semitones`` changes pitch only (duration kept).
    ``analysis`` (optional) is :func:`analyse` of a signal that *starts with* ``wave`` — e.g. a
    longer window shared by several variants — so the STFT is not recomputed for each.
    """
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    ratio = 2.0 ** (semitones / 12.0)
    rate = speed / ratio  # tempo × speed/ratio, pitch unchanged
    if abs(rate - 1.0) < 1e-6:
        stretched = np.asarray(wave, dtype=np.float32).copy()
    else:
        stretched = stretch(analysis if analysis is not None else analyse(wave), rate, len(wave))
    if abs(ratio - 1.0) < 1e-9:
        return stretched
    # Reading the stretched audio as if recorded at rate·ratio plays it ratio× faster and higher.
    return soxr.resample(stretched, sample_rate * ratio, sample_rate, quality="HQ").astype(np.float32)
