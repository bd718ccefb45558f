"""Every setting of dataset preparation, in one frozen config with a fingerprint; imports no torch.

The fingerprint covers exactly what determines the rows of the cache (analysis parameters,
chunking, augmentation, split, storage type): when it changes, the cache is rebuilt; settings that
only affect synthesis or behaviour (phase method, confirmation threshold) do not invalidate it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields

from distill.config_io import config_to_dict, config_values
from distill.spectral_config import SpectralConfig

CACHE_FORMAT_VERSION = 1  # bump when the shard schema or the manifest layout changes
STORAGE_DTYPES = ("float16", "float32")
FILE_NORMALIZE = ("none", "peak")


def _check_range(name: str, bounds: tuple[float, float], low: float, high: float) -> None:
    if len(bounds) != 2 or not low <= bounds[0] <= bounds[1] <= high:
        raise ValueError(f"augment.{name} must be (min, max) with {low} <= min <= max <= {high}, got {bounds}")


@dataclass(frozen=True)
class AugmentConfig:
    """Every augmentation setting; part of the cache fingerprint (a change rebuilds the cache)."""

    expansion: int = 10  # augmented variants per training chunk, on top of the clean one
    seed: int = 0  # with (path, chunk, variant) it fixes every drawn parameter
    pitch_probability: float = 0.5  # chance a variant is pitch-shifted
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)  # uniform range of the shift
    speed_probability: float = 0.5  # chance a variant plays faster or slower (pitch kept)
    speed_range: tuple[float, float] = (0.9, 1.1)  # tempo factor, uniform
    noise_probability: float = 0.3  # chance of additive white noise
    noise_snr_db: tuple[float, float] = (15.0, 40.0)  # signal-to-noise ratio, uniform in dB
    volume_probability: float = 0.5  # chance of a gain change
    volume_range: tuple[float, float] = (0.7, 1.3)  # linear gain, uniform

    def __post_init__(self) -> None:
        if not isinstance(self.expansion, int) or not 0 <= self.expansion <= 100:
            raise ValueError(f"augment.expansion must be an integer in 0..100, got {self.expansion!r}")
        for f in fields(self):
            if f.name.endswith("_probability") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"augment.{f.name} must be in [0, 1], got {getattr(self, f.name)}")
        _check_range("pitch_semitones", self.pitch_semitones, -12.0, 12.0)
        _check_range("speed_range", self.speed_range, 0.5, 2.0)
        _check_range("noise_snr_db", self.noise_snr_db, -10.0, 120.0)
        _check_range("volume_range", self.volume_range, 0.01, 10.0)

    @property
    def max_speed(self) -> float:
        """The fastest playback any variant can have: how much source audio a chunk may need."""
        return self.speed_range[1] if self.speed_probability > 0 else 1.0

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AugmentConfig:
        return cls(**config_values(cls, data, "augment"))



@dataclass(frozen=True)
class PrepareConfig:
    """How a folder of audio becomes cached training rows."""

    spectral: SpectralConfig = field(default_factory=SpectralConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    chunk_seconds: float = 2.0  # length of every training example; the tail is zero-padded
    val_fraction: float = 0.1  # share of files (not chunks) held out for validation
    split_seed: int = 0  # salt of the file-level split (change it to draw another split)
    # float16 halves disk and I/O; its rounding (≤ 0.05 % of a log amplitude, ≤ 0.0005 of the
    # IF scale) is far below what the model can resolve — measured in benchmarks/README.md.
    storage_dtype: str = "float16"
    # "peak" scales each *file* (never each chunk) to a -1 dBFS peak; "none" keeps the levels the
    # recordings have, which is what a musician usually wants the model to learn.
    file_normalize: str = "none"

    def __post_init__(self) -> None:
        if not 0.1 <= self.chunk_seconds <= 30.0:
            raise ValueError(f"chunk_seconds must be between 0.1 and 30, got {self.chunk_seconds}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.storage_dtype not in STORAGE_DTYPES:
            raise ValueError(f"storage_dtype must be one of {list(STORAGE_DTYPES)}, got {self.storage_dtype!r}")
        if self.file_normalize not in FILE_NORMALIZE:
            raise ValueError(f"file_normalize must be one of {list(FILE_NORMALIZE)}, got {self.file_normalize!r}")

    @property
    def chunk_length(self) -> int:
        """Samples per chunk at the working rate."""
        return round(self.chunk_seconds * self.spectral.sample_rate)

    @property
    def frames(self) -> int:
        """Spectrogram frames per chunk."""
        return self.spectral.num_frames(self.chunk_length)

    @property
    def margin(self) -> int:
        """Context samples on each side of a chunk, so vocoder edges never fall inside it."""
        return self.spectral.n_fft

    @property
    def min_tail(self) -> int:
        """The shortest last chunk worth keeping: one analysis window."""
        return self.spectral.n_fft

    @property
    def spec_shape(self) -> tuple[int, int, int]:
        """Shape of one stored row: ``(2, n_mels, frames)``."""
        return (2, self.spectral.n_mels, self.frames)

    @property
    def bytes_per_row(self) -> int:
        return 2 * self.spectral.n_mels * self.frames * (2 if self.storage_dtype == "float16" else 4)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PrepareConfig:
        values = config_values(cls, data, "prepare config")
        if "spectral" in values:
            values["spectral"] = SpectralConfig.from_dict(values["spectral"])
        if "augment" in values:
            values["augment"] = AugmentConfig.from_dict(values["augment"])
        return cls(**values)

    def fingerprint_fields(self) -> dict:
        """What the rows depend on (synthesis-only spectral fields left out)."""
        data = self.to_dict()
        data["spectral"] = self.spectral.analysis_dict()
        data["format_version"] = CACHE_FORMAT_VERSION
        return data

    def fingerprint(self) -> str:
        """sha256 of :meth:`fingerprint_fields` as canonical JSON (hex)."""
        text = json.dumps(self.fingerprint_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
