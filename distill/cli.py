"""The ``distill`` command line.

Every subcommand turns bad input into a one-line message on stderr and a non-zero exit, never a
traceback. Heavy imports (torch) happen inside the commands that need them, so ``distill --help``
and ``distill scan`` stay quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_ERROR = 1  # bad input or nothing usable
EXIT_USAGE = 2  # argparse's own code for malformed command lines


class CommandError(Exception):
    """A failure to report as ``distill: error: <message>`` with exit code 1."""


def _cmd_example_data(args: argparse.Namespace) -> int:
    from distill.example_data import write_example_data

    paths = write_example_data(args.dir, seed=args.seed)
    for path in paths:
        print(path)
    print(f"wrote {len(paths)} example files to {args.dir}", file=sys.stderr)
    return EXIT_OK


def _cmd_scan(args: argparse.Namespace) -> int:
    from distill.audio_io import scan_folder

    try:
        entries = scan_folder(args.dir)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise CommandError(str(exc)) from None
    ok = [e for e in entries if e.status == "ok"]
    totals = {"files_ok": len(ok), "files_skipped": len(entries) - len(ok),
              "total_minutes": round(sum(e.duration or 0.0 for e in ok) / 60, 3)}
    if args.json:
        print(json.dumps({"files": [e.to_dict() for e in entries], "totals": totals}, ensure_ascii=False))
    else:
        for e in entries:
            if e.status == "ok":
                print(f"ok       {e.path}  {e.duration:.2f} s  {e.sample_rate} Hz  {e.channels} ch")
            else:
                print(f"skipped  {e.path}  ({e.reason})")
        print(f"{totals['files_ok']} ok, {totals['files_skipped']} skipped, "
              f"{totals['total_minutes']:.2f} min of usable audio")
    if not ok:
        found = f"none of the {len(entries)} audio files" if entries else "no audio files"
        print(f"distill: error: {found} in {args.dir} can be used "
              f"(supported: WAV, FLAC, OGG/Vorbis, MP3, AIFF)", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _cmd_roundtrip(args: argparse.Namespace) -> int:
    from distill.roundtrip import roundtrip_folder

    try:
        results = roundtrip_folder(args.dir, args.out, seconds=args.seconds)
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
        return EXIT_OK if results["files"] else EXIT_ERROR
    for item in results["files"]:
        if "error" in item:
            print(f"skipped  {item['path']}  ({item['error']})")
        else:
            print(f"{item['path']:<32} mrstft {item['mrstft']:.3f}  sc {item['sc']:.3f}  "
                  f"{item['seconds'] * 1000:6.1f} ms  -> {item['output']}")
    if results["mean"]:
        mean = results["mean"]
        print(f"{'mean':<32} mrstft {mean['mrstft']:.3f}  sc {mean['sc']:.3f}  {mean['seconds'] * 1000:6.1f} ms")
        return EXIT_OK
    print(f"distill: error: no usable audio in {args.dir}", file=sys.stderr)
    return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill", description="Train a generative model on your own sounds.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("example-data", help="write the small synthesised example dataset")
    p.add_argument("dir", help="folder to write into (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.set_defaults(func=_cmd_example_data)

    p = sub.add_parser("scan", help="check which audio files in a folder can be used")
    p.add_argument("dir", help="folder to scan recursively")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_cmd_scan)

    p = sub.add_parser("roundtrip", help="hear what the representation keeps: audio -> 2-channel -> audio")
    p.add_argument("dir", help="folder of audio")
    p.add_argument("--out", required=True, help="folder for the reconstructed WAV files")
    p.add_argument("--seconds", type=float, default=None, help="only the first S seconds of each file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_cmd_roundtrip)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CommandError as exc:
        print(f"distill: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("distill: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
