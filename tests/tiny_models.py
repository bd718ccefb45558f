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


def trained_tiny_model_file(name: str, steps: int = 24, seed: int = 0, on_epoch=None) -> ModelFile:
    """A tiny-preset model trained for ``steps`` Adam steps on one-second chunks of the example
    dataset (the plain training loop, no Ray; ~9 s on 2 CPUs), with the dataset's statistics and
    :func:`slider_space`. Trained only a little (the total loss falls ~5 %), but its weights and
    statistics come from training on real material, not from initialisation and made-up stats.
    ``on_epoch(report, state)`` is the loop's callback."""
    import math

    from distill.example_data import _SOUNDS, SAMPLE_RATE, _normalise
    from distill.loss import VAELoss
    from distill.model import to_model_space
    from distill.representation import analyze
    from distill.train_loop import TrainConfig, train_loop

    cfg = preset_config("tiny", None, None)
    spectral = cfg.prepare.spectral
    chunks = []
    for number, (make, _, _) in enumerate(_SOUNDS.values()):
        mono = _normalise(make(np.random.default_rng([0, number])))[:SAMPLE_RATE]
        chunks.append(np.pad(mono, (0, SAMPLE_RATE - mono.size)))
    spec = analyze(torch.tensor(np.stack(chunks), dtype=torch.float32), spectral)
    frames = spec.shape[-1] // 4 * 4  # the encoder halves time twice
    spec = spec[..., :frames]
    stats = SpectralStats(spec.mean(dim=(0, 3)), spec.std(dim=(0, 3)))
    x = to_model_space(spec, stats.mean, stats.std)
    torch.manual_seed(seed)
    model = SpectrogramVAE(cfg.model)
    loss = VAELoss(cfg.loss, spectral, stats.mean, stats.std)
    per_epoch = math.ceil(len(x) / 5)
    epochs = math.ceil(steps / per_epoch)

    def batches(epoch):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        return [x[order[i:i + 5]] for i in range(0, len(x), 5)]

    train_loop(model, loss, batches, None, TrainConfig(epochs=epochs, lr=3e-3, patience=0), steps_per_epoch=per_epoch,
               on_epoch=on_epoch)
    model.eval()
    return ModelFile.create(model, cfg, stats, name=name, lineage=f"lineage-{seed}",
                            analysis=slider_space(cfg.model.latent_dim).to_dict())
