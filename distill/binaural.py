"""Binaural rendering with an analytic spherical head: mono → (left, right) for headphones.

Nothing is measured or downloaded: the head is a rigid sphere of radius :data:`HEAD_RADIUS_M`, which
gives the two cues that place a sound left or right, plus a pinna-like notch for elevation.

- **Interaural time difference** (Woodworth): the far ear's path goes round the head, so a source at
  lateral angle θ reaches the near ear ``(a/c)·sin θ`` early and the far ear ``(a/c)·θ`` late relative
  to the head's centre, an ITD of ``(a/c)(θ + sin θ)`` (0.656 ms at 90°).
- **Head shadow** (Brown & Duda 1998, "A structural model for binaural sound synthesis", eq. 2): a
  one-pole/one-zero magnitude ``|1 + jαω/2ω0| / |1 + jω/2ω0|`` with ``ω0 = c/a``; α runs from 2 for an
  ear facing the source (+6 dB at high frequencies) down to 0.1 at 150° from its axis (−20 dB), and a
  little up again behind (the "bright spot" of a sphere).
- **Elevation** (:func:`pinna_notch_gain`): the pinna's first notch, whose frequency rises with
  elevation (6 kHz at −40° to 10 kHz at +60°). It is there at elevation 0 too, as in a real ear, so a
  source at ear height is not spectrally flat; the notch only moves.
- **Behind** (:func:`rear_shelf_gain`): the sphere is front/back symmetric, so alone it puts a source
  at 135° where one at 45° is. The pinna faces forward and shadows the treble of sources behind;
  a gentle shelf (straight behind: −2 dB at 3 kHz, towards −4 dB above) gives that cue.

Each ear's filter is designed in the frequency domain with *linear phase*: the magnitude above, times
``exp(-jω(bulk + τ_ear))``, windowed (Kaiser) around its own centre. So the shadow adds no phase of its
own and the interaural delay is exactly Woodworth's (to the window's tiny asymmetry, < 0.01 sample,
measured); the common bulk delay is removed after convolving, so a source straight ahead is aligned
with the input. The width spreads the sound over two virtual sources at ``azimuth ± width·SPREAD_DEG``
fed with ``mid ± side``, the side being the mono signal through the decorrelator :func:`side_filter`
(which also makes the stereo side in :mod:`distill.spatial`; it lives here because this module is the
lower of the two). Angles in degrees: azimuth 0 = front, +90 = right, ±180 = behind; elevation + = up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import scipy.signal

HEAD_RADIUS_M = 0.0875  # Brown & Duda's average adult head
SPEED_OF_SOUND = 343.0  # m/s in air at 20 °C
SPREAD_DEG = 30.0  # width 1: the two virtual sources sit ±30° around the azimuth (a stereo speaker pair)

# Brown & Duda's head shadow: α(θ) = (1 + α_min/2) + (1 − α_min/2)·cos(θ/θ_min·π)
ALPHA_MIN = 0.1
THETA_MIN_DEG = 150.0

# Pinna notch: centre frequency linear in elevation through these two points, Gaussian in log-frequency.
NOTCH_POINTS = ((-40.0, 6000.0), (60.0, 10000.0))  # (elevation °, Hz)
NOTCH_DEPTH_DB = 12.0
NOTCH_WIDTH_OCT = 0.15  # standard deviation in octaves (about a third of an octave wide at half depth)

REAR_SHELF_DB = 4.0  # treble cut straight behind, scaled by how far behind (−cos az·cos el, from 0)
REAR_SHELF_HZ = 3000.0  # half the cut at this frequency

# Each ear's FIR is windowed over ±4 ms around its centre: long enough to resolve the notch (whose
# half-depth width is ~1.5 kHz at 6 kHz; the designed magnitudes are within 0.25 dB of the formulas
# from 100 Hz to 16 kHz, measured), short enough to be cheap. Kaiser β = 8: side lobes ~ −58 dB.
FIR_HALF_S = 0.004
KAISER_BETA = 8.0

# The decorrelator: a cascade of Schroeder all-passes, x ↦ (−g + z^−D)/(1 − g·z^−D) for each delay D
# (rounded up to a prime number of samples, so that no two echo patterns line up). An all-pass has an
# exactly flat magnitude at every frequency (a random-phase FIR is flat only on its design bins and
# ripples between them), needs no seed, and its output's correlation with the input is its impulse
# response's first sample, −g⁵ = −0.03, for white noise. With delays of 2–7 ms and g = 0.5, 90 % of
# its energy comes within 32 ms and it has decayed by 60 dB after ~90 ms (measured); the attack
# stays in the mid, which is not filtered. The side is then high-passed (2nd-order Butterworth at
# 150 Hz) so the bass stays in the mid: mono-compatible, and no phasey low end.
DECORRELATOR_DELAYS_MS = (1.9, 2.9, 4.1, 5.3, 6.7)
DECORRELATOR_GAIN = 0.5
SIDE_HIGHPASS_HZ = 150.0
DECORRELATOR_TAIL_DB = -100.0  # the IIR response is cut where what is left is this far below its energy
MIN_SAMPLE_RATE = 8000  # below this there is no treble left for the head shadow and notch to work on


class SpatialError(ValueError):
    """A refused spatial setting or input; ``field`` names it, ``reason`` says why (re-exported by
    :mod:`distill.spatial`)."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def lateral_angle(azimuth_deg: float, elevation_deg: float = 0.0) -> float:
    """The angle (radians, −π/2…π/2) between the median plane and the source: asin(sin az·cos el)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return math.asin(max(-1.0, min(1.0, math.sin(az) * math.cos(el))))


def itd_seconds(azimuth_deg: float, elevation_deg: float = 0.0, radius: float = HEAD_RADIUS_M) -> float:
    """Woodworth's interaural time difference ``(a/c)(θ + sin θ)``, θ the lateral angle; positive when
    the source is to the right (the left ear hears it later). Front/back symmetric."""
    theta = lateral_angle(azimuth_deg, elevation_deg)
    return radius / SPEED_OF_SOUND * (theta + math.sin(theta))


def ear_delays(azimuth_deg: float, elevation_deg: float = 0.0,
               radius: float = HEAD_RADIUS_M) -> tuple[float, float]:
    """(left, right) arrival times in seconds relative to the head's centre (Woodworth): the near ear
    ``−(a/c)·sin|θ|``, the far ear ``+(a/c)·|θ|``; their difference is :func:`itd_seconds`."""
    theta = lateral_angle(azimuth_deg, elevation_deg)
    near, far = -radius / SPEED_OF_SOUND * math.sin(abs(theta)), radius / SPEED_OF_SOUND * abs(theta)
    return (far, near) if theta >= 0 else (near, far)


def ear_angles(azimuth_deg: float, elevation_deg: float = 0.0) -> tuple[float, float]:
    """(left, right) angles in degrees (0…180) between each ear's axis (±90° azimuth) and the source."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    y = max(-1.0, min(1.0, math.sin(az) * math.cos(el)))  # the source's component along the right ear's axis
    return math.degrees(math.acos(-y)), math.degrees(math.acos(y))


