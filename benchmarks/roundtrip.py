#!/usr/bin/env python
"""Round-trip quality and speed of the representation against Griffin-Lim and an oracle.

For every audio file in DIR (first S seconds, mono, 48 kHz) it compares, all from the same mel
magnitude (channel 0):
  if      the product: phase rebuilt from the IF channel (distill.representation.synthesize)
  gl32    Griffin-Lim, 32 iterations (fast/momentum variant), from the same linear magnitude
  gl100   Griffin-Lim, 100 iterations
  oracle  the same magnitude with the true phase (what a perfect phase would give)
and optionally any other phase variants (--variant pghi:unstable_bins=1, --variant cumsum, ...).
Metrics: the project's fixed MR-STFT distance (distill.quality), spectral convergence at 2048,
and wall seconds of synthesis alone (analysis excluded for all). Times: one warm-up, then the
median of --repeats runs, on whatever device --device names.

    python benchmarks/roundtrip.py DIR [--seconds 4] [--json] [--n-mels 128] [--variant NAME[:k=v;...]]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from griffin_lim import griffin_lim  # noqa: E402

from distill.audio_io import AudioFileError, find_audio_files, load_audio  # noqa: E402
from distill.cli_common import answers_only_on_stdout, print_answer
from distill.quality import mrstft_distance, spectral_convergence  # noqa: E402
from distill.representation import SpectralConfig, analyze, linear_magnitude, synthesize  # noqa: E402
from distill.stft import istft, stft  # noqa: E402


def _parse_variant(text: str) -> tuple[str, str, dict]:
    method, _, opts = text.partition(":")
    options = {}
    for item in filter(None, opts.split(";")):
        key, _, value = item.partition("=")
        options[key] = None if value == "none" else float(value)
    return text, method, options


def _methods(cfg: SpectralConfig, variants: list[str]):
    def oracle(spec, wave):
        true_phase = stft(wave, cfg.n_fft, cfg.hop_length).angle()
        return istft(torch.polar(linear_magnitude(spec, cfg), true_phase), cfg.n_fft, cfg.hop_length,
                     length=wave.shape[-1])

    methods = {
        "if": lambda spec, wave: synthesize(spec, cfg, length=wave.shape[-1]),
        "gl32": lambda spec, wave: griffin_lim(spec, cfg, wave.shape[-1], n_iter=32),
        "gl100": lambda spec, wave: griffin_lim(spec, cfg, wave.shape[-1], n_iter=100),
        "oracle": oracle,
    }
    for label, method, options in map(_parse_variant, variants):
        methods[label] = (lambda m, o: lambda spec, wave: synthesize(spec, cfg, length=wave.shape[-1],
                                                                     method=m, **o))(method, options)
    return methods


def _timed(fn, repeats: int, device: torch.device):
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def run(folder: str, seconds: float, cfg: SpectralConfig, variants: list[str], repeats: int,
        device: torch.device) -> dict:
    methods = _methods(cfg, variants)
    files, skipped = [], []
    warmed = False
    for path in find_audio_files(folder):
        try:
            audio = load_audio(path, cfg.sample_rate, min_samples=cfg.n_fft, max_seconds=seconds)
        except AudioFileError as err:
            skipped.append({"path": str(path), "reason": err.reason})
            continue
        wave = torch.from_numpy(audio)[None].to(device)
        entry = {"path": str(path)}
        with torch.no_grad():
            spec = analyze(wave, cfg)
            for name, fn in methods.items():
                if not warmed:
                    fn(spec, wave)
                out, elapsed = _timed(lambda: fn(spec, wave), repeats, device)
                entry[name] = {"mrstft": mrstft_distance(wave.cpu(), out.cpu()),
                               "sc": spectral_convergence(wave.cpu(), out.cpu()), "seconds": elapsed}
            warmed = True
        files.append(entry)
        print(f"  {path.name}: " + "  ".join(f"{n} {entry[n]['mrstft']:.3f}" for n in methods), file=sys.stderr)
    mean = {}
    for name in methods:
        rows = [f[name] for f in files]
        if rows:
            mean[name] = {"mrstft": statistics.fmean(r["mrstft"] for r in rows),
                          "sc": statistics.fmean(r["sc"] for r in rows),
                          "seconds": statistics.median(r["seconds"] for r in rows)}
    return {"files": files, "mean": mean, "skipped": skipped,
            "setting": {"seconds": seconds, "config": cfg.to_dict(), "device": str(device),
                        "torch": torch.__version__, "threads": torch.get_num_threads()}}


def print_table(result: dict) -> None:
    names = list(result["mean"])
    print(f"\nround trip, first {result['setting']['seconds']} s per file, {len(result['files'])} files, "
          f"device {result['setting']['device']} (MR-STFT and SC: lower is better; time: median)")
    print(f"{'method':<28}{'MR-STFT':>9}{'SC':>8}{'ms/file':>10}{'vs gl32':>9}")
    gl = result["mean"].get("gl32", {}).get("seconds")
    for name in names:
        m = result["mean"][name]
        speed = f"{gl / m['seconds']:.1f}x" if gl and name != "gl32" else ""
        print(f"{name:<28}{m['mrstft']:>9.3f}{m['sc']:>8.3f}{m['seconds'] * 1000:>10.1f}{speed:>9}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--n-mels", type=int, default=SpectralConfig.n_mels)
    parser.add_argument("--variant", action="append", default=[], help="extra phase method, e.g. pghi:unstable_bins=1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        cfg = SpectralConfig(n_mels=args.n_mels)
        result = run(args.dir, args.seconds, cfg, args.variant, args.repeats, torch.device(args.device))
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"roundtrip: error: {exc}", file=sys.stderr)
        return 1
    if not result["files"]:
        print(f"roundtrip: error: no usable audio in {args.dir}", file=sys.stderr)
        return 1
    if args.json:
        print_answer(result)
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    with answers_only_on_stdout("--json" in sys.argv):
        sys.exit(main())
