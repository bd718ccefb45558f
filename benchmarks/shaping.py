#!/usr/bin/env python
"""Cost of shaping a take: spatial output, loudness, blending and the history, side by side with generation.

    python benchmarks/shaping.py [--seconds 10] [--repeats 5] [--long] [--json]

Each row is the median over ``--repeats`` runs (after one warm-up) of one step on a take of
``--seconds`` seconds at 48 kHz, with its real-time factor (seconds of audio per second of compute)
and its cost relative to generating the same take with the tiny model, so the table says what
each option adds to a ``distill generate``. ``--long`` adds the same steps on a 10-minute take
(one run each: the limit ``distill generate`` accepts).

Steps: generation (tiny model, the baseline); stereo (mid/side with the all-pass decorrelator);
stereo with depth 0.5 (plus early reflections); binaural (spherical head, width 0.5); binaural with
depth 0.5; a loudness target of −23 LUFS (plain gain) and −14 LUFS (the limiter engages on peaky
material); blends of two tiny models (latent: same lineage; audio: different lineage); recording in
the history (FLAC, thumbnail, measures). The take is noise with an envelope (music-like crest factor);
the models are untrained (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_models import tiny_model_file  # noqa: E402

from distill.blending import BlendPart, generate_blended  # noqa: E402
from distill.cli_common import answers_only_on_stdout, print_answer
from distill.history import History  # noqa: E402
from distill.loaded_model import LoadedModel  # noqa: E402
from distill.loudness import normalize_loudness  # noqa: E402
from distill.spatial import SpatialSettings, spatialize  # noqa: E402
from distill.storage import Store  # noqa: E402

RATE = 48000


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up: cached filters, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _take(seconds: float) -> np.ndarray:
    """Noise under a slow envelope with sharp attacks: a crest factor like real material."""
    rng = np.random.default_rng(0)
    samples = round(seconds * RATE)
    t = np.arange(samples) / RATE
    envelope = 0.05 + 0.3 * np.exp(-((t % 0.5) / 0.05))
    return (envelope * rng.standard_normal(samples)).astype(np.float32)


def _steps(seconds: float, history_root: str) -> dict:
    a = LoadedModel(tiny_model_file("a", 0, lineage="run"), "cpu")
    a2 = LoadedModel(tiny_model_file("a2", 1, lineage="run"), "cpu")
    b = LoadedModel(tiny_model_file("b", 2), "cpu")
    mono = _take(seconds)
    stereo = spatialize(mono, RATE, SpatialSettings("stereo"))
    history = History(Store.open(history_root), max_entries=3)
    return {
        "generate (tiny)": lambda: a.generate(seconds, 1),
        "stereo": lambda: spatialize(mono, RATE, SpatialSettings("stereo", width=0.5)),
        "stereo + depth 0.5": lambda: spatialize(mono, RATE, SpatialSettings("stereo", width=0.5, depth=0.5)),
        "binaural": lambda: spatialize(mono, RATE, SpatialSettings("binaural", width=0.5, azimuth=40.0)),
        "binaural + depth 0.5": lambda: spatialize(mono, RATE, SpatialSettings("binaural", width=0.5, azimuth=40.0,
                                                                                depth=0.5)),
        "loudness -23 LUFS": lambda: normalize_loudness(stereo, RATE, -23.0),
        "loudness -14 LUFS": lambda: normalize_loudness(stereo, RATE, -14.0),
        "latent blend (2 models)": lambda: generate_blended(a, [BlendPart(a2, 0.5)], seconds, 1),
        "audio blend (2 models)": lambda: generate_blended(a, [BlendPart(b, 0.5)], seconds, 1),
        "history add (stereo)": lambda: history.add(stereo, RATE, {"seed": 1}, {"name": "a", "id": None,
                                                                                "lineage": "run"}),
    }


def measure(seconds: float, repeats: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as root:
        steps = _steps(seconds, root)
        times = {name: _median_time(fn, repeats) for name, fn in steps.items()}
    baseline = times["generate (tiny)"]
    return [{"step": name, "audio_seconds": seconds, "seconds": t, "realtime_factor": seconds / t,
             "relative_to_generate": t / baseline} for name, t in times.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--long", action="store_true", help="also a 10-minute take (one run per step)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = measure(args.seconds, args.repeats)
    if args.long:
        results += measure(600.0, 1)
    report = {"torch_threads": torch.get_num_threads(), "results": results}
    if args.json:
        print_answer(report, indent=2)
        return 0
    print(f"{'step':<26} {'audio s':>8} {'time s':>8} {'× real time':>12} {'× generate':>11}")
    for r in results:
        print(f"{r['step']:<26} {r['audio_seconds']:>8g} {r['seconds']:>8.3f} {r['realtime_factor']:>12.1f} "
              f"{r['relative_to_generate']:>11.2f}")
    return 0


if __name__ == "__main__":
    with answers_only_on_stdout("--json" in sys.argv):
        sys.exit(main())
