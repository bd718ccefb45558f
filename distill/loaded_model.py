"""The one inference facade: a model file loaded on a device → ``generate``, ``reconstruct``, ``encode``.

The CLI (``distill generate``/``reconstruct``), the HTTP endpoint and the UI all go through
:class:`LoadedModel`, so the same model, inputs and seed give the same audio everywhere. Audio
comes from the decoder and the representation's own synthesis (phase from the IF channel, one
inverse STFT): no Griffin-Lim, no iterations.

Determinism: the latent trajectory is drawn in float64 on the CPU from the seed alone
(:func:`distill.generation.latent_trajectory`), every take is decoded on its own (a batch of
takes would let one take's size change another's arithmetic), and on CUDA cuDNN is asked for
deterministic kernels. Same machine, same inputs → the same bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import soxr
import torch

from distill.devices import pick_device
from distill.generation import MAX_SECONDS, MIN_SECONDS, decode_long, encode_long, latent_trajectory
from distill.latent_space import LatentSpace
from distill.model import DOWNSAMPLE, from_model_space, to_model_space
from distill.model_file import ModelFile, build_model
from distill.representation import analyze, synthesize

DEFAULT_EVOLUTION = 0.3
# On a CPU, synthesising takes together pays only while they fit the caches: 16 takes of 10 s cost
# 2× per take what one costs alone, 16 of 1 s the same as alone (measured, tiny model, 2 cores).
# So on a CPU a batch holds at most this much audio; on a GPU the whole group goes at once.
CPU_BATCH_SECONDS = 10.0


class GenerationError(ValueError):
    """A generation request that cannot be met (duration, evolution, sliders); the message names the field."""


@dataclass(frozen=True)
class Take:
    """One generated sound."""

    audio: np.ndarray  # (T,) float32 mono, or (T, C) once spatialised; at sample_rate; export peak-limits it
    sample_rate: int
    seed: int
    duration: float  # seconds requested (T = round(duration · sample_rate))
    sliders: dict[str, float]  # every slider's position, by label
    evolution: float
    model: dict = field(default_factory=dict)  # name, id, lineage of the model that made it
    blend: dict | None = None  # {"mode": "latent"|"audio", "reason", "models": [...]} (distill.blending)
    spatial: dict | None = None  # SpatialSettings.to_dict() once shaped (distill.shaping)
    loudness: dict | None = None  # LoudnessReport.to_dict() when a loudness target was applied

    @property
    def channels(self) -> int:
        return 1 if self.audio.ndim == 1 else self.audio.shape[1]

    def parameters(self) -> dict:
        """Everything needed to make this take again (for sidecars, history, HTTP headers)."""
        params = {"model": self.model, "seed": self.seed, "duration": self.duration,
                  "sample_rate": self.sample_rate, "sliders": self.sliders, "evolution": self.evolution}
        for key in ("blend", "spatial", "loudness"):
            if getattr(self, key) is not None:
                params[key] = getattr(self, key)
        return params


@dataclass(frozen=True)
class TakeSpec:
    """What one take of one model needs: length, seed, slider positions (label or index → −10…+10), evolution."""

    duration: float
    seed: int = 0
    sliders: dict[str | int, float] = field(default_factory=dict)
    evolution: float = DEFAULT_EVOLUTION


def check_duration(duration: float, limit: float = MAX_SECONDS) -> float:
    """``duration`` in seconds if it is within ``MIN_SECONDS``…``limit``, else :class:`GenerationError`."""
    if not isinstance(duration, int | float) or not math.isfinite(duration):
        raise GenerationError(f"duration must be a number of seconds, got {duration!r}")
    if not MIN_SECONDS <= duration <= limit:
        raise GenerationError(f"duration {duration} s is outside {MIN_SECONDS}…{limit:g} s")
    return float(duration)


class LoadedModel:
    """A :class:`~distill.model_file.ModelFile` ready to play on ``device`` (``None``/"auto": best available)."""

    def __init__(self, model_file: ModelFile, device: str | torch.device | None = None, entry_id: str | None = None):
        self.file = model_file
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        if self.device.type == "cuda":
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.spectral = model_file.spectral
        self.stats = model_file.stats
        self.model = build_model(model_file, self.device)
        self.space = latent_space_of(model_file)
        self.identity = identity_of(model_file, entry_id)

    @classmethod
    def load(cls, ref: str, library: str | None = None, device: str | None = None) -> LoadedModel:
        """A model by library name, id or id prefix, or a ``.distill`` file path (see :mod:`distill.library`)."""
        from distill.settings import load_settings

        model_file, entry_id = open_model_file(ref, library)
        return cls(model_file, load_settings(device=device).device, entry_id=entry_id)

    @property
    def sample_rate(self) -> int:
        return self.spectral.sample_rate

    @property
    def sliders(self):
        return self.space.sliders

    def _frames(self, samples: int) -> int:
        return self.spectral.num_frames(samples)

    def samples(self, duration: float) -> int:
        """Samples of a take of ``duration`` seconds at this model's rate."""
        return max(1, round(float(duration) * self.sample_rate))

    def latent_steps(self, samples: int) -> int:
        """Latent steps that cover ``samples`` of audio."""
        return -(-self._frames(samples) // DOWNSAMPLE)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, samples: int) -> np.ndarray:
        """Latent sequence ``(latent_dim, T)`` → audio ``(samples,)`` float32 (windowed decode, one synthesis)."""
        return self.synthesize(self.decode_raw(z, samples), samples)

    @torch.no_grad()
    def decode_raw(self, z: torch.Tensor, samples: int) -> torch.Tensor:
        """Latent sequence ``(latent_dim, T)`` → raw representation ``(1, 2, n_mels, frames)`` (log amplitude, IF)
        on the CPU: the decoder's output with this model's normalisation undone, ready to mix or synthesise."""
        x = decode_long(self.model, z, self._frames(samples))
        return from_model_space(x, self.stats.mean, self.stats.std, self.spectral.log_floor)

    @torch.no_grad()
    def synthesize(self, raw: torch.Tensor, samples: int) -> np.ndarray:
        """Raw representation ``(1, 2, n_mels, frames)`` → audio ``(samples,)`` float32 (phase from IF, one ISTFT)."""
        return self.synthesize_batch(raw, samples)[0]

    @torch.no_grad()
    def synthesize_batch(self, raw: torch.Tensor, samples: int) -> np.ndarray:
        """Raw representations ``(B, 2, n_mels, frames)`` → audio ``(B, samples)`` float32; each row is exactly
        what :meth:`synthesize` makes of it alone."""
        return synthesize(raw.to(self.device), self.spectral, length=samples).cpu().numpy()

    def check_request(self, duration: float, sliders: dict[str | int, float] | None = None,
                      evolution: float = DEFAULT_EVOLUTION, max_duration: float = MAX_SECONDS) -> np.ndarray:
        """Validate a request without generating; returns the sliders' latent offset.

        :class:`GenerationError` or :class:`~distill.latent_space.SliderError` (both ``ValueError``)
        name the bad field.
        """
        check_duration(duration, max_duration)
        if isinstance(evolution, bool) or not isinstance(evolution, int | float) or not 0.0 <= evolution <= 1.0:
            raise GenerationError(f"evolution must be in 0…1, got {evolution!r}")
        return self.space.offset(dict(sliders or {}))

    def generate(self, duration: float, seed: int = 0, sliders: dict[str | int, float] | None = None,
                 evolution: float = DEFAULT_EVOLUTION, max_duration: float = MAX_SECONDS) -> Take:
        """``duration`` seconds of new sound from ``seed``; ``sliders`` by label or 1-based index, −10…+10."""
        return self.generate_many([TakeSpec(duration, seed, dict(sliders or {}), evolution)], max_duration)[0]

    def generate_many(self, specs: list[TakeSpec], max_duration: float = MAX_SECONDS) -> list[Take]:
        """One take per spec, each the take :meth:`generate` makes of it. Every spec is checked first.

        Takes of the same length are synthesised as one batch (how the HTTP endpoint serves concurrent
        requests); each is decoded alone. That keeps every take bit-identical to :meth:`generate`'s, so
        a request gives the same bytes under load as on its own: the synthesis is exact per batch
        member, while a batched *decoder* call was not (its convolution kernels depend on the batch
        size; the ~1e-6 differences in the decoded IF grew to ~2e-4 in the audio, −69 dB re the
        take's peak, once integrated into phase — measured on the tiny model).
        """
        offsets = [self.check_request(s.duration, s.sliders, s.evolution, max_duration) for s in specs]
        samples = [self.samples(s.duration) for s in specs]
        zs = [latent_trajectory(self.space, self.latent_steps(n), s.seed, float(s.evolution), offset)
              for s, n, offset in zip(specs, samples, offsets, strict=True)]
        audio: list[np.ndarray | None] = [None] * len(specs)
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(samples):
            groups.setdefault(n, []).append(i)
        for n, members in groups.items():
            for i, wave in zip(members, self._decode_group([zs[i] for i in members], n), strict=True):
                audio[i] = wave
        return [Take(wave, self.sample_rate, int(s.seed), float(s.duration), self.space.normalise_positions(s.sliders),
                     float(s.evolution), dict(self.identity)) for s, wave in zip(specs, audio, strict=True)]

    @torch.no_grad()
    def _decode_group(self, zs: list[torch.Tensor], samples: int) -> list[np.ndarray]:
        """Latent sequences of one length → audio ``(samples,)`` each: decoded one by one, synthesised
        together (on a CPU in batches of at most :data:`CPU_BATCH_SECONDS` of audio)."""
        if len(zs) == 1:
            return [self.decode(zs[0], samples)]
        raw = torch.cat([self.decode_raw(z, samples) for z in zs])
        size = len(zs) if self.device.type != "cpu" else \
            max(1, int(CPU_BATCH_SECONDS * self.sample_rate // samples))
        return [wave for start in range(0, len(zs), size)
                for wave in self.synthesize_batch(raw[start:start + size], samples)]

    def _working_rate(self, audio: np.ndarray, sample_rate: int) -> torch.Tensor:
        audio = np.asarray(audio, np.float32)
        if audio.ndim == 2:
            audio = audio.mean(axis=1)
        if audio.ndim != 1 or audio.size == 0:
            raise GenerationError(f"audio must be a non-empty (samples,) or (samples, channels) array, "
                                  f"got shape {audio.shape}")
        if sample_rate != self.sample_rate:
            audio = soxr.resample(audio, sample_rate, self.sample_rate, quality="HQ").astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(audio))

    @torch.no_grad()
    def encode(self, audio: np.ndarray, sample_rate: int) -> torch.Tensor:
        """Audio ``(T,)`` (or ``(T, C)``, down-mixed) at ``sample_rate`` → posterior means ``(latent_dim, ⌈N/32⌉)``."""
        wave = self._working_rate(audio, sample_rate)
        spec = analyze(wave[None].to(self.device), self.spectral)
        x = to_model_space(spec, self.stats.mean.to(self.device), self.stats.std.to(self.device))
        return encode_long(self.model, x)

    def reconstruct(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The model's rendering of ``audio`` (encode → decode → synthesis) at the model's rate, same duration."""
        wave = self._working_rate(audio, sample_rate)
        return self.decode(self.encode(wave.numpy(), self.sample_rate), wave.shape[0])


def open_model_file(ref: str, library: str | None = None) -> tuple[ModelFile, str | None]:
    """``(model file, library id or None)`` for a library reference or a ``.distill`` path, without building
    the network (presets and listings need only the metadata and the latent analysis)."""
    from distill.library import Library
    from distill.settings import load_settings

    lib = Library.open(load_settings(library=library).library)  # flag > environment > settings file
    entry = lib.resolve(ref)
    return lib.read_model(entry), entry.id or None


def identity_of(model_file: ModelFile, entry_id: str | None = None) -> dict:
    """``{"name", "id", "lineage"}``: how takes, presets and history refer to a model."""
    return {"name": model_file.name, "id": entry_id, "lineage": model_file.lineage}


def latent_space_of(model_file: ModelFile) -> LatentSpace:
    """The model's analysed latent space (sliders), or the standard one for a model never analysed."""
    analysis = model_file.analysis
    return LatentSpace.from_dict(analysis) if analysis else LatentSpace.standard(model_file.config.model.latent_dim)


def load_model(ref: str, library: str | None = None, device: str | None = None) -> LoadedModel:
    """Shorthand for :meth:`LoadedModel.load`."""
    return LoadedModel.load(ref, library, device)
