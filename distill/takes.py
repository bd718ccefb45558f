"""A take request and the one function that fulfils it: blend → spatialise → loudness.

:class:`TakeRequest` holds everything a user sets for a take besides the model (duration, seed,
sliders, evolution, spatial output, loudness target, blend). The CLI builds it from flags, a
preset or a history entry supplies one, the HTTP endpoint and the UI build it from their forms;
all of them call :func:`produce`, so the same request gives the same audio everywhere.

Order of work: the mono take is generated (blended when asked, :mod:`distill.blending`), then
placed in space (:mod:`distill.spatial`), and only then brought to the loudness target, because
spatial rendering changes the level (the head shadow, the reflections) and loudness is measured
on what the listener gets (:mod:`distill.loudness`, true-peak limited).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np

from distill.blending import BlendPart, check_weights, generate_blended, parse_blend
from distill.generation import MAX_SECONDS
from distill.loaded_model import DEFAULT_EVOLUTION, GenerationError, LoadedModel, Take, TakeSpec
from distill.loudness import TARGET_RANGE_LUFS, normalize_loudness
from distill.spatial import SpatialSettings, spatialize

REQUEST_KEYS = ("duration", "seed", "sliders", "evolution", "spatial", "loudness", "blend")


@dataclass(frozen=True)
class TakeRequest:
    """What to make (all but the model). Validated by :meth:`check` and by :func:`produce`."""

    duration: float = 4.0  # seconds
    seed: int = 0
    sliders: dict[str, float] = field(default_factory=dict)  # label or 1-based index → −10…+10
    evolution: float = DEFAULT_EVOLUTION  # 0 static … 1 wandering
    spatial: SpatialSettings = field(default_factory=SpatialSettings)
    loudness: float | None = None  # integrated-loudness target in LUFS; None = as generated
    blend: tuple[tuple[str, float], ...] = ()  # (model reference, weight) pairs; the main model keeps 1 − Σ

    def check(self) -> None:
        """Check the fields that need no model (:class:`GenerationError` or ``SpatialError`` name the field)."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise GenerationError(f"seed must be a whole number from 0 to 2^63-1, got {self.seed!r}")
        self.spatial.validate()
        if self.loudness is not None:
            low, high = TARGET_RANGE_LUFS
            if isinstance(self.loudness, bool) or not isinstance(self.loudness, int | float) \
                    or not math.isfinite(self.loudness) or not low <= self.loudness <= high:
                raise GenerationError(f"loudness must be a target from {low:g} to {high:g} LUFS, got {self.loudness!r}")
        check_weights([w for _, w in self.blend])

    def to_dict(self) -> dict:
        return {"duration": self.duration, "seed": self.seed, "sliders": dict(self.sliders),
                "evolution": self.evolution, "spatial": self.spatial.to_dict(), "loudness": self.loudness,
                "blend": [{"model": ref, "weight": w} for ref, w in self.blend]}

    @classmethod
    def from_dict(cls, data: dict) -> TakeRequest:
        """The request in ``data`` (any subset of :data:`REQUEST_KEYS`), checked; errors name the key."""
        if not isinstance(data, dict):
            raise GenerationError(f"a take request must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(REQUEST_KEYS))
        if unknown:
            raise GenerationError(f"{unknown[0]}: unknown field; known: {', '.join(REQUEST_KEYS)}")
        values = dict(data)
        if "sliders" in values:
            sliders = values["sliders"]
            if not isinstance(sliders, dict) or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                                        for v in sliders.values()):
                raise GenerationError(f"sliders must map a label or index to a number, got {sliders!r}")
            values["sliders"] = {str(k): float(v) for k, v in sliders.items()}
        if "spatial" in values:
            values["spatial"] = SpatialSettings.from_dict(values["spatial"] or {})
        if "blend" in values:
            values["blend"] = tuple(_blend_item(item) for item in values["blend"] or ())
        request = cls(**values)
        request.check()
        return request


def _blend_item(item) -> tuple[str, float]:
    if isinstance(item, str):
        return parse_blend(item)
    if isinstance(item, dict) and set(item) == {"model", "weight"} and isinstance(item["model"], str):
        return parse_blend(f"{item['model']}:{item['weight']}")
    raise GenerationError(f"blend: each item is {{\"model\": NAME, \"weight\": W}} or \"NAME:W\", got {item!r}")