def head_shadow_gain(freqs_hz: np.ndarray, ear_angle_deg: float, radius: float = HEAD_RADIUS_M) -> np.ndarray:
    """Brown & Duda's head-shadow magnitude ``|1 + jαω/2ω0| / |1 + jω/2ω0|`` at ``freqs_hz`` (any shape)
    for an ear at ``ear_angle_deg`` from the source (0 = facing it)."""
    alpha = (1 + ALPHA_MIN / 2) + (1 - ALPHA_MIN / 2) * math.cos(ear_angle_deg / THETA_MIN_DEG * math.pi)
    x = 2 * np.pi * np.asarray(freqs_hz, dtype=np.float64) / (2 * SPEED_OF_SOUND / radius)  # ω / 2ω0
    return np.abs(1 + 1j * alpha * x) / np.abs(1 + 1j * x)


def notch_frequency(elevation_deg: float) -> float:
    """Centre frequency (Hz) of the pinna notch: linear in elevation through :data:`NOTCH_POINTS`."""
    (e0, f0), (e1, f1) = NOTCH_POINTS
    return f0 + (elevation_deg - e0) * (f1 - f0) / (e1 - e0)


def pinna_notch_gain(freqs_hz: np.ndarray, elevation_deg: float) -> np.ndarray:
    """The elevation cue's magnitude: a :data:`NOTCH_DEPTH_DB` dip, Gaussian in octaves around
    :func:`notch_frequency` (4 kHz at −90°, 7.6 kHz at 0°, 11.2 kHz at +90°)."""
    octaves = np.log2(np.maximum(np.asarray(freqs_hz, dtype=np.float64), 1.0) / notch_frequency(elevation_deg))
    return 10 ** (-NOTCH_DEPTH_DB * np.exp(-0.5 * (octaves / NOTCH_WIDTH_OCT) ** 2) / 20)


