#!/usr/bin/env python
"""What a sweep costs: a trial next to a plain ``distill train`` of the same config, and trials at once.

    python benchmarks/sweep.py [DIR] [--preset tiny] [--trials 4] [--epochs 2] [--concurrency 1,2]
                               [--num-cpus 2] [--json]

DIR (default: the example data, written if missing) is prepared once. Then, on one local Ray and
side by side in one run:

* ``train``: one ``train_model`` with the preset's loss weights (what every trial does, alone);
* ``sweep K``: a FIFO sweep of ``--trials`` trials with K training at once (``--max-concurrent K``).

Reported per row: the wall time, the median seconds of one trial (its run folder's creation to its
report, so Tune's scheduling between trials is in the wall time but not here), trials finished per
minute, and the per-trial time relative to the plain run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime

from _folders import EXAMPLE_DIR, data_folder

from distill.cli_common import answers_only_on_stdout, print_answer
from distill.ray_layer import ensure_ray
from distill.ray_layer.prepare import prepare_dataset
from distill.ray_layer.sweep import run_sweep
from distill.ray_layer.train import train_model
from distill.run_folder import RunFolder
from distill.training_run import resolve_config


def _seconds(run_dir: str) -> float:
    info = RunFolder.open(run_dir).read_run() or {}
    report = RunFolder.open(run_dir).read_report() or {}
    start, end = info.get("created"), report.get("finished")
    if not (start and end):
        return float("nan")
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", nargs="?", default=str(EXAMPLE_DIR))
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--concurrency", default="1,2", help="comma-separated trials at once, one sweep each")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    folder = data_folder(args.dir)
    if folder is None:
        return 1
    cfg = resolve_config(folder, args.preset, None, {"train": {"epochs": args.epochs}})
    prepare_dataset(str(folder), None, cfg.prepare, num_cpus=args.num_cpus, yes=True)
    ensure_ray(args.num_cpus)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train_model(str(folder), preset=args.preset, overrides={"train": {"epochs": args.epochs}},
                             name="plain", storage=f"{tmp}/runs", num_cpus=args.num_cpus, keep=False, yes=True)
        plain = _seconds(result.run_dir)
        rows.append({"mode": "train", "wall_s": time.perf_counter() - started, "trial_s": plain, "trials": 1})
        for k in (int(v) for v in args.concurrency.split(",")):
            started = time.perf_counter()
            sweep = run_sweep(str(folder), trials=args.trials, max_concurrent=k, preset=args.preset,
                              epochs=args.epochs, scheduler="fifo", storage=f"{tmp}/sweeps", name=f"k{k}",
                              num_cpus=args.num_cpus, library=f"{tmp}/library", yes=True)
            wall = time.perf_counter() - started
            per_trial = statistics.median(_seconds(t.run_dir) for t in sweep.trials if t.run_dir)
            rows.append({"mode": f"sweep, {sweep.concurrency} at once", "wall_s": wall, "trial_s": per_trial,
                         "trials": len(sweep.trials)})
    for row in rows:
        row["trials_per_min"] = 60 * row["trials"] / row["wall_s"]
        row["trial_vs_train"] = row["trial_s"] / plain
    if args.json:
        print_answer({"preset": args.preset, "epochs": args.epochs, "num_cpus": args.num_cpus, "rows": rows})
        return 0
    print(f"preset {args.preset}, {args.epochs} epochs per run, {args.num_cpus} CPUs, {folder}")
    print(f"{'mode':<22}{'wall s':>9}{'s per trial':>13}{'trials/min':>12}{'trial vs train':>16}")
    for row in rows:
        print(f"{row['mode']:<22}{row['wall_s']:>9.1f}{row['trial_s']:>13.1f}{row['trials_per_min']:>12.2f}"
              f"{row['trial_vs_train']:>15.2f}×")
    return 0


if __name__ == "__main__":
    with answers_only_on_stdout("--json" in sys.argv):
        sys.exit(main())
