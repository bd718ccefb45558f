"""Where a latent analysis gets its chunks: the prepared cache (end of training) or a folder of audio.

Both give the *clean* chunks the model was trained on — un-augmented, cut and normalised exactly
as preparation cuts them (:mod:`distill.chunking`, ``file_normalize``) — as raw spectrograms
``(E, 2, n_mels, frames)``, at most :data:`distill.latent_analysis.MAX_CHUNKS`, evenly spread.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from distill.audio_io import AudioFileError, load_audio
from distill.chunking import chunk_starts, chunk_windows
from distill.latent_analysis import MAX_CHUNKS, AnalysisError, fit_latent_space
from distill.model import SpectrogramVAE
from distill.prepare_config import PrepareConfig
from distill.prepare_stages import PEAK_TARGET
from distill.prepared import PreparedDataset, evenly_spread
from distill.representation import analyze
from distill.source_folder import SourceFolder
from distill.split import TRAIN
from distill.stats import SpectralStats


def chunks_from_folder(folder: str | Path, cfg: PrepareConfig, limit: int = MAX_CHUNKS) -> tuple[torch.Tensor, int]:
    """Clean chunks of every usable file under ``folder`` (a path or a storage URI) →
    ``(spec (E, 2, n_mels, frames), files)``.

    Unusable files are skipped (as ``distill scan`` reports them); :class:`AnalysisError` when none is usable.
    """
    length = cfg.chunk_length
    pieces, files = [], 0
    source = SourceFolder.open(folder)
    for rel in source.list_audio():
        try:
            audio = load_audio(source.locate(rel), cfg.spectral.sample_rate, min_samples=cfg.spectral.n_fft)
        except AudioFileError:
            continue
        files += 1
        if cfg.file_normalize == "peak":
            audio = audio * np.float32(PEAK_TARGET / max(float(np.abs(audio).max()), 1e-12))
        # The chunks preparation cuts (zero-padded at the end), without augmentation context.
        pieces.extend(chunk_windows(audio, chunk_starts(len(audio), length, cfg.min_tail), length, 0, 1.0))
    if not pieces:
        raise AnalysisError(f"{folder}: no usable audio files to analyse (see `distill scan {folder}`)")
    chosen = np.stack([pieces[i] for i in evenly_spread(len(pieces), limit)])
    with torch.no_grad():
        spec = torch.cat([analyze(torch.from_numpy(chosen[i:i + 16]), cfg.spectral) for i in range(0, len(chosen), 16)])
    return spec, files


def chunks_from_cache(prepared: PreparedDataset, limit: int = MAX_CHUNKS) -> tuple[torch.Tensor, int]:
    """The clean training chunks of a prepared cache → ``(spec, files)``."""
    rows = prepared.read_clean(TRAIN, limit=limit)
    if not rows:
        raise AnalysisError(f"{prepared.store.display()}: the cache has no training chunks")
    return torch.from_numpy(rows["spec"]), len(set(rows["source"].tolist()))


def analyse(model: SpectrogramVAE, spec: torch.Tensor, files: int, stats: SpectralStats,
            cfg: PrepareConfig, required: bool = True) -> dict | None:
    """The latent analysis as plain data; with ``required=False`` too little data warns and gives ``None``."""
    try:
        return fit_latent_space(model, spec, stats, cfg.spectral, files=files).to_dict()
    except AnalysisError as exc:
        if required:
            raise
        warnings.warn(f"no sliders for this model: {exc}", stacklevel=2)
        return None
