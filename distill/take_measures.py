"""What is measured on a take for the history and A/B comparison: levels (BS.1770 loudness, true peak,
peak, RMS) and the timbre descriptors the sliders are named after."""

from __future__ import annotations

import math

import numpy as np

MEASURE_SECONDS = 30.0  # descriptors are measured on at most this much of the start of the take
MEASURE_BLOCK = 1 << 20  # samples per block when scanning a long take for its peak and RMS


def measure(audio: np.ndarray, sample_rate: int) -> dict:
    """The measures recorded with a take ``(T,)`` or ``(T, C)`` (float, ±1 full scale), all floats:

    ``loudness_lufs`` (ITU-R BS.1770 integrated, :mod:`distill.loudness`), ``true_peak_dbtp``, ``peak_dbfs``
    (largest |sample|), ``rms_dbfs`` (over all samples of all channels; a full-scale sine reads -3.01),
    then :func:`distill.descriptors.describe` of the mono mix of the first :data:`MEASURE_SECONDS`.
    A level that is -inf (digital silence) is ``None``, which JSON can hold; so are the BS.1770 levels of
    a take they are not defined for (a rate below 8 kHz, more than 5 channels).
    """
    from distill.descriptors import describe
    from distill.loudness import LoudnessError, integrated_loudness, true_peak_dbtp

    x = np.asarray(audio)
    x = x[:, None] if x.ndim == 1 else x
    peak, square_sum = 0.0, 0.0
    for start in range(0, x.shape[0], MEASURE_BLOCK):
        block = x[start:start + MEASURE_BLOCK]
        peak = max(peak, float(np.abs(block).max()))
        square_sum += float(np.square(block, dtype=np.float64).sum())
    head = x[: max(1, int(MEASURE_SECONDS * sample_rate))].mean(axis=1, dtype=np.float64).astype(np.float32)
    try:
        loudness, true_peak = integrated_loudness(x, sample_rate), true_peak_dbtp(x, sample_rate)
    except LoudnessError:  # a rate below 8 kHz or more than 5 channels: BS.1770 says nothing
        loudness = true_peak = math.nan
    levels = {"loudness_lufs": loudness, "true_peak_dbtp": true_peak,
              "peak_dbfs": 20.0 * math.log10(peak) if peak > 0 else -math.inf,
              "rms_dbfs": 10.0 * math.log10(square_sum / x.size) if square_sum > 0 else -math.inf}
    levels = {name: float(value) if math.isfinite(value) else None for name, value in levels.items()}
    return levels | describe(head, sample_rate)
