"""``distill generate`` and ``distill reconstruct``: the command-line face of :class:`distill.loaded_model.LoadedModel`.

Everything is checked before anything is written: the export options, the sliders, the
duration, the output folder. The takes are then generated in memory and written all-or-nothing
(:func:`distill.export.write_takes`), each with a sidecar JSON holding every parameter that made
it, so a failure never leaves part of a batch behind.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from datetime import datetime, timezone
from pathlib import Path

from distill.cli_common import EXIT_OK, CommandError, json_errors, print_answer
from distill.cli_takes import add_take_options, build_request, preset_settings, request_settings

FORMATS = ("wav", "flac", "ogg", "mp3")  # distill.export.FORMATS, repeated so --help does not import torch
SAMPLE_RATES = (44100, 48000, 96000)
BIT_DEPTHS = ("16", "24", "32f")
DEFAULT_DURATION = 4.0


def _load(args: argparse.Namespace, ref: str | None = None):
    from distill.loaded_model import LoadedModel

    ref = ref or args.model
    try:
        return LoadedModel.load(ref, library=args.library, device=args.device)
    except ValueError as exc:  # unknown/ambiguous model, damaged file, bad device or settings
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"{ref}: {exc}") from None


def _output_folder(location: str) -> Path:
    folder = Path(location).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{folder}: -o must be a folder, and this is a file")
    return folder


def _free_path(folder: Path, stem: str, extension: str, taken: set[Path]) -> Path:
    """``folder/stem.ext``, or ``stem-2.ext``, … — never an existing file or one of this batch, and never
    a name whose sidecar (``<name>.json``) exists: a take's sidecar must not replace someone's file either."""
    path, n = folder / f"{stem}{extension}", 1
    while path.exists() or path.with_name(f"{path.name}.json").exists() or path in taken:
        n += 1
        path = folder / f"{stem}-{n}{extension}"
    taken.add(path)
    return path


def _sidecar(take, options, model) -> dict:
    from distill import __version__

    return {"distill_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **take.parameters(), "model_sample_rate": take.sample_rate, "device": str(model.device),
            "export": {"format": options.format, "sample_rate": options.sample_rate,
                       "bit_depth": options.resolved_bit_depth, "quality": options.quality},
            "tags": {k: getattr(options, k) for k in ("title", "artist", "album", "comment")}}


def _generate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from distill.export import ExportOptions, Take, default_extension, write_takes
    from distill.takes import produce, take_comment, take_stem

    if args.count < 1:
        raise CommandError(f"-n/--count must be at least 1, got {args.count}")
    options = ExportOptions(format=args.format, sample_rate=args.sample_rate, bit_depth=args.bit_depth,
                            quality=args.quality, title=args.title, artist=args.artist, album=args.album)
    try:
        options.validate()
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    folder = _output_folder(args.out)
    model = _load(args)
    base = None
    if args.preset:
        base = preset_settings(_presets(args), model.identity, args.preset, model.space)[1]
    settings = request_settings(args, base)
    settings.setdefault("duration", DEFAULT_DURATION)
    random_seed = settings.get("seed") is None
    # every field is checked before anything is generated or written
    request = build_request(settings, secrets.randbelow(2**31), model.space)
    try:
        model.check_request(request.duration, request.sliders, request.evolution)
    except ValueError as exc:  # duration, evolution, unknown slider or value out of range
        raise CommandError(str(exc)) from None
    blend_models = [_load(args, ref) for ref, _ in request.blend]
    history = _history(args) if args.history else None
    takes, recorded = [], []
    taken: set[Path] = set()

    def pending():
        """One take at a time, generated as the writer asks for it (bounded memory for long batches)."""
        for i in range(args.count):
            try:
                take = produce(model, replace(request, seed=request.seed + i), blend_models)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            takes.append(take)
            take_options = replace(options, comment=take_comment(take))
            path = _free_path(folder, take_stem(take),
                              default_extension(args.format), taken)
            yield Take(path, take.audio, take.sample_rate, take_options, _sidecar(take, take_options, model))
            # the writer has encoded it (a failed batch never gets here): record it, then keep the metadata only
            if history is not None:
                recorded.append(history.add(take.audio, take.sample_rate, take.parameters(), model.identity,
                                            source="cli"))
            takes[-1] = replace(take, audio=take.audio[:0])

    try:
        written = write_takes(pending())
    except ValueError as exc:  # ExportError: unwritable folder, encoder failure (nothing is left behind)
        raise CommandError(str(exc)) from None
    if args.json:
        print_answer([{"path": w.path, "format": w.format, "seed": t.seed, "duration": w.duration,
                           "sample_rate": w.sample_rate, "channels": w.channels, "bit_depth": w.bit_depth,
                           "spatial": t.spatial, "blend": t.blend, "loudness": t.loudness,
                           "history": h.id if h else None, "sidecar": w.sidecar}
                          for w, t, h in zip(written, takes, recorded or [None] * len(takes), strict=True)])
        return EXIT_OK
    for w, t, h in zip(written, takes, recorded or [None] * len(takes), strict=True):
        extras = [t.spatial["mode"]] if t.spatial and t.spatial["mode"] != "mono" else []
        if t.blend:
            extras.append(f"{t.blend['mode']} blend")
        if t.loudness:
            extras.append(f"{t.loudness['after_lufs']:.1f} LUFS")
        if h is not None:
            extras.append(f"history {h.id}")
        print(f"{w.path}  {w.duration:.2f} s  {w.sample_rate} Hz  seed {t.seed}" + "".join(f"  {e}" for e in extras))
    if random_seed:
        print(f"seed {request.seed} (pass --seed {request.seed} to make the same sound again)", file=sys.stderr)
    return EXIT_OK


def _presets(args: argparse.Namespace):
    from distill.sound_presets import PresetBook

    try:
        return PresetBook.open(args.library)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _history(args: argparse.Namespace):
    from distill.history import History

    try:
        return History.open(args.history_dir)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _reconstruct(args: argparse.Namespace) -> int:
    from distill.audio_io import AudioFileError, load_audio_with_info
    from distill.export import ExportOptions, Take, write_takes
    from distill.takes import safe_name

    out = Path(args.out).expanduser() if args.out else None
    fmt = (out.suffix.lstrip(".").lower() if out else "wav") or "wav"
    if fmt not in FORMATS:
        raise CommandError(f"-o {args.out}: the extension must be one of {', '.join('.' + f for f in FORMATS)}")
    model = _load(args)
    try:
        audio, info = load_audio_with_info(args.input, sample_rate=model.sample_rate)
    except AudioFileError as exc:
        raise CommandError(str(exc)) from None
    rate = info.sample_rate if info.sample_rate in SAMPLE_RATES and not (fmt == "mp3" and info.sample_rate > 48000) \
        else 48000
    if out is None:
        out = Path(f"{Path(args.input).stem}.{safe_name(model.identity['name'])}.wav")
    for existing in (out, Path(f"{out}.json")):
        if existing.exists() and not args.overwrite:
            raise CommandError(f"{existing}: exists; pass --overwrite to replace it")
    options = ExportOptions(format=fmt, sample_rate=rate, comment=f"distill model {model.identity['name']}: "
                            f"reconstruction of {Path(args.input).name}")
    rendering = model.reconstruct(audio, model.sample_rate)
    sidecar = {"model": model.identity, "input": str(args.input), "duration": len(audio) / model.sample_rate,
               "export": {"format": fmt, "sample_rate": rate, "bit_depth": options.resolved_bit_depth}}
    try:
        # No unlink first: write_takes renames onto the old file only once the new one is complete,
        # so a failed export (or an interrupted one) leaves the file being replaced as it was.
        [written] = write_takes([Take(out, rendering, model.sample_rate, options, sidecar)])
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print_answer(written.to_json())
    else:
        print(f"{written.path}  {written.duration:.2f} s  {written.sample_rate} Hz")
    return EXIT_OK


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None,
                   help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps (default: from settings)")
    p.add_argument("--library", default=None, help="model library folder or URI (default: from settings)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_generate_commands(sub) -> None:
    """Register ``generate`` and ``reconstruct`` on the ``distill`` subcommand parser ``sub``."""
    p = sub.add_parser("generate", help="generate new sound from a trained model and export it")
    p.add_argument("model", help="model name, id (or its first characters) in the library, or a .distill file")
    p.add_argument("-n", "--count", type=int, default=1, help="takes, with seeds SEED, SEED+1, … (default 1)")
    add_take_options(p)
    p.add_argument("--preset", default=None, metavar="NAME",
                   help="start from this saved preset of the model (flags given here override it)")
    p.add_argument("--history", action="store_true", help="also record each take in the generation history")
    p.add_argument("--history-dir", default=None, metavar="PATH",
                   help="history folder (default: $DISTILL_HISTORY, else the settings file's)")
    p.add_argument("--format", choices=FORMATS, default="wav", help="file format (default wav)")
    p.add_argument("--sample-rate", type=int, default=48000, help="44100, 48000 or 96000 Hz (default 48000)")
    p.add_argument("--bit-depth", choices=BIT_DEPTHS, default=None,
                   help="wav: 16, 24, 32f; flac: 16, 24 (default 24); not for ogg/mp3")
    p.add_argument("--quality", type=float, default=None, help="ogg/mp3 quality 0…10 (default ogg 6, mp3 8)")
    p.add_argument("--title", default=None, help="title tag")
    p.add_argument("--artist", default=None, help="artist tag")
    p.add_argument("--album", default=None, help="album tag")
    p.add_argument("-o", "--out", default=".", help="folder for the files (default: the current folder)")
    _common(p)
    p.set_defaults(func=json_errors(_generate))

    p = sub.add_parser("reconstruct", help="play a recording through a model (encode, decode, synthesise)")
    p.add_argument("model", help="model name, id or .distill file")
    p.add_argument("input", help="audio file to reconstruct")
    p.add_argument("-o", "--out", default=None, help="output file; its extension picks the format "
                   "(default INPUT.MODEL.wav in the current folder)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    _common(p)
    p.set_defaults(func=json_errors(_reconstruct))
