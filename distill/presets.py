"""Training presets: named starting points for :class:`~distill.training_config.TrainingConfig`.

``conservative`` / ``balanced`` / ``aggressive`` trade regularisation for fitting speed: the less
material there is, the more a model memorises it, so small collections get more dropout, weight
decay and augmentation, a lower learning rate and tighter gradient clipping. ``auto`` picks one
from the size of the collection. ``tiny`` is a small model that trains in about a minute on two
CPUs: the demo, the tests and ``--smoke-test`` jobs use it; it is not for real material.

Every value can be overridden by a config file or a command-line option.
"""

from __future__ import annotations

from dataclasses import replace

from distill.loss import LossConfig
from distill.model import ModelConfig
from distill.prepare_config import PrepareConfig
from distill.train_loop import TrainConfig
from distill.training_config import ConfigError, RunSettings, TrainingConfig

PRESET_NAMES = ("auto", "tiny", "conservative", "balanced", "aggressive")

# The starting values the design names (dropout, weight decay, expansion, clip, lr). Epochs are a
# ceiling: early stopping on the validation loss usually ends real runs before it.
_REGIMES = {
    "conservative": dict(dropout=0.4, weight_decay=0.05, expansion=15, grad_clip=0.5, lr=5e-4, epochs=150),
    "balanced": dict(dropout=0.2, weight_decay=0.01, expansion=10, grad_clip=1.0, lr=1e-3, epochs=100),
    "aggressive": dict(dropout=0.1, weight_decay=0.001, expansion=5, grad_clip=5.0, lr=2e-3, epochs=60),
}

# auto: by the amount of usable audio. Below ~20 files or 3 minutes a model overfits within a few
# epochs; above ~150 files or 30 minutes the data regularises on its own.
AUTO_SMALL = (20, 180.0)
AUTO_LARGE = (150, 1800.0)


def auto_choice(files: int, audio_seconds: float) -> str:
    """The regime ``auto`` picks for ``files`` usable files holding ``audio_seconds`` of audio."""
    if files < AUTO_SMALL[0] or audio_seconds < AUTO_SMALL[1]:
        return "conservative"
    if files >= AUTO_LARGE[0] or audio_seconds >= AUTO_LARGE[1]:
        return "aggressive"
    return "balanced"


def preset_config(name: str, files: int | None = None, audio_seconds: float | None = None) -> TrainingConfig:
    """The :class:`TrainingConfig` of preset ``name`` (``auto`` needs ``files`` and ``audio_seconds``)."""
    if name not in PRESET_NAMES:
        raise ConfigError(f"unknown preset {name!r}; choose one of {list(PRESET_NAMES)}")
    if name == "auto":
        if files is None or audio_seconds is None:
            raise ValueError("the auto preset needs the number of files and the seconds of audio")
        chosen = auto_choice(files, audio_seconds)
        return replace(preset_config(chosen), preset=f"auto:{chosen}")
    if name == "tiny":
        return _tiny()
    r = _REGIMES[name]
    prepare = PrepareConfig()
    prepare = replace(prepare, augment=replace(prepare.augment, expansion=r["expansion"]))
    return TrainingConfig(
        preset=name, prepare=prepare,
        model=ModelConfig(n_mels=prepare.spectral.n_mels, dropout=r["dropout"]),
        loss=LossConfig(),
        train=TrainConfig(epochs=r["epochs"], lr=r["lr"], weight_decay=r["weight_decay"], grad_clip=r["grad_clip"]),
        run=RunSettings())


def _tiny() -> TrainingConfig:
    prepare = PrepareConfig()
    prepare = replace(prepare, augment=replace(prepare.augment, expansion=1))
    return TrainingConfig(
        preset="tiny", prepare=prepare,
        # A quarter of the widths (1/16 of the weights): the same architecture, small enough to
        # train for a demo on two CPUs.
        model=ModelConfig(n_mels=prepare.spectral.n_mels, latent_dim=32, channels=(16, 32, 64, 128, 128),
                          dropout=0.0),
        loss=LossConfig(kl_warmup_steps=50),
        train=TrainConfig(epochs=6, batch_size=8, lr=2e-3, weight_decay=0.0, grad_clip=1.0, patience=0),
        run=RunSettings(keep_last=2, preview_every=0, num_previews=2, eval_chunks=4, report_chunks=8))