def shape(take: Take, spatial: SpatialSettings, loudness: float | None = None) -> Take:
    """``take`` placed in space and brought to ``loudness`` LUFS (true-peak safe) when given.

    Mono stays ``(T,)``; stereo and binaural become ``(T, 2)``. The take records both settings.
    """
    audio = spatialize(take.audio, take.sample_rate, spatial)
    audio = audio[:, 0] if audio.shape[1] == 1 else audio
    report = None
    if loudness is not None:
        audio, report = normalize_loudness(audio, take.sample_rate, float(loudness))
        report = report.to_dict()
    return replace(take, audio=np.ascontiguousarray(audio, dtype=np.float32), spatial=spatial.to_dict(),
                   loudness=report)


def produce(model: LoadedModel, request: TakeRequest, blend_models: list[LoadedModel] = (),
            max_duration: float = MAX_SECONDS) -> Take:
    """The take ``request`` asks of ``model``; ``blend_models`` are the loaded models of ``request.blend``,
    in the same order. Everything is checked before any audio is made."""
    request.check()
    if len(blend_models) != len(request.blend):
        raise ValueError(f"{len(request.blend)} blend models requested, {len(blend_models)} given")
    parts = [BlendPart(m, w) for m, (_, w) in zip(blend_models, request.blend, strict=True)]
    # generate_blended checks duration, sliders and evolution before it generates anything
    take = generate_blended(model, parts, request.duration, request.seed, sliders=request.sliders,
                            evolution=request.evolution, max_duration=max_duration)
    return shape(take, request.spatial, request.loudness)


def produce_many(model: LoadedModel, requests: list[TakeRequest], max_duration: float = MAX_SECONDS) -> list[Take]:
    """The takes ``requests`` ask of ``model``, each as :func:`produce` makes it, rendered together where
    that is faster (same-length takes share a decoder batch, :meth:`LoadedModel.generate_many`).

    Blends need their other models and are rendered by :func:`produce` alone; here they are refused.
    Every request is checked before any audio is made.
    """
    for request in requests:
        request.check()
        if request.blend:
            raise ValueError("produce_many renders unblended takes; render a blend with produce()")
    specs = [TakeSpec(r.duration, r.seed, r.sliders, r.evolution) for r in requests]
    takes = model.generate_many(specs, max_duration)
    return [shape(take, r.spatial, r.loudness) for take, r in zip(takes, requests, strict=True)]


def take_comment(take: Take) -> str:
    """The comment tag of an exported take: model, seed, evolution, sliders, blend, space and loudness
    (the CLI's files and the HTTP endpoint's responses carry the same one, so their bytes agree)."""
    model = take.model or {}
    sliders = ", ".join(f"{k}={v:+g}" for k, v in take.sliders.items()) or "none"
    ident = f" ({model['id']})" if model.get("id") else ""
    text = (f"distill model {model.get('name', '?')}{ident}; seed {take.seed}; evolution {take.evolution:g}; "
            f"sliders {sliders}")
    if take.blend:
        text += "; blend " + ", ".join(f"{m['name']} {m['weight']:g}" for m in take.blend["models"][1:]) \
            + f" ({take.blend['mode']})"
    if take.spatial and take.spatial["mode"] != "mono":
        text += f"; {take.spatial['mode']}"
    if take.loudness:
        text += f"; {take.loudness['target_lufs']:g} LUFS"
    return text


def safe_name(name: str) -> str:
    """``name`` with anything but letters, digits, ``.``, ``_`` and ``-`` replaced: a name safe on every file system."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "take"


def take_stem(take: Take) -> str:
    """A file name stem for a take (without extension): ``<model name>-seed<seed>``."""
    return f"{safe_name((take.model or {}).get('name', 'take'))}-seed{take.seed}"


def settings_from_parameters(params: dict) -> dict:
    """What a take recorded (:meth:`Take.parameters`: a sidecar, a history entry) → the settings of a
    :class:`TakeRequest` that makes it again (for "keep as preset")."""
    settings = {k: params[k] for k in ("duration", "seed", "sliders", "evolution") if k in params}
    if params.get("spatial"):
        settings["spatial"] = dict(params["spatial"])
    if params.get("loudness"):
        settings["loudness"] = params["loudness"]["target_lufs"]
    if params.get("blend"):
        settings["blend"] = [{"model": m.get("id") or m["name"], "weight": m["weight"]}
                             for m in params["blend"]["models"][1:]]
    return settings
