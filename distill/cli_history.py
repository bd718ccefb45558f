"""``distill history list|show|compare|keep|delete|clear``: the takes recorded by ``generate --history``, the UI
and the HTTP endpoint (:mod:`distill.history`)."""

from __future__ import annotations

import argparse
import json

from distill.cli_common import EXIT_OK, CommandError, answer, ask, print_answer, reporting

# parameters a take records that are outcomes, not settings (the loudness report, why a blend mode was chosen)
RESULT_KEYS = {f"loudness.{k}" for k in ("before_lufs", "after_lufs", "gain_db", "true_peak_dbtp", "limited",
                                         "max_reduction_db", "note")} | {"blend.reason", "blend.matched_lufs"}
MEASURES = ("loudness_lufs", "true_peak_dbtp", "brightness", "warmth", "noisiness", "roughness", "density")


def _history(args: argparse.Namespace):
    from distill.history import History

    return History.open(args.history_dir)


def _summary(entry) -> str:
    params = entry.parameters
    extras = []
    spatial = params.get("spatial") or {}
    if spatial.get("mode", "mono") != "mono":
        extras.append(spatial["mode"])
    if params.get("blend"):
        extras.append(f"{params['blend']['mode']} blend")
    if params.get("loudness"):
        extras.append(f"{params['loudness']['target_lufs']:g} LUFS")
    return (f"{entry.id}  {entry.created[:19].replace('T', ' ')}  {entry.model.get('name', '?'):<20} "
            f"seed {params.get('seed', '?'):<11} {entry.duration:6.2f} s  {entry.source}"
            + "".join(f"  {e}" for e in extras))


def _list(args: argparse.Namespace) -> int:
    history = _history(args)
    entries = history.list(model=args.model, limit=args.limit)
    if args.json:
        print_answer([e.to_dict() for e in entries])
        return EXIT_OK
    if not entries:
        print(f"no takes in the history at {history.location}")
    for entry in entries:
        print(_summary(entry))
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    history = _history(args)
    entry = history.get(args.entry)
    audio, thumbnail = history.audio_location(entry), history.store.display(entry.thumbnail)
    if args.json:
        print_answer({**entry.to_dict(), "audio_location": audio, "thumbnail_location": thumbnail})
        return EXIT_OK
    print(_summary(entry))
    print(f"  audio      {audio}  ({entry.channels} ch, {entry.sample_rate} Hz)")
    print(f"  thumbnail  {thumbnail}")
    print(f"  settings   {json.dumps(entry.parameters, ensure_ascii=False)}")
    print("  measures   " + ", ".join(f"{k} {entry.measures[k]:.2f}" for k in MEASURES
                                      if isinstance(entry.measures.get(k), int | float)))
    return EXIT_OK


def _value(value) -> str:
    """A setting for the A/B table: numbers to 4 significant digits, the rest as JSON."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value, ensure_ascii=False)


def _compare(args: argparse.Namespace) -> int:
    comparison = _history(args).compare(args.a, args.b)
    if args.json:
        print_answer(comparison)
        return EXIT_OK
    a, b = comparison["a"], comparison["b"]
    # what was asked for differs; what it led to (the loudness report, …) is in the measures below
    settings = {k: v for k, v in comparison["differences"].items() if k not in RESULT_KEYS}
    print(f"{'':<26} {'A ' + a['id']:<28} {'B ' + b['id']:<28}")
    for key, (x, y) in settings.items():
        print(f"{key:<26} {_value(x):<28} {_value(y):<28}")
    if not settings:
        print("(same settings)")
    for name, values in comparison["measures"].items():
        x, y = values.get("a"), values.get("b")
        if isinstance(x, int | float) and isinstance(y, int | float):
            print(f"{name:<26} {x:<28.4g} {y:<28.4g} (B - A {values['difference']:+.3g})")
    print(f"keep one as a preset: distill history keep {a['id']} NAME  (or {b['id']})")
    return EXIT_OK


def _keep(args: argparse.Namespace) -> int:
    from distill.cli_presets import describe, take_preset_settings
    from distill.sound_presets import PresetBook

    entry = _history(args).get(args.entry)
    book = PresetBook.open(args.library)
    preset = book.save(entry.model, args.name, take_preset_settings(entry.parameters), overwrite=args.overwrite)
    answer(args.json, preset.to_dict(),
           f"saved preset {preset.name!r} of {entry.model['name']} from {entry.id}: {describe(preset.settings)}")
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    entry = _history(args).delete(args.entry)
    answer(args.json, entry.to_dict(), f"deleted {entry.id}")
    return EXIT_OK


def _clear(args: argparse.Namespace) -> int:
    history = _history(args)
    if not args.yes and not ask(f"delete every take in the history at {history.location}?"):
        raise CommandError("not cleared (pass --yes to clear without asking)")
    removed = history.clear()
    answer(args.json, {"removed": removed}, f"removed {removed} takes")
    return EXIT_OK


def _common(p: argparse.ArgumentParser, action) -> None:
    p.add_argument("--history-dir", default=None, metavar="PATH",
                   help="history folder (default: $DISTILL_HISTORY, else the settings file's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=reporting(action, _warnings, "history"))


def _warnings() -> tuple[type[Warning], ...]:
    from distill.history import HistoryWarning
    from distill.sound_presets import PresetWarning

    return HistoryWarning, PresetWarning


def add_history_commands(sub) -> None:
    """Register ``history`` and its subcommands on the ``distill`` subcommand parser ``sub``."""
    parser = sub.add_parser("history", help="the takes you generated: list, show, compare A/B, keep as preset")
    commands = parser.add_subparsers(dest="history_command", metavar="ACTION", required=True)
    ref_help = "entry id (or its first characters), or 1 = newest, 2 = the one before, …"

    p = commands.add_parser("list", help="list recorded takes, newest first")
    p.add_argument("--model", default=None, help="only takes of this model (name or id)")
    p.add_argument("--limit", type=int, default=None, help="at most this many")
    _common(p, _list)

    p = commands.add_parser("show", help="a take's settings, measures and files")
    p.add_argument("entry", help=ref_help)
    _common(p, _show)

    p = commands.add_parser("compare", help="two takes side by side (A/B): settings that differ and measures")
    p.add_argument("a", help=ref_help)
    p.add_argument("b", help=ref_help)
    _common(p, _compare)

    p = commands.add_parser("keep", help="keep a take's settings as a preset of its model")
    p.add_argument("entry", help=ref_help)
    p.add_argument("name", help="preset name")
    p.add_argument("--library", default=None, metavar="PATH", help="model library (presets live next to it)")
    p.add_argument("--overwrite", action="store_true", help="replace a preset of the same name")
    _common(p, _keep)

    p = commands.add_parser("delete", help="delete one take from the history")
    p.add_argument("entry", help=ref_help)
    _common(p, _delete)

    p = commands.add_parser("clear", help="delete every take in the history")
    p.add_argument("--yes", action="store_true", help="do not ask")
    _common(p, _clear)
