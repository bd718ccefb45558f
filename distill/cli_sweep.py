"""``distill sweep``: search the loss weights with Ray Tune, then keep the best model and its config.

Progress goes to stderr (a line per finished epoch of each trial); the results table, the files
written and the best model go to stdout, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import sys

from distill.cli_common import EXIT_ERROR, EXIT_OK, CommandError, json_errors, print_answer

EXIT_INTERRUPTED = 130


def _sweep(args: argparse.Namespace) -> int:
    from distill.cli import _no_usable_audio, _preparation_options, _ProgressPrinter
    from distill.manifest import CacheError
    from distill.prepare import NoUsableAudio, PrepareError
    from distill.ray_layer.sweep import run_sweep
    from distill.ray_layer.train import TrainError
    from distill.sweep_definition import SweepError
    from distill.sweep_space import SpaceError
    from distill.training_config import ConfigError
    from distill.training_run import RunError

    say = (lambda message: None) if args.json else (lambda message: print(message, file=sys.stderr, flush=True))
    try:
        result = run_sweep(
            args.dir, trials=args.trials, max_concurrent=args.max_concurrent, preset=args.preset,
            config_file=args.config, space_file=args.space, tune_lr=args.tune_lr or None, scheduler=args.scheduler,
            max_minutes=args.max_minutes, epochs=args.epochs, storage=args.storage, name=args.name,
            resume=args.resume, cache=args.cache, workers=args.workers, gpu=args.gpu or None,
            num_cpus=args.num_cpus, library=args.library, seed=args.seed, log=say,
            progress=None if args.json else _ProgressPrinter(), **_preparation_options(args))
    except NoUsableAudio as exc:
        raise _no_usable_audio(args, exc) from None
    except (SweepError, SpaceError, ConfigError, RunError, PrepareError, CacheError, TrainError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"{args.storage or args.cache or args.dir}: {exc}") from None
    except KeyboardInterrupt:  # before the trials started (preparing, starting Ray)
        print("distill: interrupted before the sweep started", file=sys.stderr)
        return EXIT_INTERRUPTED
    code = EXIT_INTERRUPTED if result.stopped == "interrupted" else EXIT_OK if result.best else EXIT_ERROR
    if code == EXIT_ERROR:  # the table (or the JSON) names each trial's error
        print("distill: error: no trial finished an epoch with a score", file=sys.stderr)
    if code == EXIT_INTERRUPTED:
        done = sum(t.status in ("completed", "early_stop", "time_budget", "stopped_early") for t in result.trials)
        storage = f" --storage {args.storage}" if args.storage else ""
        print(f"distill: sweep interrupted with {done} trial(s) done; continue with: distill sweep {args.dir} "
              f"--resume --name {result.name}{storage}", file=sys.stderr)
    if args.json:
        print_answer(result.to_json())
        return code
    print(result.table())
    print(f"sweep:       {result.folder} ({result.stopped})")
    print(f"results:     {result.results_csv}")
    print(f"plot:        {result.plot}")
    if result.best is not None:
        print(f"best:        trial {result.best.number}, validation MR-STFT {result.best.val_mrstft:.4f} "
              "(lower is better)")
        print(f"best config: {result.best_config}  (distill train {args.dir} --config {result.best_config})")
    if result.model:
        print(f"model:       {result.model['name']} (id {result.model['id']}); try: distill generate "
              f"{result.model['id']}" + (f" --library {args.library}" if args.library else ""))
    return code


def add_sweep_command(sub) -> None:
    from distill.cli import PRESETS, _add_preparation_arguments

    p = sub.add_parser("sweep", help="search the loss weights with Ray Tune; keep the best model and config",
                       description="Train several trials with different loss weights (the same training as "
                       "`distill train`), judge each by its validation MR-STFT against the original audio, "
                       "and keep the best model in the library under the sweep's name.")
    p.add_argument("dir", help="folder of audio (scanned recursively)")
    p.add_argument("--trials", type=int, default=None, help="trials to run (default 8)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials training at once (default: what the CPUs or GPUs hold)")
    p.add_argument("--preset", choices=PRESETS, default=None, help="starting configuration of every trial")
    p.add_argument("--config", default=None, help="TOML or JSON config file every trial starts from")
    p.add_argument("--space", default=None,
                   help="YAML, TOML or JSON search space (default: the loss weights; see README)")
    p.add_argument("--tune-lr", action="store_true", help="search the learning rate too (default space)")
    p.add_argument("--scheduler", choices=("asha", "fifo"), default=None,
                   help="asha stops trials that fall behind (default); fifo runs every trial to the end")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the preset's)")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget for the whole sweep")
    p.add_argument("--storage", default=None, help="folder or URI (s3://…) holding sweeps "
                   "(default: DIR/.distill/sweeps)")
    p.add_argument("--name", default=None, help="sweep name (default: sweep-<date>-<time>); also the best "
                   "model's name in the library")
    p.add_argument("--resume", action="store_true", help="continue the sweep --name: finish its remaining trials")
    p.add_argument("--workers", type=int, default=None, help="training workers per trial (default 1)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--seed", type=int, default=None, help="seed of the parameter sampling (default 0)")
    p.add_argument("--library", default=None, help="model library that receives the best model "
                   "(default: from settings)")
    _add_preparation_arguments(p)
    p.set_defaults(func=json_errors(_sweep))