def rear_shelf_gain(freqs_hz: np.ndarray, azimuth_deg: float, elevation_deg: float = 0.0) -> np.ndarray:
    """The front/back cue: ``−REAR_SHELF_DB·b·s(f)`` dB with ``b = max(0, −cos az·cos el)`` (0 in front
    and at the sides, 1 straight behind) and ``s(f) = f²/(f² + REAR_SHELF_HZ²)``."""
    behind = max(0.0, -math.cos(math.radians(azimuth_deg)) * math.cos(math.radians(elevation_deg)))
    f2 = np.asarray(freqs_hz, dtype=np.float64) ** 2
    return 10 ** (-REAR_SHELF_DB * behind * f2 / (f2 + REAR_SHELF_HZ ** 2) / 20)


def ear_gains(freqs_hz: np.ndarray, azimuth_deg: float, elevation_deg: float = 0.0) -> np.ndarray:
    """Both ears' magnitude responses ``(2, F)`` (left, right): head shadow × pinna notch × rear shelf."""
    common = pinna_notch_gain(freqs_hz, elevation_deg) * rear_shelf_gain(freqs_hz, azimuth_deg, elevation_deg)
    return np.stack([head_shadow_gain(freqs_hz, angle) * common for angle in ear_angles(azimuth_deg, elevation_deg)])


def fir_half(sample_rate: int) -> int:
    """Half-length in samples of the window around each FIR's centre."""
    return math.ceil(FIR_HALF_S * sample_rate)


def bulk_delay(sample_rate: int) -> int:
    """Samples by which every filter of this module is delayed (and which :func:`apply_filters` removes):
    the window's half-length plus the largest ear advance, so that every FIR is causal."""
    return fir_half(sample_rate) + math.ceil(HEAD_RADIUS_M / SPEED_OF_SOUND * sample_rate)


def linear_phase_fir(magnitude: Callable[[np.ndarray], np.ndarray], centre: float, length: int,
                     sample_rate: int) -> np.ndarray:
    """A real FIR ``(length,)`` with the given magnitude (a function of frequency in Hz, evaluated on a
    dense grid) and linear phase about ``centre`` samples (fractional allowed), Kaiser-windowed over
    ±:func:`fir_half` samples around that centre. ``centre`` must leave the window inside the FIR."""
    half = fir_half(sample_rate)
    if not half <= centre <= length - 1 - half:
        raise ValueError(f"centre {centre} leaves the ±{half}-sample window outside {length} taps")
    nfft = 1 << max(12, math.ceil(math.log2(4 * length)))
    freqs = np.fft.rfftfreq(nfft, 1 / sample_rate)
    response = magnitude(freqs) * np.exp(-2j * np.pi * freqs / sample_rate * centre)
    taps = np.fft.irfft(response, nfft)[:length]
    x = (np.arange(length) - centre) / half
    window = np.where(np.abs(x) < 1, np.i0(KAISER_BETA * np.sqrt(np.clip(1 - x * x, 0, None))), 0.0)
    return taps * window / np.i0(KAISER_BETA)


