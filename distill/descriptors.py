"""Audio descriptors: six numbers that say what a sound is like, used to name the latent sliders.

The latent analysis decodes audio at a few positions along each latent axis and measures it here; an
axis takes a descriptor's name only when the descriptor moves monotonically with the slider. So each
descriptor is a smooth, level-stable measure of one perceptual quality, defined for every input
(silence included: never NaN or inf), and cheap enough to run dozens of times at the end of training.

=============  ===========  ==============================================================================
descriptor     unit         definition
=============  ===========  ==============================================================================
brightness     Hz           spectral centroid, power-weighted over all bins of all frames
warmth         dB           energy 50–500 Hz over energy above 2 kHz (mids ignored), soft-limited to ±60 dB
noisiness      0…1          spectral flatness within 7 bands per frame, weighted by band energy (see below)
loudness       dBFS         RMS level, ``10·log10(mean(x²) + 1e-12)`` (a full-scale sine reads -3.01)
roughness      0…~1         amplitude-modulation depth in the 20–200 Hz modulation band (AM depth m reads m)
density        onsets/s     onsets found by log-mel spectral flux with adaptive-threshold peak picking
=============  ===========  ==============================================================================

Everything spectral shares one STFT: n_fft 2048, hop 512, periodic Hann, centred zero-padded frames
(:func:`distill.stft.stft`). All but ``loudness`` ignore gain: they are ratios and logs, computed on
the clip scaled to peak 1 (which also keeps a faint or over-hot clip clear of float32 under/overflow).
An all-zero clip has no spectrum; it reads 0 for brightness, warmth, noisiness, roughness and density,
and -120 dBFS.

``noisiness`` is per-band spectral flatness, dimensionless in 0…1 (0 = pure tones, 1 = a perfectly
flat spectrum, which a finite noise frame never reaches). In each frame n and band b, the flatness
``F[b,n]`` is the geometric over the arithmetic mean of the power of the band's bins (bins floored at
-100 dB of the clip's loudest bin). The bands are 20–250 Hz, then octaves 250–500 Hz … 8–16 kHz (7 at
44.1/48 kHz; see :func:`flatness_bands` for other rates); bins outside them do not count. The value
is ``Σ E[b,n]·F[b,n] / Σ E[b,n]`` over all bands and frames, E[b,n] being the band's energy in the
frame, leaving out frames more than 60 dB below the clip's loudest. Why bands: whole-spectrum flatness
calls band-limited noise tonal, since the empty part of the spectrum pulls the geometric mean to
nothing (it read 0.0001 for the example wind, the same as a sine); within a band, noise that fills the
band reads as noise wherever the band is. Measured at 48 kHz: white noise 0.57 (``exp(-γ)`` ≈ 0.56 is
the periodogram's bias for many bins), noise band-passed to 500–1000 Hz 0.54, the example wind 0.30,
snare 0.33 and rain 0.44; a sine 0.0005–0.012, a major triad 0.011, the tonal examples (plucks, bells,
pad, melody, kick) 0.005–0.13.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.ndimage
import torch

from distill.mel import mel_filterbank
from distill.stft import stft

DESCRIPTORS = ("brightness", "warmth", "noisiness", "loudness", "roughness", "density")
UNITS = {"brightness": "Hz", "warmth": "dB", "noisiness": "", "loudness": "dBFS", "roughness": "",
         "density": "onsets/s"}

N_FFT = 2048
HOP = 512
SILENCE_DB = -120.0  # loudness of digital silence (a soft floor: -117 dBFS at an RMS of 10⁻⁶)

# Warmth: "warm" = low-mid body (fundamentals, chest of a voice, body of a cello) against the
# presence/air region. The 500 Hz – 2 kHz mids are left out so that a sound's midrange does not pull
# the ratio either way. Both bands get a floor at -60 dB of the clip's total energy, which keeps the
# value finite and smooth for band-limited sounds (a pure 200 Hz tone has essentially no energy above
# 2 kHz) and bounds it to ±60 dB.
WARM_BAND_HZ = (50.0, 500.0)
HIGH_EDGE_HZ = 2000.0
WARMTH_FLOOR_DB = -60.0

# Noisiness (definition in the module docstring): octave bands from 250 Hz to 16 kHz, and one 20–250 Hz
# band below them. At n_fft 2048 an octave below 250 Hz holds fewer than 8 bins (3 for 62.5–125 Hz at
# 48 kHz) and a sine's main lobe spans 3–4 of them, so a bass tone would fill such a band and read as
# noise (a 94 Hz sine read 0.79 with octave bands down to 62.5 Hz, measured). Above 16 kHz does not
# count: many recordings are low-passed near there, and the empty bins would make their noise read
# tonal. At rates where a band holds fewer than FLATNESS_MIN_BINS bins (20–250 Hz at 96 kHz), it is
# merged into its neighbour above (the top band into the one below).
FLATNESS_BAND_EDGES_HZ = (20.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)
FLATNESS_MIN_BINS = 8
# Frames more than 60 dB below the loudest are ignored (fade tails and padding would otherwise count
# with their own, meaningless, flatness); bins are floored at -100 dB of the clip's loudest bin, a
# floor relative to the clip so that the value does not depend on gain.
FLATNESS_GATE_DB = -60.0
FLATNESS_FLOOR_DB = -100.0

ROUGHNESS_BAND_HZ = (20.0, 200.0)

# Onsets: log-mel spectral flux (librosa's onset_strength recipe, with fewer bands so that no band at
# n_fft 2048 is narrower than a bin), then peak picking. The threshold is in dB of mean rectified
# log-power increase: stationary noise fluctuates by well under 1 dB around its median, a note or
# hit entering over silence or a steady background gives several to tens of dB.
ONSET_MELS = 64
ONSET_RANGE_DB = 80.0  # log-mel floor below the clip's loudest band (as librosa's top_db)
ONSET_DELTA_DB = 2.0  # a peak must exceed the local median flux by this much
ONSET_CONTEXT_S = 0.1  # ± window of the local median
ONSET_PEAK_S = 0.03  # ± window in which a peak must be the maximum
ONSET_MIN_GAP_S = 0.05  # two onsets closer than this count as one
# With centred frames an event enters a window at its end, so the flux peaks before the event: by
# 0.9–1.9 frames for a click over silence, 0.1–1.1 over noise 40 dB down (measured), since the quieter
# the background the earlier the window's tail shows the event. 1 frame keeps both within one hop.
ONSET_DELAY_FRAMES = 1.0


class DescriptorError(ValueError):
    """Audio the descriptors cannot measure (wrong shape, empty, non-finite samples, bad rate)."""


def describe(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Every descriptor of one mono clip ``(T,)`` (float, full scale ±1), as ``{name: value}``.

    Keys in :data:`DESCRIPTORS` order, units in :data:`UNITS` and the module docstring. Defined for any
    non-empty clip; meant for 0.1 s and longer, and steady from about 1 s.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise DescriptorError(f"audio: expected mono samples of shape (T,), got {audio.shape}")
    return describe_batch(audio[None], sample_rate)[0]


def describe_batch(audios: np.ndarray, sample_rate: int) -> list[dict[str, float]]:
    """:func:`describe` for ``B`` clips of equal length ``(B, T)``; the spectral work runs batched."""
    raw = _validated(audios, sample_rate)
    x, silent = _peak_normalised(raw)
    power = _power_spectrogram(x)  # (B, F, N)
    duration = x.shape[1] / sample_rate
    columns = {
        "brightness": _brightness(power, sample_rate),
        "warmth": _warmth(power, sample_rate),
        "noisiness": _noisiness(power, sample_rate),
        "loudness": _loudness(raw),
        "roughness": _roughness(x, sample_rate),
        "density": np.array([len(f) for f in _onset_frames(power, sample_rate, x.shape[1])]) / duration,
    }
    silent_value = {"loudness": SILENCE_DB}
    out = []
    for b in range(x.shape[0]):
        out.append({name: float(silent_value.get(name, 0.0)) if silent[b] else float(columns[name][b])
                    for name in DESCRIPTORS})
    return out


def onset_times(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset times in seconds ``(n_onsets,)``, ascending, of a mono clip ``(T,)``; empty for silence.

    Within one hop (10.7 ms at 48 kHz) of the event. Events in the first and last ~30 ms are not seen
    (the frames there overlap the clip's edges). ``density`` is ``len(onset_times) / duration``.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise DescriptorError(f"audio: expected mono samples of shape (T,), got {audio.shape}")
    x, silent = _peak_normalised(_validated(audio[None], sample_rate))
    if silent[0]:
        return np.zeros(0)
    frames = _onset_frames(_power_spectrogram(x), sample_rate, x.shape[1])[0]
    times = (frames + ONSET_DELAY_FRAMES) * HOP / sample_rate
    return np.clip(times, 0.0, x.shape[1] / sample_rate)


def onset_strength(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-mel spectral flux ``(N,)`` in dB, one value per STFT frame (frame n centred on sample n·hop)."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise DescriptorError(f"audio: expected mono samples of shape (T,), got {audio.shape}")
    x, _ = _peak_normalised(_validated(audio[None], sample_rate))
    return _flux(_power_spectrogram(x), sample_rate, x.shape[1])[0]


# --------------------------------------------------------------------------------------------------


def _validated(audios: np.ndarray, sample_rate: int) -> torch.Tensor:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise DescriptorError(f"sample_rate: expected a positive integer, got {sample_rate!r}")
    x = np.asarray(audios)
    if x.ndim != 2:
        raise DescriptorError(f"audios: expected a batch of shape (B, T), got {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DescriptorError(f"audio: nothing to measure (shape {x.shape})")
    if not np.issubdtype(x.dtype, np.floating):  # int16 PCM would read 90 dB too loud
        raise DescriptorError(f"audio: expected float samples in ±1, got dtype {x.dtype}")
    x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    if not bool(torch.isfinite(x).all()):
        raise DescriptorError("audio: contains NaN or infinite samples")
    return x


def _peak_normalised(x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """Each clip scaled to peak 1, and which clips are all zeros (left as they are)."""
    peak = x.abs().amax(dim=1, keepdim=True)
    silent = (peak == 0).flatten()
    return x / torch.where(peak > 0, peak, torch.ones_like(peak)), silent.numpy()


def _power_spectrogram(x: torch.Tensor) -> torch.Tensor:
    """``(B, T) -> (B, F, N)`` power, float64 (sums over ~10⁵ bins lose digits in float32)."""
    spec = stft(x, N_FFT, HOP)
    return (spec.real.square() + spec.imag.square()).double()


def _bin_freqs(sample_rate: int) -> torch.Tensor:
    return torch.arange(N_FFT // 2 + 1, dtype=torch.float64) * (sample_rate / N_FFT)


def _brightness(power: torch.Tensor, sample_rate: int) -> np.ndarray:
    spectrum = power.sum(dim=2)  # (B, F): power-weighting frames = summing them
    total = spectrum.sum(dim=1)
    centroid = (spectrum * _bin_freqs(sample_rate)).sum(dim=1) / total.clamp_min(1e-300)
    return centroid.numpy()


def _warmth(power: torch.Tensor, sample_rate: int) -> np.ndarray:
    spectrum = power.sum(dim=2)
    freqs = _bin_freqs(sample_rate)
    low = spectrum[:, (freqs >= WARM_BAND_HZ[0]) & (freqs < WARM_BAND_HZ[1])].sum(dim=1)
    high = spectrum[:, freqs >= HIGH_EDGE_HZ].sum(dim=1)
    floor = spectrum.sum(dim=1) * 10.0 ** (WARMTH_FLOOR_DB / 10.0) + 1e-300
    return (10.0 * torch.log10((low + floor) / (high + floor))).numpy()


def _noisiness(power: torch.Tensor, sample_rate: int) -> np.ndarray:
    """Per-band spectral flatness, averaged weighted by each band's energy in each (kept) frame."""
    floor = power.amax(dim=(1, 2), keepdim=True) * 10.0 ** (FLATNESS_FLOOR_DB / 10.0) + 1e-300
    floored = torch.maximum(power, floor)
    energy = power.sum(dim=1)  # (B, N)
    keep = energy >= energy.amax(dim=1, keepdim=True) * 10.0 ** (FLATNESS_GATE_DB / 10.0)
    weighted = torch.zeros(power.shape[0], dtype=power.dtype)
    total = torch.zeros_like(weighted)
    for lo, hi in flatness_bands(sample_rate):
        band = floored[:, lo:hi]  # (B, bins, N)
        flatness = torch.exp(torch.log(band).mean(dim=1)) / band.mean(dim=1)  # (B, N)
        weight = power[:, lo:hi].sum(dim=1) * keep  # (B, N)
        weighted += (weight * flatness).sum(dim=1)
        total += weight.sum(dim=1)
    return (weighted / total.clamp_min(1e-300)).numpy()


