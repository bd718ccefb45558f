#!/usr/bin/env python
"""Generation speed: real-time factor of decoder + synthesis for 10 s of 48 kHz audio.

    python benchmarks/generate.py [--seconds 10] [--presets tiny,balanced] [--repeats 5]
                                  [--device cpu|cuda] [--json]

For each preset (random weights: speed does not depend on them) and each setting — one CPU
thread, all CPU threads, and on a GPU batch 1 and batch 16 — the script times the path
``distill generate`` takes (:class:`distill.loaded_model.LoadedModel.generate`: latent trajectory →
windowed decode with cross-fades → one synthesis) and reports the median over ``--repeats`` runs
after one warm-up, split into decode and synthesis. Real-time factor = seconds of audio made per
second of compute (higher is better; 100× means 10 s in 0.1 s).

Batch 16 decodes 16 latent sequences in one call and synthesises them together (what an HTTP
endpoint batching concurrent requests does); its factor counts all 16 takes' audio.
Only the Ray-free core is imported, so it runs on a GPU machine without Ray.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from distill.cli_common import answers_only_on_stdout, print_answer
from distill.generation import decode_long, latent_trajectory
from distill.inference import model_to_audio
from distill.latent_space import LatentSpace
from distill.model import DOWNSAMPLE, SpectrogramVAE
from distill.presets import preset_config
from distill.stats import SpectralStats


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: torch.device, repeats: int) -> list[float]:
    fn()  # warm-up: allocator, kernels, cached band tables
    out = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - start)
    return out


@torch.no_grad()
def measure(preset: str, seconds: float, device: torch.device, batch: int, threads: int | None, repeats: int) -> dict:
    if threads is not None:
        torch.set_num_threads(threads)
    cfg = preset_config(preset, None, None)
    spectral = cfg.prepare.spectral
    torch.manual_seed(0)
    model = SpectrogramVAE(cfg.model).to(device).eval()
    stats = SpectralStats(torch.full((2, spectral.n_mels), -6.0), torch.full((2, spectral.n_mels), 2.0))
    space = LatentSpace.standard(cfg.model.latent_dim)
    samples = round(seconds * spectral.sample_rate)
    frames = spectral.num_frames(samples)
    steps = -(-frames // DOWNSAMPLE)
    z = torch.stack([latent_trajectory(space, steps, seed, 0.3) for seed in range(batch)])

    def decode():
        if batch == 1:  # the facade's path: windows of 16 steps, cross-faded
            return decode_long(model, z[0], frames).to(device)
        return model.decode(z.to(device), frames)

    x = decode()
    decode_times = _time(decode, device, repeats)
    synth_times = _time(lambda: model_to_audio(x, stats, spectral, length=samples), device, repeats)
    total_times = _time(lambda: model_to_audio(decode(), stats, spectral, length=samples), device, repeats)
    total = statistics.median(total_times)
    return {"preset": preset, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "device": str(device), "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "batch": batch, "audio_seconds": seconds * batch,
            "decode_seconds": statistics.median(decode_times), "synthesis_seconds": statistics.median(synth_times),
            "total_seconds": total, "realtime_factor": seconds * batch / total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--presets", default="tiny,balanced")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    all_threads = torch.get_num_threads()
    results = []
    for preset in args.presets.split(","):
        if args.device == "cpu":
            for threads in dict.fromkeys((1, all_threads)):
                results.append(measure(preset, args.seconds, torch.device("cpu"), 1, threads, args.repeats))
        else:
            for batch in (1, 16):
                results.append(measure(preset, args.seconds, torch.device("cuda"), batch, None, args.repeats))
    report = {"seconds": args.seconds, "torch": torch.__version__, "results": results}
    if args.json:
        print_answer(report, indent=2)
        return 0
    print(f"{'preset':<10} {'params':>7} {'device':<6} {'threads':>7} {'batch':>5} {'decode s':>9} "
          f"{'synth s':>8} {'total s':>8} {'× real time':>11}")
    for r in results:
        print(f"{r['preset']:<10} {r['params_m']:>6}M {r['device']:<6} {r['threads'] or '-':>7} {r['batch']:>5} "
              f"{r['decode_seconds']:>9.3f} {r['synthesis_seconds']:>8.3f} {r['total_seconds']:>8.3f} "
              f"{r['realtime_factor']:>11.1f}")
    return 0


if __name__ == "__main__":
    with answers_only_on_stdout("--json" in sys.argv):
        sys.exit(main())
