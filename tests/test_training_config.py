"""Presets and the training config: the values the design names, auto's choice, overrides refused by name."""

import json

import pytest

from distill.presets import PRESET_NAMES, auto_choice, preset_config
from distill.training_config import ConfigError, TrainingConfig, load_config_file


@pytest.mark.parametrize("name, dropout, decay, expansion, clip, lr", [
    ("conservative", 0.4, 0.05, 15, 0.5, 5e-4),
    ("balanced", 0.2, 0.01, 10, 1.0, 1e-3),
    ("aggressive", 0.1, 0.001, 5, 5.0, 2e-3),
])
def test_regime_presets(name, dropout, decay, expansion, clip, lr):
    cfg = preset_config(name)
    assert (cfg.model.dropout, cfg.train.weight_decay, cfg.prepare.augment.expansion, cfg.train.grad_clip,
            cfg.train.lr) == (dropout, decay, expansion, clip, lr)
    assert cfg.model.channels == (64, 128, 256, 512, 512) and cfg.model.latent_dim == 128


def test_the_cli_offers_every_preset():
    from distill.cli import PRESETS

    assert PRESETS == PRESET_NAMES


def test_auto_picks_by_collection_size():
    assert auto_choice(5, 60.0) == "conservative"
    assert auto_choice(50, 20 * 60.0) == "balanced"
    assert auto_choice(400, 3600.0) == "aggressive"
    assert preset_config("auto", 5, 60.0).preset == "auto:conservative"
    with pytest.raises(ValueError):
        preset_config("auto")
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("huge")


def test_every_preset_round_trips_through_plain_data():
    for name in PRESET_NAMES:
        cfg = preset_config(name, 10, 100.0)
        data = json.loads(json.dumps(cfg.to_dict()))
        assert TrainingConfig.from_dict(data) == cfg


def test_overrides_are_checked_by_name():
    cfg = preset_config("balanced")
    assert cfg.with_overrides({"loss": {"mrstft_weight": 0.3}}).loss.mrstft_weight == 0.3
    with pytest.raises(ConfigError, match="'train.learning_rate'"):
        cfg.with_overrides({"train": {"learning_rate": 1}})
    with pytest.raises(ConfigError, match="'optimiser'"):
        cfg.with_overrides({"optimiser": {}})
    with pytest.raises(ConfigError, match="train must be a table"):
        cfg.with_overrides({"train": 3})
    with pytest.raises(ConfigError, match="dropout"):
        cfg.with_overrides({"model": {"dropout": 1.5}})
    # The model follows the spectral band count unless told otherwise (then a mismatch is named).
    assert cfg.with_overrides({"prepare": {"spectral": {"n_mels": 64}}}).model.n_mels == 64
    with pytest.raises(ConfigError, match="n_mels"):
        cfg.with_overrides({"model": {"n_mels": 96}})


def test_config_files(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "tiny"\n[train]\nepochs = 2\n')
    assert load_config_file(toml) == ("tiny", {"train": {"epochs": 2}})
    js = tmp_path / "c.json"
    js.write_text('{"loss": {"kl_beta": 0.01}}')
    assert load_config_file(js) == (None, {"loss": {"kl_beta": 0.01}})
    js.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="c.json"):
        load_config_file(js)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.toml")
