"""Small model files for the generation and CLI tests: the tiny preset, untrained, fixed seeds."""

from __future__ import annotations

import numpy as np
import torch

from distill.latent_space import LatentSpace, Slider
from distill.model import SpectrogramVAE
from distill.model_file import ModelFile
from distill.presets import preset_config
from distill.stats import SpectralStats


def slider_space(latent_dim: int) -> LatentSpace:
    """A latent analysis with two sliders: 1 = "brightness", 2 = "Axis 2"."""
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((latent_dim, latent_dim)))
    sliders = (Slider(1, 0, "brightness", "brightness", 0.4, (-2.0, 0.1, 1.5), {"brightness": 0.9}),
               Slider(2, 1, "Axis 2", None, 0.2, (-1.0, 0.0, 1.0), {"brightness": 0.1}))
    return LatentSpace(rng.standard_normal(latent_dim) * 0.1, basis[:4], np.array([2.0, 1.5, 1.0, 0.5]),
                       np.array([0.4, 0.2, 0.1, 0.05]), sliders, {"method": "test"})


def tiny_model_file(name: str, seed: int = 0, sliders: bool = True, lineage: str | None = None) -> ModelFile:
    """An untrained tiny-preset model (weights from ``seed``), with :func:`slider_space` unless ``sliders=False``;
    its lineage is ``lineage-<seed>`` unless given (models of one lineage blend in the latent space)."""
    cfg = preset_config("tiny", None, None)
    torch.manual_seed(seed)
    model = SpectrogramVAE(cfg.model)
    n_mels = cfg.prepare.spectral.n_mels
    stats = SpectralStats(torch.full((2, n_mels), -6.0), torch.full((2, n_mels), 2.0))
    return ModelFile.create(model, cfg, stats, name=name, lineage=lineage or f"lineage-{seed}",
                            analysis=slider_space(cfg.model.latent_dim).to_dict() if sliders else None)
