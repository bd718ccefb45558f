"""The take options shared by ``distill generate`` and ``distill preset save``, and turning them into a request.

Every option defaults to "not given" (``None``) so that a preset (or a history entry) can supply
the value and an explicit flag still wins: flag > preset > built-in default.
"""

from __future__ import annotations

import argparse

from distill.cli_common import CommandError, notes

SPATIAL_MODES = ("mono", "stereo", "binaural")  # distill.spatial.SPATIAL_MODES (no numpy import for --help)


def add_take_options(p: argparse.ArgumentParser) -> None:
    """The sound options: sliders, seed, duration, evolution, spatial output, loudness and blend."""
    p.add_argument("-d", "--duration", type=float, default=None, help="seconds per take, 0.1 to 600 (default 4)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    p.add_argument("--slider", action="append", default=[], metavar="NAME_OR_INDEX=VALUE",
                   help="slider position -10…+10 by label or index, e.g. brightness=3 or 2=-5 (repeatable)")
    p.add_argument("--evolution", type=float, default=None, help="0 = static, 1 = wandering (default 0.3)")
    p.add_argument("--spatial", choices=SPATIAL_MODES, default=None,
                   help="mono (default); stereo (mid/side width, mono-compatible); binaural (headphones: "
                        "a spherical-head model placed at --azimuth/--elevation)")
    p.add_argument("--width", type=float, default=None, help="stereo/binaural width 0…1 (default 0.5)")
    p.add_argument("--azimuth", type=float, default=None,
                   help="binaural: direction in degrees, 0 front, 90 right, -90 left, 180 behind (default 0)")
    p.add_argument("--elevation", type=float, default=None, help="binaural: degrees -90…90, up positive (default 0)")
    p.add_argument("--depth", type=float, default=None,
                   help="stereo/binaural: room depth 0…1, early reflections and distance (default 0, dry)")
    p.add_argument("--loudness", type=float, default=None, metavar="LUFS",
                   help="integrated loudness target, e.g. -14 or -23 (true peak kept under -1 dBTP)")
    p.add_argument("--blend", action="append", default=[], metavar="MODEL:WEIGHT",
                   help="mix in another model with this share 0…1, e.g. rain:0.3 (repeatable; the main model "
                        "keeps the rest). Latent blend for models of one training lineage, audio blend otherwise")


def slider_settings(items: list[str]) -> dict[str, float]:
    """``["brightness=3", "2=-5"]`` → ``{"brightness": 3.0, "2": -5.0}``."""
    sliders: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            sliders[key.strip()] = float(value)
        except ValueError:
            raise CommandError(f"--slider {item!r}: write NAME_OR_INDEX=VALUE, e.g. brightness=3 or 2=-5") from None
    return sliders


def request_settings(args: argparse.Namespace, base: dict | None = None) -> dict:
    """The take settings (a :meth:`TakeRequest.to_dict`-shaped dict, seed possibly ``None``): ``base``
    (a preset's) overridden by every flag given."""
    settings = dict(base or {})
    for key in ("duration", "seed", "evolution", "loudness"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.slider:
        settings["sliders"] = {**settings.get("sliders", {}), **slider_settings(args.slider)}
    spatial = dict(settings.get("spatial") or {})
    for key in ("mode", "width", "azimuth", "elevation", "depth"):
        value = getattr(args, "spatial" if key == "mode" else key)
        if value is not None:
            spatial[key] = value
    if args.width is not None and spatial.get("mode", "mono") == "mono":
        raise CommandError("--width: mono output has no width; add --spatial stereo or --spatial binaural")
    settings["spatial"] = spatial
    if args.blend:
        settings["blend"] = list(args.blend)
    return settings


def build_request(settings: dict, seed: int, space=None):
    """A checked :class:`~distill.takes.TakeRequest` from ``settings`` with ``seed`` when it has none;
    with ``space`` (the model's latent space) the sliders are checked and named by label."""
    from distill.takes import TakeRequest

    values = {k: v for k, v in settings.items() if v is not None or k == "loudness"}
    values.setdefault("seed", seed)
    try:
        request = TakeRequest.from_dict(values)
        if space is not None:
            space.offset(request.sliders)  # unknown sliders or values out of range, named
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return request


def labelled(request, space):
    """``request`` with its sliders keyed by label (every slider of ``space``; unset ones at 0)."""
    from dataclasses import replace

    return replace(request, sliders=space.normalise_positions(request.sliders))


def preset_settings(book, identity: dict, name: str, space) -> tuple:
    """``(preset, settings, missing)``: preset ``name`` of the model, its settings minus the sliders the
    model no longer has, and those sliders' labels (a note names them)."""
    from distill.sound_presets import PresetError, PresetWarning, settings_for_model

    try:
        preset = book.get(identity, name)
    except PresetError as exc:
        raise CommandError(str(exc)) from None
    with notes(PresetWarning):
        settings, missing = settings_for_model(preset, [s.label for s in space.sliders])
    return preset, settings, missing
