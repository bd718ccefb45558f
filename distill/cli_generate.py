"""``distill generate`` and ``distill reconstruct``: the command-line face of :class:`distill.loaded_model.LoadedModel`.

Everything is checked before anything is written: the export options, the sliders, the
duration, the output folder. The takes are then generated in memory and written all-or-nothing
(:func:`distill.export.write_takes`), each with a sidecar JSON holding every parameter that made
it, so a failure never leaves part of a batch behind.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
from datetime import datetime, timezone
from pathlib import Path

from distill.cli_common import EXIT_OK, CommandError, json_errors

FORMATS = ("wav", "flac", "ogg", "mp3")  # distill.export.FORMATS, repeated so --help does not import torch
SAMPLE_RATES = (44100, 48000, 96000)
BIT_DEPTHS = ("16", "24", "32f")


def _slider_settings(items: list[str]) -> dict[str, float]:
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


def _load(args: argparse.Namespace):
    from distill.loaded_model import LoadedModel

    try:
        return LoadedModel.load(args.model, library=args.library, device=args.device)
    except ValueError as exc:  # unknown/ambiguous model, damaged file, bad device or settings
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"{args.model}: {exc}") from None


def _output_folder(location: str) -> Path:
    folder = Path(location).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{folder}: -o must be a folder, and this is a file")
    return folder


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "take"


def _free_path(folder: Path, stem: str, extension: str, taken: set[Path]) -> Path:
    """``folder/stem.ext``, or ``stem-2.ext``, … — never an existing file or one of this batch, and never
    a name whose sidecar (``<name>.json``) exists: a take's sidecar must not replace someone's file either."""
    path, n = folder / f"{stem}{extension}", 1
    while path.exists() or path.with_name(f"{path.name}.json").exists() or path in taken:
        n += 1
        path = folder / f"{stem}-{n}{extension}"
    taken.add(path)
    return path


def _comment(take, model) -> str:
    sliders = ", ".join(f"{k}={v:+g}" for k, v in take.sliders.items()) or "none"
    ident = f" ({model.identity['id']})" if model.identity.get("id") else ""
    return (f"distill model {model.identity['name']}{ident}; seed {take.seed}; evolution {take.evolution:g}; "
            f"sliders {sliders}")


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

    if args.count < 1:
        raise CommandError(f"-n/--count must be at least 1, got {args.count}")
    options = ExportOptions(format=args.format, sample_rate=args.sample_rate, bit_depth=args.bit_depth,
                            quality=args.quality, title=args.title, artist=args.artist, album=args.album)
    try:
        options.validate()
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    sliders = _slider_settings(args.slider)
    folder = _output_folder(args.out)
    model = _load(args)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    try:  # every field checked before anything is generated or written
        model.check_request(args.duration, sliders, args.evolution)
    except ValueError as exc:  # duration, evolution, unknown slider or value out of range
        raise CommandError(str(exc)) from None
    takes = []
    taken: set[Path] = set()

    def pending():
        """One take at a time, generated as the writer asks for it (bounded memory for long batches)."""
        for i in range(args.count):
            take = model.generate(args.duration, seed + i, sliders=sliders, evolution=args.evolution)
            takes.append(take)
            take_options = replace(options, comment=_comment(take, model))
            path = _free_path(folder, f"{_safe(model.identity['name'])}-seed{take.seed}",
                              default_extension(args.format), taken)
            yield Take(path, take.audio, take.sample_rate, take_options, _sidecar(take, take_options, model))
            takes[-1] = replace(take, audio=take.audio[:0])  # the writer has encoded it: keep the metadata only

    try:
        written = write_takes(pending())
    except ValueError as exc:  # ExportError: unwritable folder, encoder failure (nothing is left behind)
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps([{"path": w.path, "format": w.format, "seed": t.seed, "duration": w.duration,
                           "sample_rate": w.sample_rate, "channels": w.channels, "bit_depth": w.bit_depth,
                           "sidecar": w.sidecar} for w, t in zip(written, takes, strict=True)]))
        return EXIT_OK
    for w, t in zip(written, takes, strict=True):
        print(f"{w.path}  {w.duration:.2f} s  {w.sample_rate} Hz  seed {t.seed}")
    if args.seed is None:
        print(f"seed {seed} (pass --seed {seed} to make the same sound again)", file=sys.stderr)
    return EXIT_OK


def _reconstruct(args: argparse.Namespace) -> int:
    from distill.audio_io import AudioFileError, load_audio_with_info
    from distill.export import ExportOptions, Take, write_takes

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
        out = Path(f"{Path(args.input).stem}.{_safe(model.identity['name'])}.wav")
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
        print(json.dumps(written.to_json()))
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
    p.add_argument("-d", "--duration", type=float, default=4.0, help="seconds per take, 0.1 to 600 (default 4)")
    p.add_argument("-n", "--count", type=int, default=1, help="takes, with seeds SEED, SEED+1, … (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    p.add_argument("--slider", action="append", default=[], metavar="NAME_OR_INDEX=VALUE",
                   help="slider position -10…+10 by label or index, e.g. brightness=3 or 2=-5 (repeatable)")
    p.add_argument("--evolution", type=float, default=0.3, help="0 = static, 1 = wandering (default 0.3)")
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
