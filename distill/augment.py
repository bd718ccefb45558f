"""Pre-baked data augmentation: pitch shift, speed, additive noise and volume, deterministic by seed.

Each chunk of a training file gets ``expansion`` augmented variants (variant 0 is the clean chunk).
A variant's parameters are drawn from a generator seeded by ``(seed, source path, chunk, variant)``
only, so a rebuild — or rebuilding just one file — reproduces exactly the same rows, and the
parameters actually applied are stored next to every row.

Order: pitch/speed (one phase-vocoder pass, :mod:`distill.vocoder`), then volume, then noise (so the
signal-to-noise ratio is measured on the signal as it ends up). Chunks are never peak-normalised:
that would erase the dynamics between chunks and turn the volume augmentation into a no-op.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

import numpy as np

from distill.prepare_config import AugmentConfig
from distill.vocoder import VocoderAnalysis, change_pitch_and_speed


@dataclass(frozen=True)
class AugmentParams:
    """What was applied to one variant; the neutral values mean "not applied"."""

    pitch_semitones: float = 0.0
    speed: float = 1.0
    gain: float = 1.0
    noise_snr_db: float = math.nan  # NaN: no noise added

    @property
    def is_clean(self) -> bool:
        return self == AugmentParams()


def _stable_int(text: str) -> int:
    """A hash of ``text`` that is the same in every process (Python's ``hash`` is salted per run)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def variant_rng(cfg: AugmentConfig, source: str, chunk: int, variant: int) -> np.random.Generator:
    """The random generator of one variant: the same in every process and on every machine."""
    return np.random.default_rng([cfg.seed, _stable_int(source), chunk, variant])


def draw_params(cfg: AugmentConfig, rng: np.random.Generator, variant: int) -> AugmentParams:
    """Parameters of ``variant`` (0 is always clean). Draws in a fixed order so results are stable."""
    if variant == 0:
        return AugmentParams()
    draws = rng.random(8)  # four coin flips and four uniforms, always all drawn: order never shifts

    def pick(probability: float, coin: float, bounds: tuple[float, float], u: float, neutral: float) -> float:
        return bounds[0] + u * (bounds[1] - bounds[0]) if coin < probability else neutral

    return AugmentParams(
        pitch_semitones=pick(cfg.pitch_probability, draws[0], cfg.pitch_semitones, draws[1], 0.0),
        speed=pick(cfg.speed_probability, draws[2], cfg.speed_range, draws[3], 1.0),
        gain=pick(cfg.volume_probability, draws[4], cfg.volume_range, draws[5], 1.0),
        noise_snr_db=pick(cfg.noise_probability, draws[6], cfg.noise_snr_db, draws[7], math.nan),
    )


def apply_params(window: np.ndarray, params: AugmentParams, chunk_length: int, margin: int,
                 sample_rate: int, rng: np.random.Generator,
                 analysis: VocoderAnalysis | None = None) -> tuple[np.ndarray, AugmentParams]:
    """Augment one chunk: ``window (W,)`` → ``(chunk_length,)`` float32, and the params applied.

    The returned params differ from ``params`` only where something could not be applied: noise
    at a fixed SNR is not added to a silent chunk (its SNR is undefined), so it is reported as NaN.

    ``window`` holds the chunk with ``margin`` samples of context before it and enough after it
    for the fastest speed (see :func:`distill.chunking.chunk_windows`); the context keeps the
    vocoder's edges out of the chunk and lets a faster variant read past the chunk's end.
    ``analysis`` is ``vocoder.analyse(window)``, shared by all variants of a chunk to save time.
    """
    if params.pitch_semitones != 0.0 or params.speed != 1.0:
        span = min(len(window), math.ceil(chunk_length * params.speed) + 2 * margin)
        moved = change_pitch_and_speed(window[:span], sample_rate, params.pitch_semitones, params.speed, analysis)
        start = round(margin / params.speed)
        out = moved[start:start + chunk_length]
        if len(out) < chunk_length:
            out = np.pad(out, (0, chunk_length - len(out)))
    else:
        out = window[margin:margin + chunk_length]
    out = out.astype(np.float32, copy=True)
    if params.gain != 1.0:
        out *= np.float32(params.gain)
    if not math.isnan(params.noise_snr_db):
        rms = float(np.sqrt(np.mean(np.square(out, dtype=np.float64))))
        if rms > 0.0:
            noise_rms = rms / 10.0 ** (params.noise_snr_db / 20.0)
            out += rng.standard_normal(chunk_length).astype(np.float32) * np.float32(noise_rms)
        else:
            params = replace(params, noise_snr_db=math.nan)
    return out, params
