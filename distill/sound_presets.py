"""Named sound presets per model: slider positions by label, seed, evolution, spatial output, loudness, blend.

(Not to be confused with :mod:`distill.presets`, the *training* presets tiny/balanced/….)

Stored next to the model library in one ``presets.json`` (:class:`distill.json_index.JsonIndex`:
atomic writes, the previous version kept as ``presets.json.bak`` and used if the file is ever
damaged, a lock around every change). A preset belongs to a model: matched by its library id,
which survives renames and re-analysis, or — for a ``.distill`` file used from outside the
library, which has no id — by training lineage and name.

Sliders are stored by *label* (the whole set, so a preset is a complete state). A model can change
its sliders (``distill model analyze`` refits them); a preset naming sliders the model no longer
has is still loaded, those positions are dropped, and a :class:`PresetWarning` names them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from distill.json_index import JsonIndex
from distill.storage import Store

PRESETS_FILE = "presets.json"
PRESETS_VERSION = 1
MAX_NAME = 80
_BAD_NAME_CHARS = "\n\r\t"


class PresetError(ValueError):
    """A preset operation that cannot be done; the message names the preset (and model) and the reason."""


class UnknownPreset(PresetError):
    """No preset of that name for that model."""


class PresetWarning(UserWarning):
    """A preset loaded with changes (sliders the model no longer has), or presets recovered from the backup."""


@dataclass(frozen=True)
class Preset:
    name: str
    model: dict  # {"name", "id", "lineage"} of the model it was saved for
    settings: dict  # TakeRequest.to_dict() (seed may be None: "a new seed each time")
    created: str
    updated: str

    def to_dict(self) -> dict:
        return {"name": self.name, "model": dict(self.model), "settings": dict(self.settings),
                "created": self.created, "updated": self.updated}

    @classmethod
    def from_dict(cls, data: dict) -> Preset:
        return cls(str(data["name"]), dict(data["model"]), dict(data["settings"]), str(data["created"]),
                   str(data["updated"]))


def belongs_to(preset_model: dict, identity: dict) -> bool:
    """Whether a preset saved for ``preset_model`` belongs to the model with ``identity``."""
    if preset_model.get("id") and identity.get("id"):
        return preset_model["id"] == identity["id"]
    return bool(preset_model.get("lineage")) and preset_model.get("lineage") == identity.get("lineage") \
        and preset_model.get("name") == identity.get("name")


def check_preset_name(name: str) -> str:
    """``name`` stripped, if usable (1–80 characters, no line breaks); :class:`PresetError` otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise PresetError("preset name must not be empty")
    name = name.strip()
    if len(name) > MAX_NAME or any(c in name for c in _BAD_NAME_CHARS):
        raise PresetError(f"preset name {name[:MAX_NAME]!r}: use 1–{MAX_NAME} characters on one line")
    return name


def _validate(data: dict) -> None:
    if data["version"] != PRESETS_VERSION:
        raise ValueError(f"version {data['version']!r}, this distill reads {PRESETS_VERSION}")
    for item in data["presets"]:
        Preset.from_dict(item)


class PresetBook:
    """The presets of every model in one library (``location``: the library's folder or URI)."""

    def __init__(self, store: Store):
        self.index = JsonIndex(store, PRESETS_FILE, "presets", _validate)

    @classmethod
    def open(cls, library: str | None = None) -> PresetBook:
        """The presets next to the library at ``library`` (default: the settings' library)."""
        from distill.settings import load_settings

        return cls(Store.open(load_settings(library=library).library))

    @property
    def location(self) -> str:
        return self.index.display()

    def _all(self) -> list[Preset]:
        found = self.index.read()
        if found.note:
            warnings.warn(found.note, PresetWarning, stacklevel=3)
        return [Preset.from_dict(p) for p in (found.data or {}).get("presets", [])]

    def _write(self, presets: list[Preset]) -> None:
        ordered = sorted(presets, key=lambda p: (p.model.get("name", ""), p.name.casefold()))
        self.index.write({"version": PRESETS_VERSION, "presets": [p.to_dict() for p in ordered]})

    def list(self, identity: dict | None = None) -> list[Preset]:
        """Every preset, or those of the model with ``identity`` — sorted by model name, then name."""
        presets = self._all()
        return [p for p in presets if identity is None or belongs_to(p.model, identity)]

    def get(self, identity: dict, name: str) -> Preset:
        """The preset ``name`` of the model (names compare case-insensitively)."""
        return self._find(self.list(identity), identity, name)

    def save(self, identity: dict, name: str, settings: dict, overwrite: bool = False) -> Preset:
        """Save ``settings`` (a :meth:`TakeRequest.to_dict`) as preset ``name`` of the model; an existing
        preset of that name is replaced only with ``overwrite``."""
        name = check_preset_name(name)
        with self.index.locked():
            presets = self._all()
            mine = [p for p in presets if belongs_to(p.model, identity)]
            existing = next((p for p in mine if p.name.casefold() == name.casefold()), None)
            if existing is not None and not overwrite:
                raise PresetError(f"preset {existing.name!r} of {identity['name']} exists; pass --overwrite "
                                  "to replace it")
            now = _now()
            preset = Preset(name, dict(identity), dict(settings), existing.created if existing else now, now)
            self._write([p for p in presets if p is not existing] + [preset])
        return preset

    def rename(self, identity: dict, old: str, new: str) -> Preset:
        new = check_preset_name(new)
        with self.index.locked():
            presets = self._all()
            mine = [p for p in presets if belongs_to(p.model, identity)]
            preset = self._find(mine, identity, old)
            clash = next((p for p in mine if p.name.casefold() == new.casefold() and p is not preset), None)
            if clash is not None:
                raise PresetError(f"preset {clash.name!r} of {identity['name']} exists; choose another name")
            renamed = replace(preset, name=new, updated=_now())
            self._write([renamed if p is preset else p for p in presets])
        return renamed

    def delete(self, identity: dict, name: str) -> Preset:
        with self.index.locked():
            presets = self._all()
            preset = self._find([p for p in presets if belongs_to(p.model, identity)], identity, name)
            self._write([p for p in presets if p is not preset])
        return preset

    @staticmethod
    def _find(presets: list[Preset], identity: dict, name: str) -> Preset:
        wanted = str(name).strip().casefold()
        for preset in presets:
            if preset.name.casefold() == wanted:
                return preset
        known = ", ".join(repr(p.name) for p in presets) or "none"
        raise UnknownPreset(f"no preset {name!r} for model {identity['name']} (its presets: {known})")


def settings_for_model(preset: Preset, slider_labels: list[str]) -> tuple[dict, list[str]]:
    """The preset's settings with only the sliders the model has now, and the labels dropped.

    A :class:`PresetWarning` names the dropped sliders.
    """
    settings = dict(preset.settings)
    sliders = dict(settings.get("sliders") or {})
    missing = [label for label in sliders if label not in slider_labels]
    if missing:
        warnings.warn(f"preset {preset.name!r}: the model no longer has the slider(s) {', '.join(missing)} "
                      "(its sliders changed since the preset was saved); those positions are ignored",
                      PresetWarning, stacklevel=2)
    settings["sliders"] = {k: v for k, v in sliders.items() if k not in missing}
    return settings, missing


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
