"""Config dataclasses ⇄ plain dicts (JSON manifests, checkpoints, config files), checked in one place.

Every config class (spectral, augment, prepare, model, loss, train) turns into a dict of plain
values with tuples as lists (what JSON and ``torch.load(weights_only=True)`` hold), and back with
unknown fields refused by name. Imports nothing heavy, so cache checks stay instant.
"""

from __future__ import annotations

from dataclasses import asdict, fields


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_to_dict(config) -> dict:
    """A config dataclass (nested ones included) → plain dict, tuples as lists."""
    return _plain(asdict(config))


def config_values(cls, data: dict, label: str) -> dict:
    """Constructor arguments of ``cls`` from ``data``: unknown fields raise ``ValueError`` naming them
    (``label`` says which config), lists become tuples. Nested configs are the caller's to build."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {label} field(s) {unknown}; known: {sorted(known)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
