#!/usr/bin/env python
"""Numerical stability on real audio: at least N optimiser steps of the full model and loss, counting
every step whose loss or gradient was not finite (skipped by the loop) and checking the weights.

    python benchmarks/stability.py [DIR] [--steps 1000] [--batch 2] [--preset balanced] [--json]

DIR (default ``../shared/audio``) is prepared with the preset's settings, then the plain loop runs
whole epochs until at least ``--steps`` steps are done (small batches: more steps per minute).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time

import torch
from _folders import ROOT, data_folder

from distill.cli_common import answers_only_on_stdout, print_answer
from distill.loss import VAELoss
from distill.model import SpectrogramVAE, to_model_space
from distill.prepared import PreparedDataset
from distill.ray_layer.prepare import prepare_dataset
from distill.train_loop import train_loop
from distill.training_run import resolve_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", nargs="?", default=str(ROOT.parent / "shared/audio"))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    folder = data_folder(args.dir)
    if folder is None:
        return 1
    cfg = resolve_config(folder, args.preset, None, {"train": {"batch_size": args.batch, "patience": 0}})
    cache = tempfile.mkdtemp(prefix="distill-stability-")  # never write into the audio folder
    prepare_dataset(folder, cache, cfg.prepare, yes=True)
    prepared = PreparedDataset.open(cache)
    stats = prepared.stats
    train = to_model_space(torch.from_numpy(prepared.read("train")["spec"]), stats.mean, stats.std)
    steps_per_epoch = math.ceil(len(train) / args.batch)
    epochs = math.ceil(args.steps / steps_per_epoch)
    cfg = cfg.with_overrides({"train": {"epochs": epochs}})

    def batches(epoch: int):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        for first in range(0, len(train), args.batch):
            yield train[order[first:first + args.batch]]

    torch.manual_seed(0)
    model = SpectrogramVAE(cfg.model)
    loss = VAELoss(cfg.loss, cfg.prepare.spectral, stats.mean, stats.std)
    worst: dict[str, float] = {}

    def on_epoch(report, state):
        for key, value in report.train.items():
            worst[key] = max(worst.get(key, -math.inf), value)
        print(f"epoch {report.epoch}/{epochs}: step {report.step}, loss {report.train.get('total', math.nan):.3f}, "
              f"skipped {state.skipped_steps}", file=sys.stderr)

    started = time.perf_counter()
    state, _ = train_loop(model, loss, batches, None, cfg.train, steps_per_epoch, on_epoch=on_epoch)
    weights_finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    shutil.rmtree(cache, ignore_errors=True)
    report = {"dir": str(folder), "rows": len(train), "batch": args.batch, "steps": state.step,
              "skipped_steps": state.skipped_steps, "weights_finite": weights_finite,
              "largest_epoch_mean": worst, "seconds": time.perf_counter() - started}
    if args.json:
        print_answer(report, indent=2)
    else:
        print(f"{folder.name}: {state.step} applied steps (batch {args.batch}, {len(train)} rows), "
              f"{state.skipped_steps} skipped as non-finite, weights finite: {weights_finite}, "
              f"{report['seconds'] / 60:.1f} min")
    return 0 if weights_finite else 1


if __name__ == "__main__":
    with answers_only_on_stdout("--json" in sys.argv):
        sys.exit(main())
