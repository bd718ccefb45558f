"""Everything one training run is configured by, in one object that a run folder and every checkpoint store.

A :class:`TrainingConfig` bundles the data preparation (:class:`~distill.prepare_config.PrepareConfig`),
the model, the loss, the optimisation and the run's own settings (checkpoints kept, previews,
evaluation). Presets (:mod:`distill.presets`) fill it; a config file and command-line options
override single fields. Overrides are nested dicts ``{"train": {"epochs": 20}}``; an unknown
section or field is refused by name, and values are checked by each dataclass.

Config files are TOML (or JSON), sections named like the fields below::

    preset = "balanced"          # optional: the starting point
    [train]
    epochs = 40
    [loss]
    mrstft_weight = 0.2
    [prepare.augment]
    expansion = 5
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from distill.config_io import config_to_dict, config_values
from distill.loss import LossConfig
from distill.model import ModelConfig
from distill.prepare_config import PrepareConfig
from distill.storage import read_location
from distill.train_loop import TrainConfig

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file or field."""


@dataclass(frozen=True)
class RunSettings:
    """How the run reports itself: checkpoints, previews, evaluation."""

    keep_last: int = 3  # epoch checkpoints kept besides best.pt
    preview_every: int = 5  # write audio previews every K epochs (and always at the end); 0 = end only
    num_previews: int = 3  # validation reconstructions and prior samples per preview
    # Validation chunks decoded to audio every epoch for the waveform metric (evenly spread over the
    # validation files); the final quality report uses up to ``report_chunks``.
    eval_chunks: int = 16
    report_chunks: int = 64

    def __post_init__(self) -> None:
        for name in ("keep_last", "eval_chunks", "report_chunks"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"run.{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("preview_every", "num_previews"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"run.{name} must be an integer >= 0, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunSettings:
        return cls(**config_values(cls, data, "run"))


@dataclass(frozen=True)
class TrainingConfig:
    preset: str = "balanced"  # the preset this started from (informational)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunSettings = field(default_factory=RunSettings)

    def __post_init__(self) -> None:
        if self.model.n_mels != self.prepare.spectral.n_mels:
            raise ValueError(f"model.n_mels ({self.model.n_mels}) must equal prepare.spectral.n_mels "
                             f"({self.prepare.spectral.n_mels})")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingConfig:
        values = config_values(cls, data, "training config")
        builders = {"prepare": PrepareConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig,
                    "run": RunSettings}
        for name, builder in builders.items():
            if name in values:
                if not isinstance(values[name], dict):
                    raise ValueError(f"{name} must be a table of fields, got {values[name]!r}")
                values[name] = builder.from_dict(values[name])
        return cls(**values)

    def with_overrides(self, overrides: dict, source: str = "override") -> TrainingConfig:
        """A copy with the nested ``overrides`` applied; :class:`ConfigError` names ``source`` and the field."""
        data = self.to_dict()
        _merge(data, overrides, source, "")
        # The model reads what preparation writes: its band count follows the spectral setting
        # unless the override names it (a mismatch is then reported).
        if "n_mels" not in overrides.get("model", {}):
            data["model"]["n_mels"] = data["prepare"]["spectral"]["n_mels"]
        try:
            return TrainingConfig.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {exc}") from None


def _merge(base: dict, overrides: dict, source: str, prefix: str) -> None:
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"{source}: unknown field {name!r}; known here: {sorted(base)}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {name} must be a table of fields, got {value!r}")
            _merge(base[key], value, source, f"{name}.")
        elif isinstance(value, dict):
            raise ConfigError(f"{source}: {name} is a single value, not a table")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{source}: {name} must be finite, got {value}")
        else:
            base[key] = value


def load_config_file(path: str | Path) -> tuple[str | None, dict]:
    """Read a TOML or JSON config file (a path or a storage URI, such as a sweep's ``best_config.toml``
    on S3) → ``(preset or None, overrides)``; :class:`ConfigError` if unusable."""
    path = os.fspath(path)
    is_json = path.lower().endswith(".json")
    try:
        text = read_location(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = json.loads(text) if is_json else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if is_json else "TOML"
        raise ConfigError(f"{path}: not valid {kind} ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of sections, got {type(data).__name__}")
    preset = data.pop("preset", None)
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"{path}: preset must be a name, got {preset!r}")
    return preset, data
