"""Measuring a model against the original recordings, with the project's fixed evaluation setting.

The evaluation set is a fixed, evenly spread selection of validation chunks (the clean variant 0
of held-out files); with no validation files it falls back to the clean training chunks and says
so. Its reference is the *original audio* of each chunk, re-read from the source file, so the
figure includes everything a listener would hear: the model's error and the representation's own
round-trip error. The *ceiling* is that round-trip error alone (the stored spectrogram
synthesised, no model), measured on the same chunks: the best any model can score here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distill.audio_io import load_segment
from distill.inference import reconstruct
from distill.prepare_stages import PEAK_TARGET
from distill.prepared import PreparedDataset, evenly_spread
from distill.quality import mrstft_distance
from distill.representation import synthesize
from distill.source_folder import SourceFolder
from distill.spectral_config import SpectralConfig
from distill.split import TRAIN, VAL
from distill.stats import SpectralStats


@dataclass
class EvalSet:
    spec: torch.Tensor  # (E, 2, n_mels, frames) raw stored spectrograms, float32
    audio: torch.Tensor  # (E, chunk_length) original audio of the same chunks
    sources: list[str]  # file of each chunk, relative to the data folder
    chunks: list[int]  # chunk index of each within its file
    split: str  # "val", or "train" when the collection has no validation files

    def __len__(self) -> int:
        return len(self.chunks)

    def subset(self, count: int) -> EvalSet:
        """The first ``count`` chunks of an evenly spread selection (stable as ``count`` changes)."""
        keep = evenly_spread(len(self), count)
        return EvalSet(self.spec[keep], self.audio[keep], [self.sources[i] for i in keep],
                       [self.chunks[i] for i in keep], self.split)


def load_eval_set(prepared: PreparedDataset, data_dir: str | Path, limit: int) -> EvalSet:
    """Up to ``limit`` clean chunks of the validation split (or of training, without one) and their audio."""
    cfg = prepared.config
    split = VAL if prepared.num_rows(VAL) else TRAIN
    rows = prepared.read(split)
    if not rows:
        raise ValueError(f"{prepared.store.display()}: the cache has no rows to evaluate on")
    clean = np.flatnonzero(rows["variant"] == 0)
    clean = clean[np.lexsort((rows["chunk"][clean], rows["source"][clean]))]
    chosen = clean[evenly_spread(len(clean), limit)]
    files = prepared.manifest["files"]
    folder = SourceFolder.open(data_dir)
    audio = np.zeros((len(chosen), cfg.chunk_length), np.float32)
    for out, row in enumerate(chosen):
        source, chunk = str(rows["source"][row]), int(rows["chunk"][row])
        entry = files[source]
        segment = load_segment(folder.locate(source), chunk * cfg.chunk_length, cfg.chunk_length,
                               cfg.spectral.sample_rate, num_samples=entry["num_samples"])
        if cfg.file_normalize == "peak" and entry["peak"] > 0:
            segment = segment * np.float32(PEAK_TARGET / entry["peak"])
        audio[out] = segment
    return EvalSet(torch.from_numpy(np.ascontiguousarray(rows["spec"][chosen], np.float32)),
                   torch.from_numpy(audio), [str(rows["source"][i]) for i in chosen],
                   [int(rows["chunk"][i]) for i in chosen], split)


def ceiling_mrstft(eval_set: EvalSet, spectral: SpectralConfig) -> float:
    """MR-STFT of the representation's own round trip (stored spectrogram → audio) on ``eval_set``."""
    with torch.no_grad():
        audio = synthesize(eval_set.spec, spectral, length=eval_set.audio.shape[-1])
    return mrstft_distance(eval_set.audio, audio)


def model_mrstft(model: torch.nn.Module, eval_set: EvalSet, stats: SpectralStats,
                 spectral: SpectralConfig) -> tuple[float, torch.Tensor]:
    """MR-STFT of the model's reconstructions against the original audio, and those reconstructions."""
    audio = reconstruct(model, eval_set.spec, stats, spectral, eval_set.audio.shape[-1])
    return mrstft_distance(eval_set.audio, audio), audio
