"""What a sweep searches: training-config fields and the distribution each trial draws it from.

A space names fields of :class:`~distill.training_config.TrainingConfig` by their dotted path and
gives each a distribution, in YAML, TOML or JSON, as nested sections or quoted dotted keys::

    [loss]
    mrstft_weight = { loguniform = [0.01, 1.0] }   # low and high, both > 0
    if_weight = { uniform = [0.5, 2.0] }
    kl_warmup_steps = { choice = [500, 2000] }
    free_bits = 0.05                                # a plain value: the same in every trial
    [train]
    batch_size = { randint = [8, 32] }              # whole numbers, both ends included

Kinds: ``loguniform`` and ``uniform`` (numbers), ``randint`` and ``lograndint`` (whole numbers,
both ends included), ``choice`` (a list of values). Only ``loss``, ``train`` and ``model`` fields
can be searched: ``prepare`` would give every trial its own cache, and ``run`` holds the
evaluation setting, which must be the same in every trial for their scores to compare; the
trial length is the sweep's (``--epochs``), not a field to search. No Ray here: the Ray layer
turns a space into Tune's sampling objects.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from distill.training_config import ConfigError, TrainingConfig

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

KINDS = ("loguniform", "uniform", "randint", "lograndint", "choice")
RANGES = ("loguniform", "uniform", "randint", "lograndint")
SEARCHABLE_SECTIONS = ("loss", "train", "model")
# Fields a sweep sets itself: every trial must run the same length and be measured the same way.
SWEEP_OWNED = {"train.epochs": "the sweep sets each trial's length (--epochs)",
               "train.max_minutes": "the sweep's time budget is --max-minutes"}
SUFFIXES = (".yaml", ".yml", ".toml", ".json")


class SpaceError(ValueError):
    """A search space that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Dimension:
    """One searched (or fixed) field: ``kind`` in :data:`KINDS` or ``"fixed"``, and its values."""

    field: str  # dotted path, e.g. "loss.kl_beta"
    kind: str
    values: tuple  # (low, high) for ranges, the options for choice, (value,) when fixed

    @property
    def searched(self) -> bool:
        return self.kind != "fixed"

    @property
    def log_scale(self) -> bool:
        return self.kind in ("loguniform", "lograndint")

    def extremes(self) -> tuple:
        """The values a trial can take at the edges (every value of a choice): what validation tries."""
        return self.values

    def to_dict(self):
        return self.values[0] if self.kind == "fixed" else {self.kind: list(self.values)}

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"{self.field} = {self.values[0]!r}"
        if self.kind == "choice":
            return f"{self.field} ∈ {{{', '.join(repr(v) for v in self.values)}}}"
        return f"{self.field} ~ {self.kind}({self.values[0]:g}, {self.values[1]:g})"


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]

    @property
    def searched(self) -> tuple[Dimension, ...]:
        return tuple(d for d in self.dimensions if d.searched)

    def to_dict(self) -> dict:
        """Flat ``{"loss.kl_beta": {"loguniform": [lo, hi]}, …}``, what :meth:`from_dict` reads back."""
        return {d.field: d.to_dict() for d in self.dimensions}

    @classmethod
    def from_dict(cls, data: dict, source: str = "search space") -> SearchSpace:
        """Parse nested sections or dotted keys; :class:`SpaceError` names ``source`` and the field."""
        if not isinstance(data, dict) or not data:
            raise SpaceError(f"{source}: expected a table of fields to search, e.g. "
                             "loss.kl_beta = {loguniform = [1e-5, 1e-2]}")
        known = TrainingConfig().to_dict()
        dims = tuple(_dimension(name, value, source) for name, value in _flatten(data, known, source, ""))
        if not any(d.searched for d in dims):
            raise SpaceError(f"{source}: nothing to search (every field has a single value)")
        return cls(dims)

    def check(self, base: TrainingConfig, source: str = "search space") -> None:
        """Every value a trial can draw must make a valid config from ``base`` (else :class:`SpaceError`)."""
        for dim in self.dimensions:
            section_value = _lookup(base.to_dict(), dim.field)
            if isinstance(section_value, int) and not isinstance(section_value, bool) \
                    and dim.kind in ("loguniform", "uniform"):
                raise SpaceError(f"{source}: {dim.field} is a whole number: use randint, lograndint or choice")
            for value in dim.extremes():
                try:
                    base.with_overrides(overrides({dim.field: value}), source)
                except ConfigError as exc:
                    raise SpaceError(str(exc)) from None

    def describe(self) -> str:
        return "; ".join(d.describe() for d in self.dimensions)


def default_space(include_lr: bool = False) -> SearchSpace:
    """The loss weights, each log-uniform around the presets' values (and the learning rate if asked).

    The magnitude weight stays 1 and sets the loss's scale, so ``if_weight`` is the IF-to-magnitude
    balance; the MR-STFT range spans 0.01–1 around the default 0.1 (at 1 its gradient swamped the
    spectrogram terms in a toy measurement); β and the free-bits floor span two decades either way.
    """
    dims = [Dimension("loss.mrstft_weight", "loguniform", (0.01, 1.0)),
            Dimension("loss.if_weight", "loguniform", (0.1, 10.0)),
            Dimension("loss.kl_beta", "loguniform", (1e-5, 1e-2)),
            Dimension("loss.free_bits", "loguniform", (0.01, 0.5))]
    if include_lr:
        dims.append(Dimension("train.lr", "loguniform", (2e-4, 5e-3)))
    return SearchSpace(tuple(dims))


