"""Round trip audio through the representation (wave → 2-channel → wave) and measure what is kept.

Used by ``distill roundtrip`` and the demo; the Griffin-Lim comparison lives in benchmarks/.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from distill.audio_io import AudioFileError, find_audio_files, load_audio
from distill.quality import mrstft_distance, spectral_convergence
from distill.representation import SpectralConfig, analyze, synthesize


def roundtrip_wave(wave: torch.Tensor, cfg: SpectralConfig = SpectralConfig()) -> torch.Tensor:
    """``(B, T)`` → ``(B, T)``: analyse then synthesise, same length as the input."""
    return synthesize(analyze(wave, cfg), cfg, length=wave.shape[-1])


def roundtrip_folder(folder: str | Path, out: str | Path, seconds: float | None = None,
                     cfg: SpectralConfig = SpectralConfig()) -> dict:
    """Round-trip every audio file under ``folder``; write ``<out>/<relative path>.wav``.

    Returns ``{"files": [{"path", "output", "mrstft", "sc", "seconds"} | {"path", "error"}],
    "mean": {"mrstft", "sc", "seconds"} | None}``; ``seconds`` times synthesis alone.
    """
    folder, out = Path(folder), Path(out)
    files = []
    for path in find_audio_files(folder):
        rel = path.relative_to(folder)
        try:
            audio = load_audio(path, cfg.sample_rate, min_samples=cfg.n_fft, max_seconds=seconds)
        except AudioFileError as err:
            files.append({"path": str(rel), "error": err.reason})
            continue
        wave = torch.from_numpy(audio)[None]
        with torch.no_grad():
            spec = analyze(wave, cfg)
            start = time.perf_counter()
            rebuilt = synthesize(spec, cfg, length=wave.shape[-1])
            elapsed = time.perf_counter() - start
        target = out / rel.with_suffix(".wav")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        sf.write(str(tmp), np.clip(rebuilt[0].numpy(), -1, 1), cfg.sample_rate, subtype="PCM_24", format="WAV")
        tmp.replace(target)
        files.append({"path": str(rel), "output": str(target), "mrstft": mrstft_distance(wave, rebuilt),
                      "sc": spectral_convergence(wave, rebuilt), "seconds": elapsed})
    good = [f for f in files if "error" not in f]
    mean = None
    if good:
        mean = {key: float(np.mean([f[key] for f in good])) for key in ("mrstft", "sc")}
        mean["seconds"] = float(np.median([f["seconds"] for f in good]))
    return {"files": files, "mean": mean}
