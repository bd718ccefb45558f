"""Spatial output: a mono take → mono, stereo or binaural (headphones), with an optional sense of room.

The models make mono sound; this is the last step before loudness and export. Three modes:

- **mono** ``(T, 1)``: the take unchanged. ``width`` is ignored (it has a non-zero default, so a
  request that only switches the mode stays valid); ``azimuth``/``elevation``/``depth`` must be 0,
  since they would silently do nothing.
- **stereo** ``(T, 2)``, mid/side: ``L = mid + side``, ``R = mid − side`` with mid = the mono take and
  ``side = width · D(mono)``, D the decorrelator of :func:`distill.binaural.side_filter` (flat-magnitude
  all-passes, then a 150 Hz high-pass so the bass stays centred). So ``(L + R)/2`` is the mono take (to
  float32 rounding) at any width — the mix folds down to mono without comb filtering — and width 0
  gives the mono take in both channels exactly. At width 1 the side is as loud as the mid above
  150 Hz, so the channels are uncorrelated there (as wide as it gets without anti-phase); nothing is
  ever hard-panned. ``azimuth``/``elevation`` must be 0 (a stereo mix has no direction to give).
- **binaural** ``(T, 2)``: :mod:`distill.binaural`'s spherical head places the take at ``azimuth``,
  ``elevation``; ``width`` spreads it over two virtual sources ``±width·SPREAD_DEG`` apart.

**Depth** (stereo and binaural; 0 = dry, and then the output is exactly the dry rendering): the
direct sound is turned down by up to :data:`DIRECT_DROP_DB` (the inverse-distance law for twice the
distance) and eight early reflections of a fixed small room (:data:`REFLECTIONS`, 7–53 ms after the
direct sound) are mixed in at ``depth × REFLECTIONS_DB``. Each reflection is attenuated by its longer
path and low-passed (walls absorb treble); stereo pans it by its direction (equal power), binaural
renders it through the head from its direction. Reflections without a late reverb tail: a distance
cue that does not wash the sound out. With depth, ``(L + R)/2`` is the direct take plus the
reflections' mono sum.

Output may peak above the input (side and reflections add up); loudness normalisation, which comes
next, takes care of level. Everything is linear and deterministic; lengths are kept to the sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np
import scipy.signal

from distill.binaural import (
    SPEED_OF_SOUND,
    SpatialError,
    apply_filters,
    binaural_filters,
    bulk_delay,
    check_audio,
    check_number,
    fir_half,
    head_filters,
    linear_phase_fir,
    side_filter,
)

SPATIAL_MODES = ("mono", "stereo", "binaural")
RANGES = {"width": (0.0, 1.0), "azimuth": (-180.0, 180.0), "elevation": (-90.0, 90.0), "depth": (0.0, 1.0)}

DIRECT_DROP_DB = 6.0  # direct sound at depth 1: twice as far away
REFLECTIONS_DB = -3.0  # the reflections' summed energy (before their low-passes) at depth 1, re the dry take
DIRECT_PATH_M = 2.0  # the source's distance in the room the reflections come from (sets their levels)

# (delay after the direct sound in ms, azimuth °, elevation °, low-pass corner in Hz): side walls
# alternating left and right, then a floor and a ceiling bounce, then the back walls; later ones have
# bounced more, so lose more treble. Delays are not multiples of each other (no flutter).
REFLECTIONS = (
    (7.1, -60.0, 0.0, 9000.0),
    (11.3, 70.0, 0.0, 8000.0),
    (14.9, 10.0, -35.0, 7000.0),
    (19.7, -115.0, 0.0, 6000.0),
    (26.3, 120.0, 0.0, 5000.0),
    (33.1, -20.0, 50.0, 4500.0),
    (41.9, -150.0, 0.0, 3500.0),
    (53.3, 160.0, 0.0, 3000.0),
)


@dataclass(frozen=True)
class SpatialSettings:
    """How a take is spread in space (module docstring for what each mode does with each field)."""

    mode: str = "mono"  # one of SPATIAL_MODES
    width: float = 0.5  # 0…1: stereo: side level; binaural: the two virtual sources at azimuth ± width·SPREAD_DEG
    azimuth: float = 0.0  # degrees −180…180: 0 front, +90 right, ±180 behind (binaural only)
    elevation: float = 0.0  # degrees −90…90, + up (binaural only)
    depth: float = 0.0  # 0…1: early reflections and a quieter direct sound (stereo, binaural; 0 = dry)

    def validate(self) -> None:
        """Raise :class:`SpatialError` naming the field: unknown mode, a number out of its range or not
        finite, a direction outside binaural mode, or depth in mono."""
        if not isinstance(self.mode, str) or self.mode not in SPATIAL_MODES:
            raise SpatialError("mode", f"unknown mode {self.mode!r}; use one of {', '.join(SPATIAL_MODES)}")
        for name, (low, high) in RANGES.items():
            check_number(name, getattr(self, name), low, high)
        for name in ("azimuth", "elevation"):
            if self.mode != "binaural" and getattr(self, name) != 0:
                raise SpatialError(name, f"only binaural output places a source (mode is {self.mode!r})")
        if self.mode == "mono" and self.depth != 0:
            raise SpatialError("depth", "mono output has no room; use stereo or binaural")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> SpatialSettings:
        """Settings from plain JSON data (missing keys take their defaults), validated; an unknown key
        raises :class:`SpatialError` naming it."""
        if not isinstance(data, Mapping):
            raise SpatialError("spatial", f"expected a mapping of settings, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise SpatialError(str(key), f"unknown setting; known: {', '.join(known)}")
        settings = cls(**data)
        settings.validate()
        return cls(settings.mode, *(float(getattr(settings, name)) for name in RANGES))

    @property
    def channels(self) -> int:
        return 1 if self.mode == "mono" else 2


def spatialize(audio: np.ndarray, sample_rate: int, settings: SpatialSettings) -> np.ndarray:
    """Mono ``(T,)`` float → ``(T, 1)`` (mono) or ``(T, 2)`` (stereo, binaural: left, right) float32.

    Deterministic, linear in ``audio``, same length T. Raises :class:`SpatialError` for bad settings,
    input that is not finite mono float samples, or a rate below 8 kHz.
    """
    settings.validate()
    audio = check_audio(audio, sample_rate)
    if settings.mode == "mono":
        return audio[:, None].copy()
    direct = 10 ** (-DIRECT_DROP_DB * settings.depth / 20)
    if settings.mode == "binaural":
        filters = binaural_filters(settings.azimuth, settings.elevation, settings.width, sample_rate, direct)
        if settings.depth:
            filters = _summed(filters, settings.depth * room_filters("binaural", sample_rate))
        return apply_filters(audio, filters, sample_rate)
    if not settings.depth:  # mid ± side in the time domain: (L + R)/2 is the take to float32 rounding
        side = np.zeros_like(audio)
        if settings.width and audio.size:
            taps = side_filter(sample_rate).astype(np.float32)
            side = np.float32(settings.width) * scipy.signal.oaconvolve(audio, taps)[:audio.shape[0]]
        return np.stack([audio + side, audio - side], axis=1)
    # With a room: the attenuated mid as is, the side and the reflections as one filter per channel
    # (two convolutions instead of three).
    side = np.pad(direct * settings.width * side_filter(sample_rate), (bulk_delay(sample_rate), 0))
    filters = _summed(settings.depth * room_filters("stereo", sample_rate), np.stack([side, -side]))
    out = apply_filters(audio, filters, sample_rate)
    out += np.float32(direct) * audio[:, None]
    return out


def reflection_gains() -> np.ndarray:
    """Each reflection's amplitude ``(N,)`` at depth 1: ``r0/(r0 + c·delay)`` (a longer path), scaled so
    that their summed energy is :data:`REFLECTIONS_DB` re the dry take."""
    delays = np.array([r[0] for r in REFLECTIONS]) / 1000
    gains = DIRECT_PATH_M / (DIRECT_PATH_M + SPEED_OF_SOUND * delays)
    return gains / np.linalg.norm(gains) * 10 ** (REFLECTIONS_DB / 20)


@lru_cache(maxsize=8)
def room_filters(mode: str, sample_rate: int) -> np.ndarray:
    """The early reflections at depth 1 as one filter per channel ``(2, L)`` on the mono take, delayed
    by :func:`distill.binaural.bulk_delay` like the direct filters (so that they add). ``mode`` is
    "stereo" or "binaural". Read-only (cached)."""
    out = np.zeros((2, 0))
    for (delay_ms, azimuth, elevation, corner), gain in zip(REFLECTIONS, reflection_gains(), strict=True):

        def lowpass(freqs, corner=corner):
            return 1 / np.abs(1 + 1j * freqs / corner)

        if mode == "binaural":
            pair = head_filters(azimuth, elevation, sample_rate, delay_ms / 1000, extra=lowpass)
        else:
            pair = _panned(lowpass, delay_ms / 1000, azimuth, elevation, sample_rate)
        out = _summed(out, gain * pair)
    out.setflags(write=False)
    return out


def _panned(magnitude, delay_s: float, azimuth: float, elevation: float, sample_rate: int) -> np.ndarray:
    """One reflection for stereo ``(2, L)``: the filter, delayed, panned at equal power by its lateral
    position ``sin az · cos el`` (−1 left … +1 right)."""
    shift, half = int(delay_s * sample_rate), fir_half(sample_rate)
    centre = bulk_delay(sample_rate) + delay_s * sample_rate - shift
    taps = np.concatenate([np.zeros(shift), linear_phase_fir(magnitude, centre, math.ceil(centre) + half + 2,
                                                             sample_rate)])
    position = math.sin(math.radians(azimuth)) * math.cos(math.radians(elevation))
    angle = (position + 1) * math.pi / 4
    return np.stack([math.cos(angle) * taps, math.sin(angle) * taps])


def _summed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum of two ``(C, L)`` filter sets of different lengths (zero-padded at the end)."""
    out = np.zeros((a.shape[0], max(a.shape[1], b.shape[1])))
    out[:, :a.shape[1]] += a
    out[:, :b.shape[1]] += b
    return out