def head_filters(azimuth_deg: float, elevation_deg: float, sample_rate: int, delay_s: float = 0.0,
                 extra: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The pair of ear filters ``(2, L)`` (left, right) for one source direction, each delayed by
    :func:`bulk_delay` + ``delay_s`` + its Woodworth ear delay; ``extra`` multiplies both magnitudes
    (a reflection's low-pass). Pairs for the same ``delay_s`` have the same length and can be summed."""
    half, bulk = fir_half(sample_rate), bulk_delay(sample_rate)
    shift = int(delay_s * sample_rate)  # the integer part goes in as leading zeros
    length = bulk + math.ceil(HEAD_RADIUS_M / SPEED_OF_SOUND * math.pi / 2 * sample_rate) + half + 2
    pair = np.zeros((2, shift + length))
    for ear, tau in enumerate(ear_delays(azimuth_deg, elevation_deg)):

        def magnitude(freqs, ear=ear):
            gains = ear_gains(freqs, azimuth_deg, elevation_deg)[ear]
            return gains if extra is None else gains * extra(freqs)

        centre = bulk + (delay_s * sample_rate - shift) + tau * sample_rate
        pair[ear, shift:] = linear_phase_fir(magnitude, centre, length, sample_rate)
    return pair


def _next_prime(n: int) -> int:
    n = max(n, 2)
    while any(n % k == 0 for k in range(2, math.isqrt(n) + 1)):
        n += 1
    return n


@lru_cache(maxsize=8)
def side_filter(sample_rate: int) -> np.ndarray:
    """The decorrelating filter ``(L,)`` that makes the side signal from the mono one: the all-pass
    cascade (flat magnitude) then the 150 Hz high-pass, its IIR response cut after ~−100 dB.
    Causal, no bulk delay. Read-only (cached)."""
    delays = [_next_prime(round(ms * sample_rate / 1000)) for ms in DECORRELATOR_DELAYS_MS]
    g = DECORRELATOR_GAIN
    response = np.zeros(math.ceil(0.5 * sample_rate))
    response[0] = 1.0
    for d in delays:
        b = np.zeros(d + 1)
        b[0], b[d] = -g, 1.0
        a = np.zeros(d + 1)
        a[0], a[d] = 1.0, -g
        response = scipy.signal.lfilter(b, a, response)
    sos = scipy.signal.butter(2, SIDE_HIGHPASS_HZ, "highpass", fs=sample_rate, output="sos")
    response = scipy.signal.sosfilt(sos, response)
    tail = np.cumsum((response ** 2)[::-1])[::-1]  # energy from each sample to the end
    keep = int(np.searchsorted(-tail, -tail[0] * 10 ** (DECORRELATOR_TAIL_DB / 10)))
    response = response[:max(keep, 1)]
    response.setflags(write=False)
    return response


def check_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Validate mono input ``(T,)`` and its rate; return it as contiguous float32."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise SpatialError("audio", f"expected mono samples of shape (T,), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating) or not np.isfinite(audio).all():
        raise SpatialError("audio", "must be finite floating-point samples (no NaN or inf)")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or sample_rate < MIN_SAMPLE_RATE:
        raise SpatialError("sample_rate", f"must be a whole number of Hz ≥ {MIN_SAMPLE_RATE} (got {sample_rate!r})")
    return np.ascontiguousarray(audio, dtype=np.float32)


def check_number(field: str, value, low: float, high: float) -> float:
    """``value`` as a float if it is a finite real number in ``[low, high]``, else :class:`SpatialError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or not low <= value <= high:
        raise SpatialError(field, f"must be a number from {low:g} to {high:g} (got {value!r})")
    return float(value)


def apply_filters(audio: np.ndarray, filters: np.ndarray, sample_rate: int) -> np.ndarray:
    """Convolve mono ``(T,)`` float32 with each of ``filters (C, L)`` and remove :func:`bulk_delay`:
    ``(T, C)`` float32, tails cut (FFT overlap-add in float32)."""
    bulk, length = bulk_delay(sample_rate), audio.shape[0]
    out = np.zeros((length, filters.shape[0]), dtype=np.float32)
    for channel, taps in enumerate(filters if length else []):
        out[:, channel] = scipy.signal.oaconvolve(audio, taps.astype(np.float32))[bulk:bulk + length]
    return out


def binaural_filters(azimuth_deg: float, elevation_deg: float, width: float, sample_rate: int,
                     direct_gain: float = 1.0) -> np.ndarray:
    """The whole binaural rendering as one filter per ear ``(2, L)`` applied to the mono signal.

    Width w: a source at ``azimuth − w·SPREAD_DEG`` fed with ``(mid + w·side)/2`` and one at
    ``azimuth + w·SPREAD_DEG`` fed with ``(mid − w·side)/2``, side = mid through :func:`side_filter`.
    By linearity that is ``(h₋ + h₊)/2`` on the mid plus ``w·(h₋ − h₊)/2 ∗ side_filter`` on it too.
    """
    if width == 0:
        return direct_gain * head_filters(azimuth_deg, elevation_deg, sample_rate)
    spread = width * SPREAD_DEG
    minus = head_filters(azimuth_deg - spread, elevation_deg, sample_rate)  # the source fed with mid + side
    plus = head_filters(azimuth_deg + spread, elevation_deg, sample_rate)  # … and mid − side
    filters = np.stack([width * scipy.signal.fftconvolve(ear, side_filter(sample_rate)) for ear in (minus - plus) / 2])
    filters[:, :minus.shape[1]] += (minus + plus) / 2
    return direct_gain * filters


def render_binaural(audio: np.ndarray, sample_rate: int, azimuth: float = 0.0, elevation: float = 0.0,
                    width: float = 0.0) -> np.ndarray:
    """Mono ``(T,)`` → binaural ``(T, 2)`` float32 (left, right) for a source at ``azimuth`` (−180…180°)
    and ``elevation`` (−90…90°), spread by ``width`` (0…1). Deterministic; length kept."""
    audio = check_audio(audio, sample_rate)
    azimuth = check_number("azimuth", azimuth, -180, 180)
    elevation = check_number("elevation", elevation, -90, 90)
    width = check_number("width", width, 0, 1)
    return apply_filters(audio, binaural_filters(azimuth, elevation, width, sample_rate), sample_rate)
