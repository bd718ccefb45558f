"""Spectrogram thumbnails: a small log-mel picture of a take, for the history list and A/B views.

The picture is for recognising a take at a glance, not for analysis, so it costs the same for a
10-minute take as for a 10-second one: the mono mix is analysed in at most
``width × MAX_FRAMES_PER_COLUMN`` STFT frames. A short take uses every frame (hop 512); a longer one
spreads that many frames evenly over its length, and each column shows the mean power of the frames
that fall in it (mean rather than max: with sampled frames a max would depend on which frames were
drawn, a mean is a steady estimate of the column's spectrum). A click between two sampled frames of
a long take can therefore be missed; a column then still shows the sound around it. Frames are
gathered and transformed a block at a time, so memory stays bounded (a few tens of MB) whatever the
length, and the mono mix is only ever formed for the samples a frame covers.

Rows are mel bands (:func:`distill.mel.band_average_weights`: each band the mean power of its bins,
so no band is empty even when the picture is tall), low frequencies at the bottom. Levels are in dB
relative to the loudest band of the take, over :data:`RANGE_DB`; digital silence is a black picture.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import scipy.fft

from distill.mel import band_average_weights

N_FFT = 2048  # 43 ms at 48 kHz: 23 Hz bins, fine enough for the lowest mel rows of a 96-row picture
HOP = 512  # samples between frames for short takes (centred frames, as distill.stft)
MAX_FRAMES_PER_COLUMN = 8  # frames analysed per column at most: 2048 for a 256-column picture (~0.2 s)
BLOCK_FRAMES = 256  # frames gathered and transformed at once (256 × 2048 float32 = 2 MB per channel)
RANGE_DB = 80.0  # dynamic range shown, below the loudest band
COLORMAP = "magma"  # perceptually uniform, brightness rising with level (also readable in grey)
MAX_SIDE = 4096  # pixels: larger pictures are a mistake, not a thumbnail


class ThumbnailError(ValueError):
    """Audio or picture size that cannot make a thumbnail; the message names the argument."""


def spectrogram_png(audio: np.ndarray, sample_rate: int, width: int = 256, height: int = 96) -> bytes:
    """PNG bytes of the log-mel spectrogram of ``audio`` ``(T,)`` or ``(T, C)`` (float, ±1 full scale).

    ``width × height`` pixels, time left to right, low frequencies at the bottom, colormap
    :data:`COLORMAP` over :data:`RANGE_DB` dB.
    """
    from matplotlib.image import imsave  # no pyplot, no backend: imsave only colours and encodes

    image = spectrogram_image(audio, sample_rate, width, height)
    buffer = io.BytesIO()
    imsave(buffer, image, vmin=0.0, vmax=1.0, cmap=COLORMAP, origin="lower", format="png")
    return buffer.getvalue()


def spectrogram_image(audio: np.ndarray, sample_rate: int, width: int = 256, height: int = 96) -> np.ndarray:
    """The picture's levels ``(height, width)`` float32 in 0…1 (1 = the loudest band, 0 = ``RANGE_DB`` below
    it or quieter); row 0 is the lowest mel band."""
    x = _validated(audio, sample_rate, width, height)
    length = x.shape[0]
    centres = frame_centres(length, width)
    weights = _weights(sample_rate, height)  # (height, bins)
    window = _window()
    mel = np.empty((len(centres), height), dtype=np.float64)
    offsets = np.arange(N_FFT) - N_FFT // 2
    for start in range(0, len(centres), BLOCK_FRAMES):
        index = centres[start:start + BLOCK_FRAMES, None] + offsets  # (b, N_FFT) sample positions
        inside = (index >= 0) & (index < length)  # centred frames: zeros beyond the take's ends
        frames = x[np.clip(index, 0, length - 1)]  # (b, N_FFT, C)
        frames = frames.mean(axis=2, dtype=np.float32) * inside * window
        spectrum = scipy.fft.rfft(frames, axis=1)
        power = spectrum.real.astype(np.float64) ** 2 + spectrum.imag.astype(np.float64) ** 2
        mel[start:start + BLOCK_FRAMES] = power @ weights.T
    if not np.all(np.isfinite(mel)):
        raise ThumbnailError("audio: contains NaN or infinite samples")
    columns = _pool(mel, centres, length, width)  # (width, height)
    top = columns.max()
    if top <= 0:
        return np.zeros((height, width), dtype=np.float32)  # digital silence
    level = 10.0 * np.log10(np.maximum(columns, top * 10.0 ** (-RANGE_DB / 10.0)) / top)  # -RANGE_DB … 0
    return (1.0 + level / RANGE_DB).T.astype(np.float32)


def frame_centres(length: int, width: int) -> np.ndarray:
    """Sample positions ``(n,)`` of the analysed frames' centres: every :data:`HOP` samples when that
    gives at most ``width × MAX_FRAMES_PER_COLUMN`` frames, else that many spread evenly."""
    budget = width * MAX_FRAMES_PER_COLUMN
    natural = length // HOP + 1
    if natural <= budget:
        return np.arange(natural, dtype=np.int64) * HOP
    return ((np.arange(budget) + 0.5) * (length / budget)).astype(np.int64)


def _pool(mel: np.ndarray, centres: np.ndarray, length: int, width: int) -> np.ndarray:
    """Mean of the frames whose centre falls in each column ``(width, height)``; a column that no frame
    falls in (a take shorter than ``width`` hops) takes the frame nearest its middle."""
    column = np.minimum(centres * width // length, width - 1)
    sums = np.zeros((width, mel.shape[1]))
    np.add.at(sums, column, mel)
    counts = np.bincount(column, minlength=width)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        middles = (empty + 0.5) * length / width
        right = np.clip(np.searchsorted(centres, middles), 1, len(centres) - 1) if len(centres) > 1 \
            else np.zeros(len(empty), dtype=np.int64)
        left = np.maximum(right - 1, 0)
        nearest = np.where(np.abs(centres[left] - middles) <= np.abs(centres[right] - middles), left, right)
        sums[empty] = mel[nearest]
        counts[empty] = 1
    return sums / counts[:, None]


def _validated(audio: np.ndarray, sample_rate: int, width: int, height: int) -> np.ndarray:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_SIDE:
            raise ThumbnailError(f"{name}: expected a whole number of pixels from 1 to {MAX_SIDE}, got {value!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ThumbnailError(f"sample_rate: expected a positive integer, got {sample_rate!r}")
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ThumbnailError(f"audio: expected samples of shape (T,) or (T, C) with T, C ≥ 1, got {np.shape(audio)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ThumbnailError(f"audio: expected float samples in ±1, got dtype {x.dtype}")
    return x


@lru_cache(maxsize=8)
def _weights(sample_rate: int, height: int) -> np.ndarray:
    return band_average_weights(sample_rate, N_FFT, height).numpy()  # (height, N_FFT // 2 + 1) float64


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann
