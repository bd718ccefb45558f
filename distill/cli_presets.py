"""``distill preset save|load|list|rename|delete``: named sound settings per model (:mod:`distill.sound_presets`).

``distill generate MODEL --preset NAME`` uses one; ``distill history keep`` makes one from a take.
"""

from __future__ import annotations

import argparse
import shlex

from distill.cli_common import EXIT_OK, answer, print_answer, reporting
from distill.cli_takes import add_take_options, build_request, labelled, preset_settings, request_settings


def _book(args: argparse.Namespace):
    from distill.sound_presets import PresetBook

    return PresetBook.open(args.library)


def _model(args: argparse.Namespace):
    """``(identity, latent space)`` of ``args.model`` (metadata only: the network is not built)."""
    from distill.loaded_model import identity_of, latent_space_of, open_model_file

    model_file, entry_id = open_model_file(args.model, args.library)
    return identity_of(model_file, entry_id), latent_space_of(model_file)


def describe(settings: dict) -> str:
    """One line: the settings a preset holds, as a reader wants them."""
    parts = []
    if settings.get("seed") is not None:
        parts.append(f"seed {settings['seed']}")
    if settings.get("duration") is not None:
        parts.append(f"{settings['duration']:g} s")
    if settings.get("evolution") is not None:
        parts.append(f"evolution {settings['evolution']:g}")
    moved = {k: v for k, v in (settings.get("sliders") or {}).items() if v}
    if moved:
        parts.append(", ".join(f"{k} {v:+g}" for k, v in moved.items()))
    spatial = settings.get("spatial") or {}
    if spatial.get("mode", "mono") != "mono":
        parts.append(spatial["mode"] + "".join(f" {k} {spatial[k]:g}" for k in ("width", "azimuth", "elevation",
                                                                                   "depth") if k in spatial))
    if settings.get("loudness") is not None:
        parts.append(f"{settings['loudness']:g} LUFS")
    for item in settings.get("blend") or []:
        parts.append(f"blend {item['model']} {item['weight']:g}")
    return "; ".join(parts) or "defaults"


def generate_command(model_ref: str, name: str) -> str:
    return f"distill generate {shlex.quote(model_ref)} --preset {shlex.quote(name)}"


def stored_settings(request, seed_given: bool) -> dict:
    """A request as a preset stores it: everything, but no seed unless one was chosen (a new one each time)."""
    settings = request.to_dict()
    if not seed_given:
        settings["seed"] = None
    return settings


def take_preset_settings(parameters: dict) -> dict:
    """What "keep as preset" stores of a recorded take (a history entry's parameters): the settings
    that make it again, its seed included (``distill history keep`` and the UI)."""
    from distill.takes import TakeRequest, settings_from_parameters

    return stored_settings(TakeRequest.from_dict(settings_from_parameters(parameters)), seed_given=True)


def _save(args: argparse.Namespace) -> int:
    identity, space = _model(args)
    base = None
    if args.from_history:
        from distill.history import History
        from distill.takes import settings_from_parameters

        entry = History.open(args.history_dir).get(args.from_history)
        base = settings_from_parameters(entry.parameters)
    settings = request_settings(args, base)
    seed_given = settings.get("seed") is not None
    request = labelled(build_request(settings, 0, space), space)
    preset = _book(args).save(identity, args.name, stored_settings(request, seed_given), overwrite=args.overwrite)
    if args.json:
        print_answer(preset.to_dict())
    else:
        print(f"saved preset {preset.name!r} of {identity['name']}: {describe(preset.settings)}")
    return EXIT_OK


def _load(args: argparse.Namespace) -> int:
    identity, space = _model(args)
    preset, settings, missing = preset_settings(_book(args), identity, args.name, space)
    if args.json:
        print_answer({**preset.to_dict(), "settings": settings, "missing_sliders": missing})
    else:
        print(f"{preset.name} ({identity['name']}): {describe(settings)}")
        print(f"  use it: {generate_command(args.model, preset.name)}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    identity = _model(args)[0] if args.model else None
    presets = _book(args).list(identity)
    if args.json:
        print_answer([p.to_dict() for p in presets])
        return EXIT_OK
    if not presets:
        print("no presets" + (f" for {identity['name']}" if identity else "")
              + " (save one with `distill preset save MODEL NAME …`)")
    for p in presets:
        print(f"{p.model['name']:<24} {p.name:<24} {describe(p.settings)}")
    return EXIT_OK


def _rename(args: argparse.Namespace) -> int:
    identity, _ = _model(args)
    preset = _book(args).rename(identity, args.name, args.new_name)
    answer(args.json, preset.to_dict(),
           f"renamed preset {args.name!r} of {identity['name']} to {preset.name!r}")
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    identity, _ = _model(args)
    preset = _book(args).delete(identity, args.name)
    answer(args.json, preset.to_dict(),
           f"deleted preset {preset.name!r} of {identity['name']}")
    return EXIT_OK


def _common(p: argparse.ArgumentParser, action) -> None:
    p.add_argument("--library", default=None, metavar="PATH",
                   help="model library folder or URI; presets live next to it (default: from settings)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=reporting(action, _warnings, "presets"))


def _warnings() -> tuple[type[Warning], ...]:
    from distill.sound_presets import PresetWarning

    return (PresetWarning,)


def add_preset_commands(sub) -> None:
    """Register ``preset`` and its subcommands on the ``distill`` subcommand parser ``sub``."""
    parser = sub.add_parser("preset", help="save, load, list, rename and delete named sound presets of a model")
    commands = parser.add_subparsers(dest="preset_command", metavar="ACTION", required=True)

    p = commands.add_parser("save", help="save sliders, seed, evolution, spatial and loudness settings as a preset")
    p.add_argument("model", help="model name, id or .distill file")
    p.add_argument("name", help="preset name")
    add_take_options(p)
    p.add_argument("--from-history", default=None, metavar="ENTRY",
                   help="start from the settings of this history entry (flags given here override them)")
    p.add_argument("--history-dir", default=None, metavar="PATH", help="history folder (default: from settings)")
    p.add_argument("--overwrite", action="store_true", help="replace a preset of the same name")
    _common(p, _save)

    p = commands.add_parser("load", help="show a preset's settings as they apply to the model now")
    p.add_argument("model", help="model name, id or .distill file")
    p.add_argument("name", help="preset name")
    _common(p, _load)

    p = commands.add_parser("list", help="list presets (of one model, or all)")
    p.add_argument("model", nargs="?", default=None, help="only this model's presets")
    _common(p, _list)

    p = commands.add_parser("rename", help="rename a preset")
    p.add_argument("model", help="model name, id or .distill file")
    p.add_argument("name", help="current preset name")
    p.add_argument("new_name", help="new preset name")
    _common(p, _rename)

    p = commands.add_parser("delete", help="delete a preset")
    p.add_argument("model", help="model name, id or .distill file")
    p.add_argument("name", help="preset name")
    _common(p, _delete)