@lru_cache(maxsize=8)
def flatness_bands(sample_rate: int) -> tuple[tuple[int, int], ...]:
    """The noisiness bands at ``sample_rate`` as STFT bin ranges ``((lo, hi), ...)``, ``hi`` exclusive."""
    freqs = _bin_freqs(sample_rate).numpy()
    bands = []
    for lo_hz, hi_hz in zip(FLATNESS_BAND_EDGES_HZ[:-1], FLATNESS_BAND_EDGES_HZ[1:], strict=True):
        bins = np.flatnonzero((freqs >= lo_hz) & (freqs < hi_hz))
        if bins.size:
            bands.append([int(bins[0]), int(bins[-1]) + 1])
    merged: list[list[int]] = []
    for band in bands:  # bottom up: a band too narrow takes in the one above it
        if merged and merged[-1][1] - merged[-1][0] < FLATNESS_MIN_BINS:
            merged[-1][1] = band[1]
        else:
            merged.append(band)
    if len(merged) > 1 and merged[-1][1] - merged[-1][0] < FLATNESS_MIN_BINS:
        top = merged.pop()
        merged[-1][1] = top[1]
    return tuple((lo, hi) for lo, hi in merged)


def _loudness(x: torch.Tensor) -> np.ndarray:
    mean_square = x.double().square().mean(dim=1)
    return (10.0 * torch.log10(mean_square + 10.0 ** (SILENCE_DB / 10.0))).numpy()


