"""Blending models: one take made from several models, each with a weight.

Two ways, chosen per request and recorded in the take (``Take.blend["mode"]``):

**Latent** — when every model comes from the same training lineage (the ``lineage`` id a training
run writes into its model files, kept through re-analysis and renames) and they share the
latent size and the spectral settings. Their latent axes then mean the same thing, so the
trajectories drawn from each model's latent distribution with the same seed are mixed by weight
(the same unit draws scaled by each model's spread: a mix of distributions, not an average of two
unrelated draws, which would shrink towards the mean), the main model's sliders are added, each
model decodes the mixed trajectory, and the decoded log amplitudes and IF are mixed by weight
before one synthesis. Mixing log amplitudes is a geometric mean of the spectra: the blend has
one coherent set of partials and one phase, where adding audio would comb-filter.

**Audio** — otherwise (different lineage, latent size or representation). Each model makes its
own take from the same seed (the sliders apply to the main model only: other models' sliders mean
other things), each is brought to the main take's integrated loudness (so a weight means a share
of what you hear, not of whichever model happens to be louder), mixed by weight, and the mix is
brought back to the main take's loudness (two unrelated signals add ~3 dB quieter than either).

Weights: ``--blend B:0.3`` gives B 30 % and the main model the remaining 70 %; several blends
share the main model's remainder, which must stay above 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import soxr
import torch

from distill.generation import latent_trajectory
from distill.loaded_model import GenerationError, LoadedModel, Take
from distill.loudness import integrated_loudness, match_loudness

LATENT, AUDIO = "latent", "audio"


class BlendError(GenerationError):
    """A blend that cannot be made (weights, specification); the message names the field."""


@dataclass(frozen=True)
class BlendPart:
    """Another model to mix in, with its share of the output (0 < weight < 1)."""

    model: LoadedModel
    weight: float


def parse_blend(text: str) -> tuple[str, float]:
    """``"MODEL:WEIGHT"`` → ``(model reference, weight)``; the last ``:`` splits, so paths and URIs work."""
    ref, sep, weight = str(text).rpartition(":")
    try:
        if not sep or not ref.strip():
            raise ValueError
        value = float(weight)
    except ValueError:
        raise BlendError(f"blend {text!r}: write MODEL:WEIGHT, e.g. rain:0.3") from None
    return ref.strip(), check_weight(value, f"blend {text!r}")


def check_weight(weight: float, field: str = "blend weight") -> float:
    """``weight`` if it is a number in (0, 1), else :class:`BlendError` naming ``field``."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 < weight < 1.0:
        raise BlendError(f"{field}: the weight must be between 0 and 1 (exclusive), got {weight!r}")
    return float(weight)


def check_weights(weights: list[float]) -> float:
    """The main model's weight, ``1 − Σ weights``; :class:`BlendError` unless it stays above 0."""
    for w in weights:
        check_weight(w)
    main = 1.0 - sum(weights)
    if main <= 1e-6:
        raise BlendError(f"blend: the weights add up to {sum(weights):g}; they must leave the main model a share "
                         "(total below 1)")
    return main


def blend_mode(main: LoadedModel, others: list[LoadedModel]) -> tuple[str, str]:
    """``(mode, reason)``: "latent" when all models share lineage, latent size and representation."""
    for other in others:
        name = other.identity["name"]
        if not main.identity.get("lineage") or other.identity.get("lineage") != main.identity["lineage"]:
            return AUDIO, f"{name} comes from another training lineage than {main.identity['name']}"
        if other.model.cfg.latent_dim != main.model.cfg.latent_dim:
            return AUDIO, f"{name} has a different latent size"
        if other.spectral != main.spectral:
            return AUDIO, f"{name} uses different spectral settings"
    return LATENT, "all models come from the same training lineage (compatible latent spaces)"


def generate_blended(main: LoadedModel, parts: list[BlendPart], duration: float, seed: int = 0,
                     sliders: dict | None = None, evolution: float = 0.3, max_duration: float | None = None) -> Take:
    """One mono take of ``duration`` seconds at the main model's rate from ``main`` blended with ``parts``.

    Without parts this is ``main.generate``. The returned take's ``blend`` says which mode was used
    and why, with every model's identity and weight.
    """
    limits = {} if max_duration is None else {"max_duration": max_duration}
    if not parts:
        return main.generate(duration, seed, sliders=sliders, evolution=evolution, **limits)
    main_weight = check_weights([p.weight for p in parts])
    offset = main.check_request(duration, sliders, evolution, **limits)
    mode, reason = blend_mode(main, [p.model for p in parts])
    weighted = [(main, main_weight)] + [(p.model, p.weight) for p in parts]
    samples = main.samples(duration)
    if mode == LATENT:
        audio = _latent_blend(weighted, samples, seed, evolution, offset)
    else:
        base = main.generate(duration, seed, sliders=sliders, evolution=evolution, **limits)
        audio, reference = _audio_blend(base.audio, weighted, duration, seed, evolution, samples, main.sample_rate)
    info = {"mode": mode, "reason": reason,
            "models": [{**m.identity, "weight": round(w, 6)} for m, w in weighted]}
    if mode == AUDIO:
        info["matched_lufs"] = None if reference is None else round(reference, 3)
    positions = main.space.normalise_positions(dict(sliders or {}))
    return Take(audio, main.sample_rate, int(seed), float(duration), positions, float(evolution),
                dict(main.identity), blend=info)


def _latent_blend(weighted: list[tuple[LoadedModel, float]], samples: int, seed: int, evolution: float,
                  offset: np.ndarray) -> np.ndarray:
    main = weighted[0][0]
    steps = main.latent_steps(samples)
    z = sum(w * latent_trajectory(m.space, steps, seed, float(evolution)).double() for m, w in weighted)
    z = (z + torch.as_tensor(offset, dtype=torch.float64)[:, None]).float()
    raw = sum(w * m.decode_raw(z, samples).double() for m, w in weighted)
    return main.synthesize(raw.float(), samples)


def _audio_blend(base: np.ndarray, weighted: list[tuple[LoadedModel, float]], duration: float, seed: int,
                 evolution: float, samples: int, rate: int) -> tuple[np.ndarray, float | None]:
    """The loudness-matched mix and the loudness it was matched to (``None`` when every take is silent)."""
    takes = [base]
    for model, _ in weighted[1:]:
        audio = model.generate(duration, seed, evolution=evolution).audio
        if model.sample_rate != rate:
            audio = soxr.resample(audio, model.sample_rate, rate, quality="HQ").astype(np.float32)
        takes.append(np.pad(audio[:samples], (0, max(0, samples - audio.shape[0]))))
    levels = [integrated_loudness(t, rate) for t in takes]
    audible = [level for level in levels if math.isfinite(level)]
    if not audible:  # nothing to match: silence mixed is silence
        return sum(w * t for (_, w), t in zip(weighted, takes, strict=True)).astype(np.float32), None
    # the main take's loudness; a silent main take (an untrained or gated-away model) borrows the loudest
    reference = levels[0] if math.isfinite(levels[0]) else max(audible)
    mix = sum(w * (match_loudness(t, rate, reference) if math.isfinite(level) else t).astype(np.float64)
              for (_, w), t, level in zip(weighted, takes, levels, strict=True))
    mix = mix.astype(np.float32)
    if math.isfinite(integrated_loudness(mix, rate)):
        mix = match_loudness(mix, rate, reference)
    return mix, reference
