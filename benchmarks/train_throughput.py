#!/usr/bin/env python
"""Training throughput: the plain loop vs Ray Train with one and two workers, on the same data.

    python benchmarks/train_throughput.py [DIR] [--preset balanced] [--epochs 3] [--expansion 2]
                                          [--batch 16] [--modes plain,ray1,ray2] [--device cpu] [--json]

DIR (default: the example data, written if missing) is prepared once; then each mode trains the
same config from scratch into a temporary run folder:

* ``plain``: :func:`distill.training_session.run_worker` in this process, batches from memory;
* ``rayN``: ``distill train``'s function on a local Ray with N workers (DDP), batches streamed
  from the Parquet cache with ``get_dataset_shard`` → ``iter_torch_batches``.

Reported per mode: training samples per second (median over epochs after the first, steps only —
validation and checkpoints excluded), its ratio to the plain loop, the share of step time spent
waiting for data, and the whole wall time including start-up. ``--device cuda`` runs the plain loop
on a GPU with AMP (the GPU figures of the README).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _folders import EXAMPLE_DIR, data_folder

from distill.cli_common import answers_only_on_stdout, print_answer
from distill.prepared import PreparedDataset
from distill.ray_layer.prepare import prepare_dataset
from distill.ray_layer.train import train_model
from distill.run_folder import RunFolder
from distill.training_run import resolve_config
from distill.training_session import RunSpec, WorkerEnv, run_worker


def _summary(mode: str, rows: list[dict], workers: int, wall: float) -> dict:
    later = rows[1:] or rows  # the first epoch includes warm-up
    rates = [workers * r["samples"] / r["train_seconds"] for r in later]
    waits = [r["data_wait_seconds"] / r["train_seconds"] for r in later]
    return {"mode": mode, "workers": workers, "epochs": len(rows), "samples_per_epoch": workers * rows[0]["samples"],
            "samples_per_second": statistics.median(rates), "data_wait_share": statistics.median(waits),
            "epoch_seconds": statistics.median(r["seconds"] for r in later), "wall_seconds": wall,
            "val_mrstft": rows[-1]["val_mrstft"]}


def run_plain(folder: Path, overrides: dict, preset: str, storage: Path, device: str) -> dict:
    cfg = resolve_config(folder, preset, None, overrides)  # AMP is on by default and used on CUDA
    cache = str(folder / ".distill/cache")
    prepared = PreparedDataset.open(cache)
    started = time.perf_counter()
    train = torch.from_numpy(prepared.read("train")["spec"])
    val = prepared.read("val")
    val_batches = [torch.from_numpy(val["spec"])] if val else None
    batch = cfg.train.batch_size

    def batches(epoch: int):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        for first in range(0, len(train), batch):
            yield train[order[first:first + batch]]

    run_dir = storage / "plain"
    spec = RunSpec(str(run_dir), cache, str(folder), cfg.to_dict())
    env = WorkerEnv(batches, (lambda: val_batches) if val_batches else None, -(-len(train) // batch),
                    device=torch.device(device))
    run_worker(spec, env)
    return _summary("plain" if device == "cpu" else f"plain-{device}", RunFolder.open(str(run_dir)).read_metrics(),
                    1, time.perf_counter() - started)


def run_ray(folder: Path, overrides: dict, preset: str, storage: Path, workers: int) -> dict:
    started = time.perf_counter()
    result = train_model(str(folder), preset=preset, overrides=overrides, name=f"ray{workers}",
                         storage=str(storage), workers=workers, num_cpus=None, yes=True,
                         library=str(storage / "library"))  # the benchmark's models stay out of the user's library
    rows = RunFolder.open(result.run_dir).read_metrics()
    return _summary(f"ray{workers}", rows, workers, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", nargs="?", default=str(EXAMPLE_DIR))
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--expansion", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--modes", default="plain,ray1,ray2")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    folder = data_folder(args.dir)
    if folder is None:
        return 1
    overrides = {"train": {"epochs": args.epochs, "batch_size": args.batch, "patience": 0},
                 "prepare": {"augment": {"expansion": args.expansion}},
                 "run": {"preview_every": 0, "num_previews": 0, "eval_chunks": 2, "report_chunks": 2}}
    results = []
    # Prepared once, before any mode is timed; every mode reads the same cache.
    prepare_dataset(folder, None, resolve_config(folder, args.preset, None, overrides).prepare, yes=True)
    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(tmp)
        for mode in args.modes.split(","):
            if mode == "plain":
                results.append(run_plain(folder, overrides, args.preset, storage, args.device))
            elif mode.startswith("ray"):
                results.append(run_ray(folder, overrides, args.preset, storage, int(mode[3:])))
            else:
                parser.error(f"unknown mode {mode!r}")
            print(f"{mode}: done", file=sys.stderr)
    plain = next((r for r in results if r["mode"].startswith("plain")), None)
    for r in results:
        r["vs_plain"] = r["samples_per_second"] / plain["samples_per_second"] if plain else None
    report = {"dir": str(folder), "preset": args.preset, "epochs": args.epochs, "batch": args.batch,
              "expansion": args.expansion, "torch_threads": torch.get_num_threads(), "results": results}
    if args.json:
        print_answer(report, indent=2)
        return 0
    print(f"{folder.name}: preset {args.preset}, batch {args.batch}, {args.epochs} epochs, "
          f"expansion {args.expansion}")
    print(f"{'mode':<8} {'samples/s':>10} {'vs plain':>9} {'data wait':>10} {'epoch s':>8} {'wall s':>8}")
    for r in results:
        ratio = f"{r['vs_plain']:.2f}" if r["vs_plain"] is not None else "-"
        print(f"{r['mode']:<8} {r['samples_per_second']:>10.2f} {ratio:>9} {100 * r['data_wait_share']:>9.1f}% "
              f"{r['epoch_seconds']:>8.2f} {r['wall_seconds']:>8.1f}")
    return 0


if __name__ == "__main__":
    with answers_only_on_stdout("--json" in sys.argv):
        sys.exit(main())
