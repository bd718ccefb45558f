"""``distill model list|info|delete|rename|import|export``: the model library from the command line.

Each action takes ``--library PATH`` (overrides the settings and ``$DISTILL_LIBRARY``) and ``--json``
(one JSON value on stdout; on failure ``{"error", ...}``). Errors are ``distill: error: <message>``
with exit code 1, as everywhere in the CLI; repairs the library made on its own (a rebuilt
catalog) are printed as ``distill: note: …`` on stderr.

Imports nothing heavy at module level (``distill --help`` stays quick).
"""

from __future__ import annotations

import argparse
import sys

from distill.cli_common import EXIT_OK, CommandError, ask, json_errors, notes, print_answer


def add_model_commands(sub) -> None:
    """Register ``distill model …`` on the subparsers ``sub`` of the main parser."""
    model = sub.add_parser("model", help="the model library: list, info, delete, rename, import, export, analyze")
    actions = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")

    p = actions.add_parser("list", help="list the models (newest first), optionally those matching QUERY")
    p.add_argument("query", nargs="?", default=None, help="text searched in names, tags and descriptions")
    _common(p, _list)

    p = actions.add_parser("info", help="everything about one model: sliders, quality, config")
    p.add_argument("ref", metavar="MODEL", help="id, name, id prefix or path of a .distill file")
    _common(p, _info)

    p = actions.add_parser("delete", help="remove a model from the library")
    p.add_argument("ref", metavar="MODEL", help="id, name or id prefix")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _common(p, _delete)

    p = actions.add_parser("rename", help="give a model a new name")
    p.add_argument("ref", metavar="MODEL", help="id, name or id prefix")
    p.add_argument("new_name", metavar="NEW", help="the new name")
    _common(p, _rename)

    p = actions.add_parser("import", help="verify a .distill file and add it to the library")
    p.add_argument("file", metavar="FILE", help="path or URI of a .distill file")
    p.add_argument("--name", default=None, help="name in the library (default: the model's own)")
    p.add_argument("--tag", dest="tags", action="append", default=[], metavar="TAG", help="add a tag (repeatable)")
    p.add_argument("--description", default=None, help="replace the model's description")
    _common(p, _import)

    p = actions.add_parser("export", help="copy a model's file out of the library")
    p.add_argument("ref", metavar="MODEL", help="id, name, id prefix or path of a .distill file")
    p.add_argument("dest", metavar="DEST", help="file path, or an existing folder (→ DEST/<name>.distill)")
    p.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    _common(p, _export)

    p = actions.add_parser("analyze", help="(re)fit a model's latent sliders on a folder of audio")
    p.add_argument("ref", metavar="MODEL", help="id, name, id prefix or path of a .distill file")
    p.add_argument("dir", nargs="?", default=None,
                   help="folder of audio to analyse (default: the folder the model was trained on)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default: from settings)")
    _common(p, _analyze)


def _common(p: argparse.ArgumentParser, action) -> None:
    p.add_argument("--library", default=None, metavar="PATH",
                   help="library folder or URI (default: $DISTILL_LIBRARY, else the settings file's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=json_errors(lambda args: _run(args, action)))


def _run(args: argparse.Namespace, action) -> int:
    """Open the library and run ``action(library, args)``; every known failure becomes ``CommandError``."""
    from distill.library import Library, LibraryError, LibraryWarning
    from distill.model_file import ModelFileError
    from distill.settings import SettingsError, load_settings

    with notes(LibraryWarning):
        try:
            return action(Library.open(load_settings(library=args.library).library), args)
        except (LibraryError, ModelFileError, SettingsError) as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"{args.library or 'model library'}: {exc.strerror or exc}") from None


def _short(stamp: str) -> str:
    return stamp[:16].replace("T", " ") if stamp else "-"


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.0f} kB"


def _quality(summary: dict) -> str:
    value = summary.get("val_mrstft")
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _list(library, args) -> int:
    entries = library.list(args.query)
    if args.json:
        print_answer([e.to_dict() | {"location": library.location(e)} for e in entries])
        return EXIT_OK
    if not entries:
        print(f"no model matches {args.query!r}" if args.query else f"no models in {library.display} yet")
        return EXIT_OK
    rows = [("NAME", "ID", "CREATED (UTC)", "PRESET", "EPOCHS", "MR-STFT", "SLIDERS")]
    for e in entries:
        s = e.summary
        sliders = ", ".join(s.get("sliders") or []) or "-"
        rows.append((e.name, e.id, _short(e.created), str(s.get("preset") or "-"),
                     "-" if s.get("epochs") is None else str(s["epochs"]), _quality(s),
                     sliders if len(sliders) <= 48 else sliders[:47] + "…"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.rjust(w) if i in (4, 5) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))]
        print("  ".join([*cells, row[-1]]))
    print(f"{len(entries)} model(s) in {library.display}; MR-STFT: validation error, lower is better")
    return EXIT_OK


