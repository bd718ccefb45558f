#!/usr/bin/env python
"""Throughput of dataset preparation on Ray Data, per stage, at several CPU counts; and the fresh check.

    python benchmarks/prepare.py [DIR] [--expansion 10] [--cpus 1,2] [--fresh-files 500] [--json]

For each CPU count a local Ray is started with that many CPUs and DIR is prepared from scratch into
a temporary cache. Reported: seconds of input audio per wall second of the build (the pipeline
itself; Ray start-up and validation are shown separately), and the CPU time of every stage per
second of input audio (decode, augment, analyze, write, summed over workers). Then a folder of
``--fresh-files`` short files is prepared once and the up-to-date check is timed, in-process and
as the whole ``distill prepare --json`` command.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf

from distill.cli_common import answers_only_on_stdout, print_answer
from distill.example_data import write_example_data
from distill.prepare import check_cache
from distill.prepare_config import AugmentConfig, PrepareConfig
from distill.ray_layer import ensure_ray
from distill.ray_layer.prepare import prepare_dataset

ROOT = Path(__file__).resolve().parents[1]


def measure_build(folder: Path, cfg: PrepareConfig, cpus: int) -> dict:
    import ray

    ray.shutdown()
    started = time.perf_counter()
    ensure_ray(num_cpus=cpus)
    ray_start = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as cache:
        result = prepare_dataset(folder, cache=cache, cfg=cfg, yes=True)
    phases = result.phase_seconds
    audio = result.audio_seconds
    return {
        "cpus": cpus, "files": result.files_ok, "audio_seconds": audio,
        "rows": result.rows_train + result.rows_val, "bytes": result.bytes,
        "build_seconds": phases.get("build", 0.0), "validate_seconds": phases.get("validate", 0.0),
        "ray_start_seconds": ray_start, "total_seconds": result.seconds,
        "x_realtime_build": audio / max(phases.get("build", 1e-9), 1e-9),
        "x_realtime_validate_and_build": audio / max(phases.get("build", 0) + phases.get("validate", 0), 1e-9),
        "stage_ms_per_audio_second": {k: 1000 * v / audio for k, v in result.stage_seconds.items()},
    }


def measure_fresh_check(count: int, repeats: int = 5) -> dict:
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "many"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(count):
            sf.write(str(folder / f"clip{i:04d}.wav"), rng.uniform(-0.3, 0.3, 4800).astype(np.float32), 48000)
        cfg = PrepareConfig(augment=AugmentConfig(expansion=0), chunk_seconds=0.1)
        ray.shutdown()
        ensure_ray()
        prepare_dataset(folder, cfg=cfg, yes=True)
        ray.shutdown()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            plan = check_cache(folder, cfg=cfg)
            times.append(time.perf_counter() - started)
            assert plan.fresh, plan.reason
        command = [sys.executable, "-m", "distill.cli", "prepare", str(folder), "--expansion", "0",
                   "--chunk-seconds", "0.1", "--json"]
        cli = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
            cli.append(time.perf_counter() - started)
    return {"files": count, "check_median_seconds": statistics.median(times),
            "cli_median_seconds": statistics.median(cli)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", help="folder of audio (default: the example data)")
    parser.add_argument("--expansion", type=int, default=10)
    parser.add_argument("--cpus", default="1,2", help="comma-separated CPU counts (default 1,2)")
    parser.add_argument("--fresh-files", type=int, default=500, help="0 skips the fresh-check measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir) if args.dir else Path(tmp) / "example"
        if not args.dir:
            write_example_data(folder)
        if not folder.is_dir():
            print(f"benchmarks/prepare.py: error: {folder} is not a folder", file=sys.stderr)
            return 1
        cfg = replace(PrepareConfig(), augment=AugmentConfig(expansion=args.expansion))
        runs = [measure_build(folder, cfg, int(n)) for n in args.cpus.split(",")]
    fresh = measure_fresh_check(args.fresh_files) if args.fresh_files else None
    report = {"dir": str(args.dir or "example data"), "expansion": args.expansion, "runs": runs, "fresh": fresh}
    if args.json:
        print_answer(report)
        return 0
    first = runs[0]
    print(f"{report['dir']}: {first['files']} files, {first['audio_seconds']:.1f} s of audio, expansion "
          f"{args.expansion} -> {first['rows']} rows, {first['bytes'] / 1e6:.1f} MB")
    print("| CPUs | build s | × real time (build) | × real time (validate + build) | Ray start s | "
          "decode | augment | analyze | write |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        ms = run["stage_ms_per_audio_second"]
        print(f"| {run['cpus']} | {run['build_seconds']:.1f} | {run['x_realtime_build']:.1f}× | "
              f"{run['x_realtime_validate_and_build']:.1f}× | {run['ray_start_seconds']:.1f} | "
              + " | ".join(f"{ms[s]:.1f}" for s in ("decode", "augment", "analyze", "write")) + " |")
    print("(stage columns: CPU milliseconds per second of input audio, summed over workers)")
    if len(runs) > 1:
        print(f"scaling {runs[0]['cpus']} -> {runs[-1]['cpus']} CPUs: "
              f"{runs[-1]['x_realtime_build'] / runs[0]['x_realtime_build']:.2f}×")
    if fresh:
        print(f"up-to-date check, {fresh['files']} files: {fresh['check_median_seconds'] * 1000:.1f} ms in-process, "
              f"{fresh['cli_median_seconds'] * 1000:.0f} ms for the whole `distill prepare` command (median)")
    return 0


if __name__ == "__main__":
    with answers_only_on_stdout("--json" in sys.argv):
        sys.exit(main())