def load_space(path: str | Path) -> SearchSpace:
    """Read a YAML, TOML or JSON space file; :class:`SpaceError` names the file and what is wrong."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SpaceError(f"{path}: use a .yaml, .yml, .toml or .json file for the search space")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 — every parser has its own error type; all mean "not valid"
        kind = {".toml": "TOML", ".json": "JSON"}.get(suffix, "YAML")
        detail = " ".join(str(exc).split())
        raise SpaceError(f"{path}: not valid {kind} ({detail})") from None
    return SearchSpace.from_dict(data, str(path))


def overrides(params: dict) -> dict:
    """``{"loss.kl_beta": 1e-3}`` → ``{"loss": {"kl_beta": 1e-3}}`` (what config overrides look like)."""
    nested: dict = {}
    for name, value in params.items():
        *sections, leaf = name.split(".")
        target = nested
        for section in sections:
            target = target.setdefault(section, {})
        target[leaf] = value
    return nested


def merge(base: dict, extra: dict) -> dict:
    """Nested overrides ``base`` with ``extra`` laid over it (a new dict; neither is changed)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _lookup(config: dict, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def _flatten(data: dict, known: dict, source: str, prefix: str):
    """``(dotted field, spec)`` pairs from nested sections and/or dotted keys, checked against ``known``."""
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise SpaceError(f"{source}: field names must be text, got {key!r}")
        name = f"{prefix}{key}"
        parts = name.split(".")
        node = known
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[:depth]) or "the config"
                options = sorted(node) if isinstance(node, dict) else []
                raise SpaceError(f"{source}: unknown field {name!r}; known in {where}: {options}")
            node = node[part]
        if isinstance(node, dict):  # a section: its fields follow
            if not isinstance(value, dict):
                raise SpaceError(f"{source}: {name} is a section; give its fields, e.g. {name}.<field> = …")
            yield from _flatten(value, known, source, f"{name}.")
            continue
        if parts[0] not in SEARCHABLE_SECTIONS:
            why = ("each trial would need its own prepared cache" if parts[0] == "prepare" else
                   "it is the evaluation setting, which must be the same for every trial to compare them")
            raise SpaceError(f"{source}: {name} cannot be searched: {why} "
                             f"(searchable: the {', '.join(SEARCHABLE_SECTIONS)} sections)")
        if name in SWEEP_OWNED:
            raise SpaceError(f"{source}: {name} cannot be searched: {SWEEP_OWNED[name]}")
        yield name, value


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _number_text(value):
    """YAML 1.1 (PyYAML) reads ``1e-5`` as text (it wants ``1.0e-5``); such a value is the number."""
    return float(value) if isinstance(value, str) and _FLOAT.match(value.strip()) else value


def _dimension(name: str, spec, source: str) -> Dimension:
    if isinstance(spec, dict) and len(spec) == 1 and isinstance(next(iter(spec.values())), list):
        kind, values = next(iter(spec.items()))
        spec = {kind: [_number_text(v) for v in values]}
    else:
        spec = _number_text(spec)
    if not isinstance(spec, dict):
        if isinstance(spec, float) and not math.isfinite(spec):
            raise SpaceError(f"{source}: {name} must be finite, got {spec}")
        return Dimension(name, "fixed", (tuple(spec) if isinstance(spec, list) else spec,))
    if len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise SpaceError(f"{source}: {name}: give one distribution, one of {list(KINDS)}, "
                         f"e.g. {{loguniform = [0.01, 1.0]}}; got {spec!r}")
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise SpaceError(f"{source}: {name}: {kind} takes a list, got {values!r}")
    if kind == "choice":
        if any(isinstance(v, dict | list) for v in values):
            raise SpaceError(f"{source}: {name}: choice takes plain values, got {values!r}")
        if len(set(map(repr, values))) != len(values):
            raise SpaceError(f"{source}: {name}: choice lists a value twice: {values!r}")
        return Dimension(name, kind, tuple(values))
    if len(values) != 2 or not all(_number(v) for v in values):
        raise SpaceError(f"{source}: {name}: {kind} takes [low, high] (two finite numbers), got {values!r}")
    low, high = values
    if kind in ("randint", "lograndint") and not all(isinstance(v, int) for v in values):
        raise SpaceError(f"{source}: {name}: {kind} takes whole numbers, got {values!r}")
    if not low < high:
        raise SpaceError(f"{source}: {name}: {kind} needs low < high, got [{low}, {high}]")
    if kind.startswith("log") and low <= 0:
        raise SpaceError(f"{source}: {name}: {kind} needs low > 0 (a log scale), got {low}")
    return Dimension(name, kind, (low, high))
