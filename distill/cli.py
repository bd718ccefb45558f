"""The ``distill`` command line.

Every subcommand turns bad input into a one-line message on stderr and a non-zero exit, never a
traceback. Heavy imports (torch) happen inside the commands that need them, so ``distill --help``
and ``distill scan`` stay quick.
"""

from __future__ import annotations

import argparse
import sys
import time

from distill.cli_common import EXIT_ERROR, EXIT_OK, CommandError, answers_only_on_stdout, ask, json_errors, print_answer
from distill.cli_generate import add_generate_commands
from distill.cli_history import add_history_commands
from distill.cli_models import add_model_commands
from distill.cli_presets import add_preset_commands
from distill.cli_serve import add_serve_command
from distill.cli_sweep import add_sweep_command
from distill.cli_ui import add_ui_command


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
        print_answer({"files": [e.to_dict() for e in entries], "totals": totals})
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
        print_answer(results)
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


class _ProgressPrinter:
    """Files done/total, rows and ETA on stderr: one updating line on a terminal, else a line every 5 s."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = (None, 0.0)

    def __call__(self, p) -> None:
        now = time.monotonic()
        finished = p.files_done == p.files_total
        stage, last = self.last
        if not self.tty and not finished and stage == p.stage and now - last < 5.0:
            return
        self.last = (p.stage, now)
        if p.stage == "validating":
            line = f"checked {p.files_done}/{p.files_total} new or changed files"
        else:
            eta = "" if p.eta is None else f", about {p.eta:.0f} s left"
            line = f"prepared {p.files_done}/{p.files_total} files, {p.rows_written} rows written{eta}"
        if self.tty:
            self.stream.write("\r" + line.ljust(78) + ("\n" if finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _print_skipped(items: list[dict]) -> None:
    for item in items:
        print(f"skipped  {item['path']}  ({item['reason']})")


def _prepare_config(args: argparse.Namespace):
    from dataclasses import replace

    from distill.prepare_config import PrepareConfig

    cfg = PrepareConfig()
    try:
        augment = replace(cfg.augment, expansion=args.expansion, seed=args.seed)
        return replace(cfg, augment=augment, chunk_seconds=args.chunk_seconds, val_fraction=args.val_fraction,
                       split_seed=args.seed)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _preparation_options(args: argparse.Namespace) -> dict:
    """The options of :func:`distill.prepare.prepare` that ``prepare`` and ``train`` both take."""
    return {"yes": args.yes, "confirm": ask if sys.stdin.isatty() and not args.json else None,
            "confirm_above_bytes": int(args.confirm_above_gb * 1024**3)}


def _no_usable_audio(args: argparse.Namespace, exc) -> CommandError:
    """A folder with no usable file: every file and its reason (as a table, or in the JSON error)."""
    if not args.json:
        _print_skipped(exc.skipped)
    return CommandError(str(exc), exc.skipped)


def _prepare(args: argparse.Namespace) -> int:
    from distill.manifest import CacheError
    from distill.prepare import NoUsableAudio, PrepareError, human_bytes
    from distill.ray_layer.prepare import prepare_dataset

    cfg = _prepare_config(args)
    say = (lambda message: None) if args.json else (lambda message: print(message, file=sys.stderr))
    try:
        result = prepare_dataset(args.dir, args.cache, cfg, num_cpus=args.num_cpus, progress=_ProgressPrinter(),
                                 log=say, **_preparation_options(args))
    except NoUsableAudio as exc:
        raise _no_usable_audio(args, exc) from None
    except (PrepareError, CacheError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:  # e.g. a storage URI whose bucket or credentials are wrong
        raise CommandError(f"{args.cache or args.dir}: {exc}") from None
    except KeyboardInterrupt:
        print("distill: interrupted; files already finished are kept and the next run reuses them",
              file=sys.stderr)
        return 130
    if args.json:
        keys = ("cache", "manifest", "files_ok", "files_skipped", "rows_train", "rows_val", "processed_files",
                "reused_files", "removed_files", "bytes", "seconds", "fresh", "reason", "split_note",
                "audio_seconds", "stage_seconds")
        summary = result.to_json()
        print_answer({k: summary[k] for k in keys})
        return EXIT_OK
    _print_skipped(result.files_skipped)
    state = ("up to date: nothing to do" if result.fresh else
             f"{len(result.processed_files)} processed, {len(result.reused_files)} reused, "
             f"{len(result.removed_files)} removed")
    print(f"{result.cache}: {state}")
    print(f"{result.files_ok} files ok, {len(result.files_skipped)} skipped; {result.rows_train} train rows, "
          f"{result.rows_val} validation rows; {human_bytes(result.bytes)}; {result.seconds:.1f} s")
    if result.split_note:
        print(f"note: {result.split_note}")
    return EXIT_OK


# The names of distill.presets.PRESET_NAMES, repeated so that `distill --help` does not import torch
# (a test keeps the two equal).
PRESETS = ("auto", "tiny", "conservative", "balanced", "aggressive")


class _TrainProgressPrinter:
    """Epoch, batch, losses, validation MR-STFT and ETA on stderr: one updating line on a terminal,
    else one line per finished epoch."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last_epoch = None

    def __call__(self, p: dict) -> None:
        last = p.get("last") or {}
        if p.get("state") == "finished":
            return
        finished = p.get("batches") in (0, p.get("batches_per_epoch"))
        if finished and not last:
            parts = [f"epoch {p['epoch'] + 1}/{p['epochs']} starting"]
        else:
            parts = [f"epoch {p['epoch'] + (0 if finished else 1)}/{p['epochs']}"]
        if p.get("batches") and p.get("batches") != p.get("batches_per_epoch"):
            parts.append(f"batch {p['batches']}/{p['batches_per_epoch']}")
        if last.get("train_loss_total") is not None:
            parts.append(f"loss {last['train_loss_total']:.3f}")
        if last.get("val_mrstft") is not None:
            parts.append(f"val MR-STFT {last['val_mrstft']:.3f} (ceiling {p['ceiling_mrstft']:.3f})")
        if p.get("eta_seconds") is not None:
            parts.append(f"about {p['eta_seconds']:.0f} s left")
        line = ", ".join(parts)
        if self.tty:
            self.stream.write("\r" + line.ljust(100))
        elif p["epoch"] != self.last_epoch and finished:
            self.stream.write(line + "\n")
        self.last_epoch = p["epoch"]
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _train_overrides(args: argparse.Namespace) -> dict:
    train = {}
    if args.epochs is not None:
        train["epochs"] = args.epochs
    if args.max_minutes is not None:
        train["max_minutes"] = args.max_minutes
    return {"train": train} if train else {}