def _roughness(x: torch.Tensor, sample_rate: int) -> np.ndarray:
    """Modulation depth of the Hilbert envelope in the roughness band (sinusoidal AM of depth m → m).

    envelope e = |x + i·H(x)|; after removing its (Hann-weighted) mean and applying a Hann window, the
    power P of e in 20–200 Hz gives depth ``sqrt(2·P) / mean(e)``. The Hann window keeps slow changes
    (a 4 Hz tremolo, a fade) from leaking into the band and hides the clip's abrupt ends.
    """
    length = x.shape[1]
    n = scipy.fft.next_fast_len(length, real=True)
    spectrum = torch.fft.rfft(x, n=n)
    spectrum[:, 0] = 0
    if n % 2 == 0:
        spectrum[:, -1] = 0
    hilbert = torch.fft.irfft(spectrum * -1j, n=n)[:, :length]
    envelope = torch.sqrt(x.square() + hilbert.square())
    window = _symmetric_hann(length)
    mean = (envelope * window).sum(dim=1) / window.sum()
    modulation = torch.fft.rfft((envelope - mean[:, None]) * window, n=n)
    freqs = torch.arange(modulation.shape[1]) * (sample_rate / n)
    band = (freqs >= ROUGHNESS_BAND_HZ[0]) & (freqs <= ROUGHNESS_BAND_HZ[1])
    band_power = 2.0 * modulation[:, band].abs().double().square().sum(dim=1) / (n * window.double().square().sum())
    depth = torch.sqrt(2.0 * band_power) / mean.double().clamp_min(1e-30)
    return torch.where(mean > 0, depth, torch.zeros_like(depth)).numpy()