def info_lines(info: dict) -> list[tuple[str, str]]:
    """``(key, value)`` lines describing a model (:meth:`Library.info`): what ``model info`` and the UI show."""
    meta = info["meta"]
    config, training, report = meta.get("config") or {}, meta.get("training") or {}, meta.get("report") or {}
    spectral = (config.get("prepare") or {}).get("spectral") or {}
    model = config.get("model") or {}
    lines = [("name", info["name"]), ("id", info["id"] or "(a file outside the library)"),
             ("file", f"{info['location']} ({_size(info['bytes'])})"),
             ("created", f"{_short(info['created'])} UTC by distill {meta.get('distill_version', '?')}"),
             ("tags", ", ".join(info["tags"]) or "-"), ("description", info["description"] or "-"),
             ("lineage", meta.get("lineage") or "-"),
             ("audio", f"{spectral.get('sample_rate')} Hz, n_fft {spectral.get('n_fft')}, hop "
                       f"{spectral.get('hop_length')}, {spectral.get('n_mels')} mel bands, "
                       f"phase {spectral.get('phase')}"),
             ("model", f"preset {config.get('preset')}, latent {model.get('latent_dim')}, channels "
                       f"{'-'.join(str(c) for c in model.get('channels') or [])}")]
    if training or report:
        parts = [f"{training.get('epochs', report.get('epochs', '?'))} epochs"]
        if training.get("stopped", report.get("stopped")):
            parts.append(f"stopped: {training.get('stopped', report.get('stopped'))}")
        seconds = training.get("seconds", report.get("seconds"))
        if isinstance(seconds, int | float):
            parts.append(f"{seconds / 60:.1f} min")
        if training.get("files") is not None:
            files = training["files"]
            parts.append(f"{len(files) if isinstance(files, list) else files} files")
        lines.append(("training", ", ".join(parts)))
    if isinstance(report.get("val_mrstft"), int | float):
        where = "validation" if report.get("eval_split") == "val" else "training"
        ceiling = report.get("ceiling_mrstft")
        extra = f"; the representation alone {ceiling:.3f}" if isinstance(ceiling, int | float) else ""
        lines.append(("quality", f"MR-STFT {report['val_mrstft']:.3f} on {report.get('eval_chunks', '?')} {where} "
                                 f"chunks{extra} (lower is better)"))
    return lines


def slider_line(s: dict) -> str:
    """One slider of :func:`distill.library.sliders` as text: label, explained variance, ρ."""
    variance = s["explained_variance"]
    parts = [f"{s['index']:>2}  {s['label']:<14}"]
    if isinstance(variance, int | float):
        parts.append(f"explained variance {100 * variance:5.1f} %")
    if isinstance(s["rho"], int | float):
        # An "Axis N" shows its closest descriptor, whose ρ did not pass the threshold.
        closest = f" (closest: {s['rho_with']})" if s["rho_with"] != s["descriptor"] else ""
        parts.append(f"ρ {s['rho']:+.2f}{closest}")
    return "  ".join(parts)


def _info(library, args) -> int:
    info = library.info(args.ref)
    if args.json:
        print_answer(info)
        return EXIT_OK
    for key, value in info_lines(info):
        print(f"{key + ':':<13}{value}")
    if not info["sliders"]:
        print(f"{'sliders:':<13}none yet (no latent analysis in this model)")
        return EXIT_OK
    print("sliders:")
    for s in info["sliders"]:
        print("  " + slider_line(s))
    return EXIT_OK


def _delete(library, args) -> int:
    entry = library.resolve(args.ref)
    if not args.yes:
        if not sys.stdin.isatty() or args.json:
            raise CommandError(f"not deleting {entry.label()} without confirmation: pass --yes")
        if not ask(f"delete {entry.label()} from {library.display}?"):
            raise CommandError("cancelled; nothing was deleted")
    removed = library.delete(entry.id or args.ref)
    if args.json:
        print_answer({"deleted": removed.to_dict()})
    else:
        print(f"deleted {removed.label()}")
    return EXIT_OK


def _rename(library, args) -> int:
    old = library.resolve(args.ref)
    entry = library.rename(old.id or args.ref, args.new_name)
    if args.json:
        print_answer(entry.to_dict())
    else:
        print(f"renamed {old.name!r} to {entry.name!r} ({entry.id})")
    return EXIT_OK


def _import(library, args) -> int:
    entry = library.import_file(args.file, name=args.name, tags=args.tags, description=args.description)
    if args.json:
        print_answer(entry.to_dict() | {"location": library.location(entry)})
    else:
        print(f"imported {entry.label()} from {args.file}")
    return EXIT_OK


def _analyze(library, args) -> int:
    """PCA + descriptor labels on the clean chunks of ``args.dir`` (or the training folder), stored in the file."""
    from pathlib import Path

    from distill import model_file
    from distill.analysis_data import analyse, chunks_from_folder
    from distill.devices import pick_device
    from distill.settings import load_settings

    entry = library.resolve(args.ref)
    mf = library.read_model(entry)
    folder = args.dir or (mf.meta.get("training") or {}).get("data_dir")
    if not folder:
        raise CommandError(f"{entry.label()}: no training folder recorded; give the folder of audio to analyse")
    if not Path(folder).is_dir():
        raise CommandError(f"{folder}: not a folder of audio"
                           + ("" if args.dir else " (the model's training folder); give another one"))
    try:
        device = pick_device(load_settings(device=args.device).device)
        spec, files = chunks_from_folder(folder, mf.config.prepare)
        analysis = analyse(model_file.build_model(mf, device), spec, files, mf.stats, mf.config.prepare)
    except ValueError as exc:  # too little audio, unusable device
        raise CommandError(str(exc)) from None
    updated = model_file.with_meta(mf, analysis=analysis)
    if entry.external:
        model_file.save(updated, args.ref)
    else:
        library.replace_model(entry.id, updated)
    if not args.json:
        print(f"analysed {spec.shape[0]} chunks of {files} files in {folder}")
    return _info(library, args)


def _export(library, args) -> int:
    entry = library.resolve(args.ref)
    path = library.export(entry.id or args.ref, args.dest, overwrite=args.overwrite)
    if args.json:
        print_answer(entry.to_dict() | {"path": path})
    else:
        print(f"exported {entry.label()} to {path}")
    return EXIT_OK
