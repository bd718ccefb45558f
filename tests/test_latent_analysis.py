"""Latent analysis: PCA sliders sized to the data, labels only where a descriptor follows the slider."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill.analysis_data import chunks_from_folder
from distill.descriptors import describe
from distill.example_data import write_example_data
from distill.inference import model_to_audio
from distill.latent_analysis import RHO_THRESHOLD, AnalysisError, assign_labels, choose_sliders, fit_latent_space
from distill.latent_space import LatentSpace
from distill.model import DOWNSAMPLE, ModelConfig, SpectrogramVAE
from distill.presets import preset_config
from distill.stats import SpectralStats


def test_labels_need_a_monotonic_descriptor():
    labels = assign_labels([{"brightness": 0.99, "warmth": -0.95}, {"brightness": -0.9}, {"warmth": 0.79},
                            {"loudness": -0.8, "noisiness": 0.5}, {}])
    assert labels == [("brightness", "brightness"), ("brightness 2", "brightness"), (None, None),
                      ("loudness", "loudness"), (None, None)]
    # The stronger relation wins a name; each name is given once.
    assert assign_labels([{"warmth": 0.85}, {"warmth": 0.97}]) == [("warmth 2", "warmth"), ("warmth", "warmth")]


def test_slider_count_follows_the_data():
    ratios = np.array([0.4, 0.2, 0.1, 0.08, 0.05, 0.03, 0.02, 0.015, 0.01])
    assert choose_sliders(ratios, chunks=100) == 7  # stops below MIN_SHARE
    assert choose_sliders(ratios, chunks=4) == 3  # no more than chunks - 1
    assert choose_sliders(np.array([0.97, 0.02, 0.01]), chunks=50) == 1  # 95 % covered by one
    assert choose_sliders(np.array([0.4, 0.3]), chunks=2) == 1


class _TiltVAE(torch.nn.Module):
    """A stand-in model with one meaningful latent direction: latent 0 follows the chunk's level,
    and decoding makes the sound *darker* as latent 0 grows (so the analysis has to flip it)."""

    def __init__(self, n_mels: int, latent_dim: int = 8):
        super().__init__()
        self.cfg = ModelConfig(n_mels=n_mels, latent_dim=latent_dim, channels=(8, 8, 8, 8, 8))
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        g = torch.Generator().manual_seed(3)
        self.mix = torch.randn(latent_dim, n_mels, generator=g) * 0.01

    def encode(self, x: torch.Tensor):
        steps = -(-x.shape[-1] // DOWNSAMPLE)
        level = torch.nn.functional.adaptive_avg_pool1d(x[:, 0].mean(dim=1, keepdim=True), steps)  # (B, 1, T)
        detail = torch.nn.functional.adaptive_avg_pool1d(torch.einsum("dm,bmn->bdn", self.mix, x[:, 0]), steps)
        mean = detail.clone()
        mean[:, :1] = 3.0 * level
        return mean, torch.zeros_like(mean)

    def decode(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        n_mels = self.cfg.n_mels
        tilt = torch.linspace(-1.0, 1.0, n_mels)[None, :, None]
        amp = -z[:, :1].repeat_interleave(DOWNSAMPLE, dim=-1) * tilt * 2.0 - 1.5 * tilt.abs()
        return torch.stack([amp, torch.zeros_like(amp)], dim=1)[..., :frames]


def test_a_brightness_axis_is_found_named_and_pointed_up():
    spectral = preset_config("tiny", None, None).prepare.spectral
    n_mels, frames = spectral.n_mels, 94
    model = _TiltVAE(n_mels)
    g = torch.Generator().manual_seed(0)
    levels = torch.linspace(-2, 2, 12)[:, None, None]
    spec = torch.stack([levels + 0.1 * torch.randn(12, n_mels, frames, generator=g),
                        torch.zeros(12, n_mels, frames)], dim=1) - 6.0
    stats = SpectralStats(torch.full((2, n_mels), -6.0), torch.full((2, n_mels), 1.0))
    space = fit_latent_space(model, spec, stats, spectral, files=12)
    first = space.sliders[0]
    assert first.label == "brightness" and first.descriptor == "brightness"
    assert first.rho["brightness"] >= RHO_THRESHOLD  # flipped: up is brighter
    assert first.explained_variance > 0.9
    centroids = []
    for position in (-10.0, 10.0):
        z = torch.as_tensor(space.mean + space.offset({"brightness": position}), dtype=torch.float32)
        x = model.decode(z[None, :, None].repeat(1, 1, 3), frames)
        centroids.append(describe(model_to_audio(x, stats, spectral)[0].numpy(), spectral.sample_rate)["brightness"])
    assert centroids[1] > 1.5 * centroids[0]
    curves = space.info["curves"]["1"]["brightness"]
    assert curves == sorted(curves)  # stored curve rises with the slider


@pytest.fixture(scope="module")
def five_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("five")
    for path in write_example_data(folder)[5:]:
        path.unlink()
    return folder


def test_analysis_of_a_five_file_collection(five_files):
    cfg = preset_config("tiny", None, None)
    spec, files = chunks_from_folder(five_files, cfg.prepare)
    assert files == 5 and spec.shape[1:] == (2, cfg.prepare.spectral.n_mels, cfg.prepare.frames)
    torch.manual_seed(0)
    model = SpectrogramVAE(cfg.model)
    stats = SpectralStats(spec.mean(dim=(0, 3)), spec.std(dim=(0, 3)))
    space = fit_latent_space(model, spec, stats, cfg.prepare.spectral, files=files)
    assert 1 <= len(space.sliders) <= min(8, spec.shape[0] - 1)
    assert space.info["samples"] == spec.shape[0] * -(-spec.shape[-1] // DOWNSAMPLE)
    for slider in space.sliders:
        passing = {name for name, r in slider.rho.items() if abs(r) >= RHO_THRESHOLD}
        if slider.descriptor is None:
            assert slider.label == f"Axis {slider.index}" and not passing
        else:
            assert slider.descriptor in passing and slider.rho[slider.descriptor] > 0
            assert slider.label.split(" ")[0] == slider.descriptor
        low, mid, high = slider.percentiles
        assert low <= mid <= high
    restored = LatentSpace.from_dict(space.to_dict())
    assert [s.label for s in restored.sliders] == [s.label for s in space.sliders]
    with pytest.raises(AnalysisError, match="at least 2"):
        fit_latent_space(model, spec[:1], stats, cfg.prepare.spectral)


def test_model_analyze_refits_the_sliders_from_a_folder(five_files, tmp_path, capsys):
    """`distill model analyze MODEL DIR` replaces a model's analysis in the library, keeping its id."""
    import json

    from tiny_models import tiny_model_file

    from distill.cli import main
    from distill.library import Library

    mf = tiny_model_file("no-sliders", seed=1, sliders=False)
    library = Library.open(str(tmp_path / "lib"))
    entry = library.add(mf)
    assert library.load(entry.id).analysis is None
    code = main(["model", "analyze", "no-sliders", str(five_files), "--library", str(tmp_path / "lib"), "--json"])
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["id"] == entry.id and 1 <= len(info["sliders"]) <= 8
    analysis = library.load(entry.id).analysis
    assert analysis["files"] == 5 and len(analysis["sliders"]) == len(info["sliders"])
    code = main(["model", "analyze", "no-sliders", str(tmp_path / "nowhere"), "--library", str(tmp_path / "lib")])
    assert code == 1 and "not a folder" in capsys.readouterr().err