def _train(args: argparse.Namespace) -> int:
    from distill.checkpoint import CheckpointError
    from distill.manifest import CacheError
    from distill.prepare import NoUsableAudio, PrepareError
    from distill.ray_layer.train import TrainError, train_model
    from distill.training_config import ConfigError
    from distill.training_run import RunError

    say = lambda message: print(message, file=sys.stderr)  # noqa: E731
    printer = _TrainProgressPrinter()
    try:
        result = train_model(
            args.dir, preset=args.preset, config_file=args.config, overrides=_train_overrides(args), name=args.name,
            storage=args.storage, resume=args.resume, cache=args.cache, workers=args.workers, gpu=args.gpu,
            num_cpus=args.num_cpus, max_failures=args.max_failures, progress=printer, log=say,
            prepare_progress=_ProgressPrinter(), library=args.library, **_preparation_options(args))
    except NoUsableAudio as exc:
        raise _no_usable_audio(args, exc) from None
    except (ConfigError, RunError, PrepareError, CacheError, CheckpointError, TrainError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"{args.storage or args.cache or args.dir}: {exc}") from None
    except KeyboardInterrupt:  # before training started (preparing, starting Ray)
        printer.done()
        print("distill: interrupted before training started", file=sys.stderr)
        return 130
    printer.done()
    code = 130 if result.stopped == "interrupted" else EXIT_OK
    if code == 130:
        name = result.run_dir.rstrip("/").rsplit("/", 1)[-1]
        print(f"distill: interrupted after {result.epochs} epochs; continue with: distill train {args.dir} "
              f"--resume {name}" + (f" --storage {args.storage}" if args.storage else ""), file=sys.stderr)
    if args.json:
        print_answer(result.to_json())
        return code
    report = result.report
    if code == 130:
        return code
    print(f"run:        {result.run_dir}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"report:     {result.run_dir}/report.json")
    print(f"stopped:    {result.stopped} after {result.epochs} epochs")
    if result.model:
        print(f"model:      {result.model['name']} (id {result.model['id']}); try: distill generate "
              f"{result.model['id']}" + (f" --library {args.library}" if args.library else ""))
    if result.val_mrstft is not None:
        where = "validation" if report.get("eval_split") == "val" else "training (no validation files)"
        print(f"quality:    MR-STFT {result.val_mrstft:.3f} on {report.get('eval_chunks')} {where} chunks; "
              f"the representation alone scores {result.ceiling_mrstft:.3f} (lower is better)")
    return EXIT_OK


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``distill train`` (``jobs/train.py`` takes the same)."""
    p.add_argument("dir", help="folder of audio (scanned recursively)")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="starting configuration (default: auto, chosen by the collection's size)")
    p.add_argument("--epochs", type=int, default=None, help="train at most N epochs (overrides the preset)")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget for training")
    p.add_argument("--workers", type=int, default=1, help="data-parallel training workers (default 1)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--config", default=None, help="TOML or JSON file of config overrides (see README)")
    p.add_argument("--name", default=None, help="run name (default: folder name and time)")
    p.add_argument("--storage", default=None,
                   help="folder or URI (s3://…) holding runs (default: DIR/.distill/runs)")
    p.add_argument("--resume", default=None, metavar="RUN",
                   help="continue RUN (a name under --storage, or its path) from its latest checkpoint")
    p.add_argument("--library", default=None,
                   help="model library that receives the trained model (default: from settings)")
    p.add_argument("--max-failures", type=int, default=2,
                   help="worker failures to recover from before giving up (default 2)")
    _add_preparation_arguments(p)
    p.set_defaults(func=json_errors(_train))


def _add_preparation_arguments(p: argparse.ArgumentParser) -> None:
    """Options ``prepare`` and ``train`` share: where the cache is, confirmation, CPUs, JSON output."""
    p.add_argument("--cache", default=None, help="cache folder or storage URI such as s3://bucket/prefix "
                   "(default: DIR/.distill/cache)")
    p.add_argument("--yes", action="store_true", help="do not ask before writing a large cache")
    p.add_argument("--confirm-above-gb", type=float, default=2.0,
                   help="ask (or, without a terminal, stop) when the cache estimate is above this (default 2)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for Ray (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON summary at the end")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill", description="Train a generative model on your own sounds. "
                                     "Without a command, opens the UI (distill ui).")
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

    p = sub.add_parser("prepare", help="turn a folder of audio into training-ready Parquet shards (Ray Data)")
    p.add_argument("dir", help="folder of audio (scanned recursively)")
    p.add_argument("--expansion", type=int, default=10, help="augmented variants per training chunk (default 10)")
    p.add_argument("--chunk-seconds", type=float, default=2.0, help="length of each training example (default 2)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of files held out (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the augmentation and the split (default 0)")
    _add_preparation_arguments(p)
    p.set_defaults(func=json_errors(_prepare))

    p = sub.add_parser("train", help="train a model on a folder of audio (Ray Train); prepares the data first")
    add_train_arguments(p)
    add_sweep_command(sub)
    add_generate_commands(sub)
    add_model_commands(sub)
    add_preset_commands(sub)
    add_history_commands(sub)
    add_serve_command(sub)
    add_ui_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # bare `distill` opens the UI: musicians who never open a terminal start it from a launcher
    args = build_parser().parse_args(argv or ["ui", "--open"])
    try:
        with answers_only_on_stdout(getattr(args, "json", False)):
            return args.func(args)
    except CommandError as exc:
        print(f"distill: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("distill: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