@lru_cache(maxsize=8)
def _symmetric_hann(length: int) -> torch.Tensor:
    return torch.hann_window(length, periodic=False) if length > 1 else torch.ones(1)


@lru_cache(maxsize=8)
def _onset_filterbank(sample_rate: int) -> torch.Tensor:
    return mel_filterbank(sample_rate, N_FFT, ONSET_MELS)


def _flux(power: torch.Tensor, sample_rate: int, num_samples: int) -> np.ndarray:
    """Mean over mel bands of the half-wave rectified frame-to-frame log-mel increase, ``(B, N)`` dB."""
    mel = torch.einsum("mf,bfn->bmn", _onset_filterbank(sample_rate), power)
    floor = mel.amax(dim=(1, 2), keepdim=True) * 10.0 ** (-ONSET_RANGE_DB / 10.0) + 1e-30
    log_mel = 10.0 * torch.log10(torch.maximum(mel, floor))
    rise = torch.relu(log_mel[:, :, 1:] - log_mel[:, :, :-1]).mean(dim=1)
    flux = torch.nn.functional.pad(rise, (1, 0))
    # Frames whose window reaches into the zero padding see the clip's own edges, not events: the rise
    # into the first full frame would count a steady drone's start as an onset, and a window running
    # off the end widens every partial's leakage, which reads as a rise in the empty bands.
    flux[:, : N_FFT // (2 * HOP) + 1] = 0.0
    flux[:, max(0, num_samples - N_FFT // 2) // HOP + 1:] = 0.0
    return flux.numpy()


def _onset_frames(power: torch.Tensor, sample_rate: int, num_samples: int) -> list[np.ndarray]:
    """Frame indices of the onsets of each clip (the flux peaks, not yet shifted to event times)."""
    frame_rate = sample_rate / HOP
    peak = max(1, round(ONSET_PEAK_S * frame_rate))
    context = max(1, round(ONSET_CONTEXT_S * frame_rate))
    min_gap = ONSET_MIN_GAP_S * frame_rate
    out = []
    for flux in _flux(power, sample_rate, num_samples):
        local_max = scipy.ndimage.maximum_filter1d(flux, 2 * peak + 1, mode="nearest")
        baseline = scipy.ndimage.median_filter(flux, size=2 * context + 1, mode="nearest")
        candidates = np.flatnonzero((flux >= local_max) & (flux >= baseline + ONSET_DELTA_DB))
        kept: list[int] = []
        for frame in candidates:
            if not kept or frame - kept[-1] >= min_gap:
                kept.append(int(frame))
        out.append(np.asarray(kept, dtype=np.int64))
    return out
