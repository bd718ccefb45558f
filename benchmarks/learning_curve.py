#!/usr/bin/env python
"""Learning curve: validation MR-STFT (against the original audio) over wall-clock minutes.

    python benchmarks/learning_curve.py [DIR] [--preset balanced] [--minutes 8]
                                        [--variants 512,1024] [--val-fraction 0.3] [--json]

Trains ``distill train``'s function on DIR (default: the example data) for a fixed time budget per
variant and prints the validation MR-STFT after every epoch next to the elapsed minutes, with the
representation's ceiling on the same chunks. A variant is the width of the last encoder block
(512 = the default 2→64→128→256→512→512; 1024 = …→512→1024), so the two are compared at equal
wall-clock time on this machine — the measurement behind the model's default width.
``--val-fraction`` holds out more files than the default so the curve is not one file's story.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _folders import EXAMPLE_DIR, data_folder

from distill.cli_common import answers_only_on_stdout, print_answer
from distill.model import ModelConfig, SpectrogramVAE
from distill.ray_layer.train import train_model
from distill.run_folder import RunFolder


def run_variant(folder: Path, preset: str, minutes: float, last: int, val_fraction: float, storage: Path) -> dict:
    channels = [64, 128, 256, 512, last]
    overrides = {"train": {"epochs": 10_000, "max_minutes": minutes, "patience": 0},
                 "model": {"channels": channels}, "prepare": {"val_fraction": val_fraction},
                 "run": {"preview_every": 0, "num_previews": 0}}
    started = time.perf_counter()
    result = train_model(str(folder), preset=preset, overrides=overrides, name=f"width-{last}",
                         storage=str(storage), library=str(storage / "library"), yes=True)  # not the user's
    rows = RunFolder.open(result.run_dir).read_metrics()
    params = sum(p.numel() for p in SpectrogramVAE(ModelConfig(channels=tuple(channels))).parameters())
    return {"last_width": last, "parameters": params, "epochs": len(rows),
            "wall_seconds": time.perf_counter() - started,
            "curve": [{"minutes": r["elapsed_seconds"] / 60, "epoch": r["epoch"], "val_mrstft": r["val_mrstft"],
                       "train_loss": r["train_loss_total"]} for r in rows],
            "best_val_mrstft": min(r["val_mrstft"] for r in rows), "final_val_mrstft": result.val_mrstft,
            "ceiling_mrstft": result.ceiling_mrstft, "eval_chunks": result.report.get("eval_chunks")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", nargs="?", default=str(EXAMPLE_DIR))
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--variants", default="512,1024")
    parser.add_argument("--val-fraction", type=float, default=0.3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    folder = data_folder(args.dir)
    if folder is None:
        return 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for width in (int(w) for w in args.variants.split(",")):
            results.append(run_variant(folder, args.preset, args.minutes, width, args.val_fraction, Path(tmp)))
            print(f"width {width}: done", file=sys.stderr)
    if args.json:
        print_answer({"dir": str(folder), "preset": args.preset, "minutes": args.minutes, "results": results},
                     indent=2)
        return 0
    print(f"{folder.name}: preset {args.preset}, {args.minutes:g} min per variant, validation MR-STFT vs "
          f"original audio (ceiling {results[0]['ceiling_mrstft']:.3f} on {results[0]['eval_chunks']} chunks)")
    for r in results:
        print(f"\nlast block {r['last_width']} ({r['parameters'] / 1e6:.1f} M parameters): {r['epochs']} epochs, "
              f"best {r['best_val_mrstft']:.3f}, best checkpoint {r['final_val_mrstft']:.3f}")
        print(f"{'minutes':>8} {'epoch':>6} {'val MR-STFT':>12} {'train loss':>11}")
        for point in r["curve"]:
            print(f"{point['minutes']:>8.2f} {point['epoch']:>6} {point['val_mrstft']:>12.3f} "
                  f"{point['train_loss']:>11.3f}")
    return 0


if __name__ == "__main__":
    with answers_only_on_stdout("--json" in sys.argv):
        sys.exit(main())
