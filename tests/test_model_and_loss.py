"""The VAE and its loss, without Ray: shapes, rebuilding from a config, heads, loss terms, learning."""

import math

import pytest
import torch

from distill.loss import LossConfig, VAELoss, audibility, kl_divergence
from distill.model import MAX_BAND_AMPLITUDE, ModelConfig, SpectrogramVAE, from_model_space, to_model_space
from distill.representation import SpectralConfig, analyze, synthesize

SMALL = ModelConfig(channels=(8, 16, 32, 32, 32), latent_dim=16, dropout=0.0)


@pytest.mark.parametrize("n_mels,frames", [(128, 1), (128, 31), (128, 188), (128, 200), (80, 64)])
def test_shapes_round_trip_for_any_length(n_mels, frames):
    model = SpectrogramVAE(ModelConfig(n_mels=n_mels, channels=SMALL.channels, latent_dim=16)).eval()
    x = torch.randn(3, 2, n_mels, frames)
    recon, mean, logvar = model(x)
    assert recon.shape == x.shape
    assert mean.shape == logvar.shape == (3, 16, math.ceil(frames / 32))
    assert model.decode(torch.randn(3, 16, 2)).shape == (3, 2, n_mels, 64)  # any length from a latent sequence
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(1, 2, n_mels + 1, 8))


def test_a_checkpoint_rebuilds_an_identical_model(tmp_path):
    model = SpectrogramVAE(SMALL).eval()
    torch.save({"config": SMALL.to_dict(), "state": model.state_dict()}, tmp_path / "c.pt")
    saved = torch.load(tmp_path / "c.pt", weights_only=True)  # plain data only, no pickle of classes
    rebuilt = SpectrogramVAE(ModelConfig.from_dict(saved["config"])).eval()
    rebuilt.load_state_dict(saved["state"])
    x = torch.randn(2, 2, 128, 40)
    assert torch.equal(model(x)[0], rebuilt(x)[0])
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({**SMALL.to_dict(), "width": 3})
    with pytest.raises(ValueError, match="channels"):
        ModelConfig(channels=(1, 2, 3))


def test_heads_reach_their_targets():
    model = SpectrogramVAE(SMALL).eval()
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([7.0, 50.0]))  # push both heads far out
    recon, _, _ = model(torch.randn(1, 2, 128, 32))
    assert recon[:, 0].mean() > 5  # linear: a z-score of any size is reachable
    assert recon[:, 1].abs().max() <= 1.0 and recon[:, 1].mean() > 0.99  # tanh: exactly [-1, 1]


def test_model_space_round_trip_and_floor():
    cfg = SpectralConfig()
    spec = analyze(torch.randn(2, 24000) * 0.1, cfg)
    mean, std = spec.mean(dim=(0, 3)), spec.std(dim=(0, 3))
    x = to_model_space(spec, mean, std)
    assert torch.equal(x[:, 1], spec[:, 1])  # IF is not z-scored
    assert torch.allclose(from_model_space(x, mean, std, cfg.log_floor), spec, atol=1e-4)
    low = from_model_space(torch.full_like(x, -1e4), mean, std, cfg.log_floor)
    assert torch.allclose(low[:, 0], torch.tensor(math.log(cfg.log_floor))) and low[:, 1].min() == -1
    # An untrained linear head can say z = 1e4; synthesis must never see exp() of that.
    high = from_model_space(torch.full_like(x, 1e4), mean, std, cfg.log_floor)
    assert torch.allclose(high[:, 0], torch.tensor(math.log(MAX_BAND_AMPLITUDE)))
    assert torch.isfinite(synthesize(high, cfg)).all()


def _loss_setup(frames=48):
    cfg = SpectralConfig()
    t = torch.arange((frames - 1) * cfg.hop_length) / cfg.sample_rate
    wave = torch.stack([0.3 * torch.sin(2 * math.pi * 440 * t), 0.2 * torch.sin(2 * math.pi * 660 * t)])
    spec = analyze(wave, cfg)
    mean, std = spec.mean(dim=(0, 3)), spec.std(dim=(0, 3))
    return cfg, to_model_space(spec, mean, std), VAELoss(LossConfig(kl_warmup_steps=10), cfg, mean, std)


def test_loss_terms():
    cfg, x, loss = _loss_setup()
    prior = torch.zeros(2, 16, 2)
    perfect = loss(x, x, prior, prior, step=10)
    assert perfect["magnitude"] == 0 and perfect["if"] == 0 and perfect["mrstft"] == 0  # own synthesis as reference
    assert torch.isclose(perfect["kl"], torch.tensor(16 * 0.05))  # at the prior, free bits are the floor
    louder = x.clone()
    louder[:, 0] += 0.5
    assert loss(louder, x, prior, prior, step=10)["mrstft"] > 0.05  # the audio term hears a level change
    silent = audibility(torch.full((4,), math.log(cfg.log_floor)), cfg)
    assert torch.equal(silent, torch.zeros(4))  # IF in inaudible bands costs nothing
    moved = x.clone()
    quiet = audibility(loss.raw(x)[:, 0], cfg) == 0
    moved[:, 1][quiet] = 0.9
    assert loss(moved, x, prior, prior, step=10)["if"] < 1e-6
    assert LossConfig(kl_beta=0.01, kl_warmup_steps=100).beta(50) == pytest.approx(0.005)
    assert kl_divergence(torch.ones(2, 4, 3), torch.zeros(2, 4, 3), 0.0) == pytest.approx(4 * 0.5)
    with pytest.raises(ValueError, match="mrstft_fft_sizes"):
        LossConfig(mrstft_fft_sizes=(1024, 512))
    with pytest.raises(ValueError, match="if_weight"):
        LossConfig(if_weight=float("nan"))


def test_model_and_loss_learn_a_small_batch():
    torch.manual_seed(0)
    cfg, x, loss = _loss_setup(frames=32)
    model = SpectrogramVAE(SMALL)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for step in range(60):
        recon, mean, logvar = model(x)
        terms = loss(recon, x, mean, logvar, step)
        assert all(torch.isfinite(v) for v in terms.values())
        optimiser.zero_grad()
        terms["total"].backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimiser.step()
        history.append(float(terms["total"].detach()))
    assert sum(history[-5:]) / 5 < 0.8 * sum(history[:5]) / 5
