#!/usr/bin/env python
"""Quality and speed of the pitch shifter used for augmentation, against a plain phase vocoder and librosa.

    python benchmarks/augment.py [DIR] [--seconds 4] [--semitones 2] [--json]

For each file (first S seconds, mono, 48 kHz) the audio is shifted up by ``--semitones`` and back
down, and the result is compared with the original using the project's fixed MR-STFT distance
(lower is better): what survives two shifts is what the augmentation keeps of the sound. Methods:
distill's vocoder with identity phase locking (what `distill prepare` uses), the same without
locking, and ``librosa.effects.pitch_shift`` (plain phase vocoder + resampling) when librosa is
installed. Time: median milliseconds per second of audio for one shift.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from distill.audio_io import AudioFileError, find_audio_files, load_audio
from distill.cli_common import answers_only_on_stdout, print_answer
from distill.quality import mrstft_distance
from distill.vocoder import analyse, stretch

SR = 48000


def shift_distill(wave: np.ndarray, semitones: float, lock: bool) -> np.ndarray:
    import soxr

    ratio = 2.0 ** (semitones / 12.0)
    stretched = stretch(analyse(wave, lock_phases=lock), 1.0 / ratio)
    out = soxr.resample(stretched, SR * ratio, SR, quality="HQ").astype(np.float32)
    return np.pad(out, (0, max(0, len(wave) - len(out))))[: len(wave)]


def shift_librosa(wave: np.ndarray, semitones: float) -> np.ndarray:
    import librosa

    return librosa.effects.pitch_shift(wave, sr=SR, n_steps=semitones, n_fft=2048, hop_length=512)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default="../shared/audio")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--semitones", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = {"distill (locked)": lambda w, s: shift_distill(w, s, True),
               "plain vocoder": lambda w, s: shift_distill(w, s, False)}
    try:
        import librosa  # noqa: F401

        methods["librosa"] = shift_librosa
    except ImportError:
        pass
    try:
        files = find_audio_files(args.dir)
    except (FileNotFoundError, NotADirectoryError) as exc:
        print(f"benchmarks/augment.py: error: {exc}", file=sys.stderr)
        return 1
    scores = {name: [] for name in methods}
    times = {name: [] for name in methods}
    for path in files:
        try:
            wave = load_audio(path, SR, max_seconds=args.seconds)
        except AudioFileError:
            continue
        for name, shift in methods.items():
            shift(wave[:SR], args.semitones)  # warm-up
            started = time.perf_counter()
            up = shift(wave, args.semitones)
            times[name].append((time.perf_counter() - started) / (len(wave) / SR) * 1000)
            back = shift(up, -args.semitones)
            scores[name].append(mrstft_distance(torch.from_numpy(wave)[None], torch.from_numpy(back)[None]))
    report = {name: {"mrstft_round_trip": float(np.mean(scores[name])),
                     "ms_per_audio_second": statistics.median(times[name])} for name in methods}
    if args.json:
        print_answer({"dir": args.dir, "files": len(scores["plain vocoder"]), "methods": report})
        return 0
    print(f"{args.dir}: {len(scores['plain vocoder'])} files, ±{args.semitones} semitones and back, first "
          f"{args.seconds} s (MR-STFT vs original, lower is better)")
    print("| method | MR-STFT after up and down | ms per second of audio (one shift) |")
    print("|---|---|---|")
    for name, row in report.items():
        print(f"| {name} | {row['mrstft_round_trip']:.3f} | {row['ms_per_audio_second']:.1f} |")
    return 0


if __name__ == "__main__":
    with answers_only_on_stdout("--json" in sys.argv):
        sys.exit(main())
