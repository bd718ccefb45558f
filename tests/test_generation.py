"""Generation of any length through the inference facade: exact lengths, determinism, seamless joins."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter1d
from tiny_models import slider_space, tiny_model_file

from distill.generation import (
    WINDOW_STEPS,
    decode_long,
    encode_long,
    latent_trajectory,
    plan_windows,
)
from distill.inference import model_to_audio
from distill.latent_space import LatentSpace, Slider, SliderError
from distill.loaded_model import GenerationError, LoadedModel, TakeSpec
from distill.model import DOWNSAMPLE, SpectrogramVAE
from distill.model_file import ModelFile


@pytest.fixture(scope="module")
def tiny_file() -> ModelFile:
    return tiny_model_file("gen-test")


@pytest.fixture(scope="module")
def player(tiny_file) -> LoadedModel:
    return LoadedModel(tiny_file, "cpu")


@pytest.mark.parametrize("seconds", [0.1, 3.0, 65.0])
def test_generated_length_is_exact(player, seconds):
    take = player.generate(seconds, seed=3, evolution=0.8)
    assert take.audio.shape == (round(seconds * 48000),)
    assert take.audio.dtype == np.float32 and np.isfinite(take.audio).all()
    assert np.abs(take.audio).max() > 1e-4  # sound, not silence


def test_same_inputs_same_bits_and_seeds_differ(player):
    a = player.generate(2.0, seed=7, sliders={"brightness": 4}, evolution=0.5)
    b = player.generate(2.0, seed=7, sliders={"1": 4}, evolution=0.5)
    c = player.generate(2.0, seed=8, sliders={"brightness": 4}, evolution=0.5)
    assert np.array_equal(a.audio, b.audio)
    assert not np.allclose(a.audio, c.audio)
    assert a.sliders == {"brightness": 4.0, "Axis 2": 0.0}


def test_batch_takes_are_the_single_takes(player):
    takes = player.generate_many([TakeSpec(1.0, seed, evolution=0.2) for seed in (10, 11, 12)])
    assert [t.seed for t in takes] == [10, 11, 12]
    for take in takes:
        assert np.array_equal(take.audio, player.generate(1.0, seed=take.seed, evolution=0.2).audio)


def test_sliders_change_the_sound_and_bad_requests_are_refused(player):
    base = player.generate(1.0, seed=1).audio
    moved = player.generate(1.0, seed=1, sliders={"axis 2": -10}).audio
    assert not np.allclose(base, moved)
    with pytest.raises(SliderError, match="unknown slider 'sparkle'.*1=brightness, 2=Axis 2"):
        player.generate(1.0, sliders={"sparkle": 1})
    with pytest.raises(SliderError, match="outside -10"):
        player.generate(1.0, sliders={"brightness": 10.5})
    with pytest.raises(SliderError, match="unknown slider"):
        player.generate(1.0, sliders={"3": 1})
    for bad in (0.0, -1.0, 0.05, 601.0, float("nan")):
        with pytest.raises(GenerationError, match="duration"):
            player.generate(bad)
    with pytest.raises(GenerationError, match="evolution"):
        player.generate(1.0, evolution=1.5)


def test_slider_positions_map_to_the_percentiles():
    s = Slider(1, 0, "x", None, 0.1, (-3.0, 1.0, 2.0), {})
    assert s.score(-10) == -3.0 and s.score(0) == 1.0 and s.score(10) == 2.0 and s.score(5) == 1.5
    space = slider_space(8)
    assert LatentSpace.from_dict(space.to_dict()).to_dict() == space.to_dict()


def _frame_change(x: torch.Tensor) -> np.ndarray:
    """Mean absolute change from each frame to the next, ``(frames - 1,)``."""
    return (x[0, :, :, 1:] - x[0, :, :, :-1]).abs().mean(dim=(0, 1)).numpy()


def test_windowed_decode_has_no_seams(tiny_file):
    """Cross-faded windows change from frame to frame at the joins no faster than anywhere else.
    (Not equal to one long decode: GroupNorm normalises over the whole window, so a window's output
    depends on its length and content; the cross-fade hides exactly that difference.)"""
    model = SpectrogramVAE(tiny_file.config.model)
    model.load_state_dict(tiny_file.weights)
    model.eval()
    steps = 3 * WINDOW_STEPS + 5
    z = torch.randn(tiny_file.config.model.latent_dim, steps, generator=torch.Generator().manual_seed(0))
    z = torch.nn.functional.avg_pool1d(z[None], 3, 1, 1, count_include_pad=False)[0]  # a smooth trajectory
    frames = steps * DOWNSAMPLE - 7
    length, starts = plan_windows(steps)
    assert len(starts) >= 4
    windowed = decode_long(model, z, frames)
    assert windowed.shape == (1, 2, tiny_file.config.model.n_mels, frames)
    change = _frame_change(windowed)
    joins = np.zeros(len(change), bool)
    for previous, s in zip(starts, starts[1:], strict=False):
        joins[s * DOWNSAMPLE:(previous + length) * DOWNSAMPLE] = True
    assert change[joins].max() <= 1.5 * change[~joins].max(), (change[joins].max(), change[~joins].max())


def test_windowed_encode_matches_one_shot_encode(tiny_file):
    model = SpectrogramVAE(tiny_file.config.model)
    model.load_state_dict(tiny_file.weights)
    model.eval()
    shape = (1, 2, tiny_file.config.model.n_mels, 40 * DOWNSAMPLE - 11)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole, _ = model.encode(x)
    windowed = encode_long(model, x)
    assert windowed.shape == whole[0].shape
    # Close, not equal: GroupNorm statistics are taken over each window (see the test above).
    assert float((windowed - whole[0]).abs().mean() / whole[0].abs().mean()) < 0.1


def _spikes(audio: np.ndarray) -> np.ndarray:
    """Each sample-to-sample step ``|x[n+1] - x[n]|`` relative to the signal's RMS over ±10 ms.

    A smooth signal steps by at most ω·A per sample (small for a dark sound); a discontinuity
    steps by about its amplitude, so a click shows as a value far above the rest.
    """
    audio = audio.astype(np.float64)
    rms = np.sqrt(uniform_filter1d(audio[1:] ** 2, 961, mode="nearest"))
    return np.abs(np.diff(audio)) / (rms + 1e-9)


class _WindowDependentDecoder(torch.nn.Module):
    """A smooth stand-in decoder whose output, like the real one's (GroupNorm), depends on the whole
    window it decodes: it subtracts the window's mean. Butting windows together then jumps."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        g = torch.Generator().manual_seed(0)
        self.mix = torch.nn.Parameter(torch.randn(cfg.n_mels, cfg.latent_dim, generator=g) / cfg.latent_dim**0.5)

    def decode(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        h = torch.nn.functional.interpolate(z, size=z.shape[-1] * DOWNSAMPLE, mode="linear", align_corners=False)
        amp = torch.einsum("md,bdn->bmn", self.mix, h)
        amp = amp - amp.mean(dim=-1, keepdim=True)  # depends on the whole window
        amp = amp - 0.1 * torch.arange(self.cfg.n_mels)[:, None]  # a dark sound: a click would stand out
        return torch.stack([amp, torch.zeros_like(amp)], dim=1)[..., :frames]


def test_no_clicks_where_windows_join(tiny_file):
    """Joins are inaudible: with a smooth decoder whose windows disagree (as GroupNorm makes them),
    the first-difference energy at the joins is like anywhere else, while the same windows
    synthesised separately and butted together click at every join."""
    player = LoadedModel(tiny_file, "cpu")
    player.model = _WindowDependentDecoder(tiny_file.config.model)
    spectral, hop = player.spectral, player.spectral.hop_length
    take = player.generate(60.0, seed=5, evolution=1.0)
    steps = -(-spectral.num_frames(len(take.audio)) // DOWNSAMPLE)
    spikes = _spikes(take.audio)
    at_joins = np.zeros(len(spikes), bool)
    length, starts = plan_windows(steps)
    assert len(starts) >= 2
    for previous, s in zip(starts, starts[1:], strict=False):
        at_joins[s * DOWNSAMPLE * hop:(previous + length) * DOWNSAMPLE * hop] = True
    z = latent_trajectory(player.space, steps, 5, 1.0)
    pieces = []
    with torch.no_grad():
        for first in range(0, steps - WINDOW_STEPS + 1, WINDOW_STEPS):
            x = player.model.decode(z[None, :, first:first + WINDOW_STEPS], WINDOW_STEPS * DOWNSAMPLE)
            pieces.append(model_to_audio(x, player.stats, spectral, WINDOW_STEPS * DOWNSAMPLE * hop)[0].numpy())
    naive = _spikes(np.concatenate(pieces))
    join = WINDOW_STEPS * DOWNSAMPLE * hop
    naive_at_joins = [naive[k * join - 3:k * join + 3].max() for k in range(1, len(pieces))]
    assert spikes[at_joins].max() <= 1.5 * spikes[~at_joins].max(), (spikes[at_joins].max(), spikes[~at_joins].max())
    assert min(naive_at_joins) > 10 * spikes[at_joins].max(), (naive_at_joins, spikes[at_joins].max())


def test_reconstruct_keeps_duration_and_resamples(player):
    audio = np.sin(2 * np.pi * 440 * np.arange(44100 * 2) / 44100).astype(np.float32) * 0.5
    out = player.reconstruct(audio, 44100)
    assert out.shape == (96000,) and np.isfinite(out).all()
    z = player.encode(audio, 44100)
    assert z.shape == (player.model.cfg.latent_dim, -(-player.spectral.num_frames(96000) // DOWNSAMPLE))
