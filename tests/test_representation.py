import math

import pytest
import torch

from distill.quality import spectral_convergence
from distill.representation import SpectralConfig, analyze, band_geometry, bin_frequencies, linear_magnitude, synthesize
from distill.stft import istft

SR = 48000
CFG = SpectralConfig()


def _t(seconds=1.0):
    return torch.arange(int(seconds * SR)) / SR


def tone(freq=440.0, amp=0.5):
    return amp * torch.sin(2 * math.pi * freq * _t())


def chirp(f0=200.0, f1=4000.0):
    t = _t()
    return 0.5 * torch.sin(2 * math.pi * (f0 * t + (f1 - f0) / 2 * t ** 2))


def two_tone():
    return 0.3 * torch.sin(2 * math.pi * 330 * _t()) + 0.3 * torch.sin(2 * math.pi * 1250 * _t())


def random_phase_synthesis(spec, length):
    """Same magnitude, uniformly random phase: what the IF channel must beat by a wide margin."""
    mag = linear_magnitude(spec, CFG)
    gen = torch.Generator().manual_seed(1)
    phase = torch.rand(mag.shape, generator=gen) * 2 * math.pi
    return istft(torch.polar(mag, phase), CFG.n_fft, CFG.hop_length, length=length)


# Bounds: spectral convergence at n_fft 2048 (0 = perfect, 1 = silence). The oracle (mel magnitude
# with the true phase) scores ~0.05-0.15 on these signals and random phase ~0.65-0.70. The bounds sit
# well below random phase, so they prove the IF channel carries the phase, and far below silence.
# A chirp sweeps 1.7 bins per hop, so its peaks change bins every frame: the hardest of the three.
CASES = [("tone", tone, 0.2), ("two_tone", two_tone, 0.25), ("chirp", chirp, 0.5)]


@pytest.mark.parametrize("name,make,bound", CASES, ids=[c[0] for c in CASES])
def test_round_trip_spectral_convergence(name, make, bound):
    wave = make()[None]
    spec = analyze(wave, CFG)
    rebuilt = synthesize(spec, CFG, length=wave.shape[-1])
    sc = spectral_convergence(wave, rebuilt)
    assert sc < bound, f"{name}: spectral convergence {sc:.3f} >= {bound}"
    assert spectral_convergence(wave, torch.zeros_like(wave)) >= bound  # silence fails the bound
    assert spectral_convergence(wave, random_phase_synthesis(spec, wave.shape[-1])) > bound + 0.1


def test_shapes_and_ranges():
    wave = torch.stack([tone(), chirp()])
    spec = analyze(wave, CFG)
    assert spec.shape == (2, 2, CFG.n_mels, CFG.num_frames(SR))
    assert spec[:, 1].abs().max() <= 1.0
    assert torch.isfinite(spec).all()
    assert synthesize(spec, CFG).shape == (2, (spec.shape[-1] - 1) * CFG.hop_length)


def test_if_channel_recovers_tone_frequency():
    freq = 1234.5  # between bins on purpose
    spec = analyze(tone(freq)[None], CFG)
    geo = band_geometry(CFG)
    band = int(spec[0, 0, :, 20].argmax())
    band_freq_bins = geo.centres[band] + spec[0, 1, band, 20].double() * geo.reach[band]
    assert abs(float(band_freq_bins) * SR / CFG.n_fft - freq) < 2.0  # Hz; one bin is 23.4 Hz
    # And every linear bin around the tone is told to rotate at the tone's frequency.
    freqs = bin_frequencies(spec, CFG)[0, :, 20] * SR / CFG.n_fft
    k = round(freq * CFG.n_fft / SR)
    assert torch.allclose(freqs[k - 2:k + 3], torch.full((5,), freq), atol=2.0)


def test_quiet_bands_have_zero_if():
    cfg = SpectralConfig(if_threshold_db=-60.0)
    wave = tone(440.0, amp=0.5)[None] + 1e-5 * torch.randn(1, SR, generator=torch.Generator().manual_seed(0))
    spec = analyze(wave, cfg)
    amp_db = 20 * torch.log10(torch.exp(spec[0, 0]) - cfg.log_floor).clamp_min(-300)
    quiet = amp_db < cfg.if_threshold_db
    assert quiet.any() and (~quiet).any()
    assert (spec[0, 1][quiet] == 0).all()


def test_batched_equals_single_and_is_deterministic():
    waves = torch.stack([tone(), two_tone(), chirp()])
    spec = analyze(waves, CFG)
    batched = synthesize(spec, CFG, length=SR)
    for i in range(3):
        single = synthesize(spec[i:i + 1], CFG, length=SR)
        assert torch.allclose(single[0], batched[i], atol=1e-5)
    assert torch.equal(batched, synthesize(spec, CFG, length=SR))


@pytest.mark.parametrize("method", ["pghi", "pghi_fast", "cumsum"])
def test_gradients_flow_and_stay_finite(method):
    wave = torch.stack([two_tone(), chirp()])
    spec = analyze(wave, CFG).detach().requires_grad_(True)
    rebuilt = synthesize(spec, CFG, length=SR, method=method)
    # A loss that needs phase and magnitude: waveform error against the target.
    loss = (rebuilt - wave).square().mean()
    loss.backward()
    assert torch.isfinite(spec.grad).all()
    assert spec.grad[:, 0].abs().sum() > 0  # magnitude channel gets gradient
    if method != "cumsum":
        assert spec.grad[:, 1].abs().sum() > 0  # IF channel gets gradient through the phase


def test_gradients_finite_for_silence_and_extremes():
    spec = torch.full((1, 2, CFG.n_mels, 20), math.log(CFG.log_floor), requires_grad=True)
    synthesize(spec, CFG).square().sum().backward()
    assert torch.isfinite(spec.grad).all()


def test_short_input_shorter_than_half_a_window():
    wave = tone()[None, :700]
    spec = analyze(wave, CFG)
    assert synthesize(spec, CFG, length=700).shape == (1, 700)


@pytest.mark.parametrize("field,value", [("n_fft", 1001), ("hop_length", 0), ("hop_length", 4096), ("n_mels", 1),
                                         ("f_max", 30000.0), ("phase", "griffin-lim"), ("log_floor", 0.0)])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SpectralConfig(**{field: value})


def test_config_dict_round_trip():
    cfg = SpectralConfig(n_mels=96, f_min=20.0)
    assert SpectralConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        SpectralConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="batch"):
        analyze(torch.zeros(SR), CFG)
    with pytest.raises(ValueError, match="frames"):
        synthesize(torch.zeros(1, 2, 64, 10), CFG)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    wave = torch.stack([tone(), chirp()])
    spec_cpu = analyze(wave, CFG)
    spec_gpu = analyze(wave.cuda(), CFG)
    assert torch.allclose(spec_gpu.cpu(), spec_cpu, atol=1e-3)
    out_cpu = synthesize(spec_cpu, CFG, length=SR)
    out_gpu = synthesize(spec_cpu.cuda(), CFG, length=SR).cpu()
    assert abs(spectral_convergence(wave, out_gpu) - spectral_convergence(wave, out_cpu)) < 0.02


def test_long_synthesis_in_blocks_equals_one_synthesis(example_dir, monkeypatch):
    """Blocks that carry the phase across give what one synthesis gives (to float rounding), so long
    takes need memory for one block only; synthesize() switches to blocks above LONG_FRAMES."""
    import numpy as np
    import soundfile as sf

    import distill.representation as rep

    cfg = SpectralConfig()
    parts = [sf.read(example_dir / name, dtype="float32")[0] for name in ("melody.wav", "rain.wav", "kick.wav")]
    wave = torch.from_numpy(np.concatenate(parts))[None]
    spec = analyze(wave, cfg)
    with torch.no_grad():
        whole = synthesize(spec, cfg, length=wave.shape[-1])
        for block in (1, 97, 400):
            blocks = rep.synthesize_in_blocks(spec[..., :300] if block == 1 else spec, cfg,
                                              300 * cfg.hop_length if block == 1 else wave.shape[-1], block)
            reference = synthesize(spec[..., :300], cfg, length=300 * cfg.hop_length) if block == 1 else whole
            assert torch.allclose(blocks, reference, atol=1e-6), block
        monkeypatch.setattr(rep, "LONG_FRAMES", 200)
        monkeypatch.setattr(rep, "BLOCK_FRAMES", 128)
        assert torch.allclose(synthesize(spec, cfg, length=wave.shape[-1]), whole, atol=1e-6)


def test_long_analysis_in_blocks_equals_one_analysis(example_dir, monkeypatch):
    import numpy as np
    import soundfile as sf

    import distill.representation as rep

    cfg = SpectralConfig()
    parts = [sf.read(example_dir / name, dtype="float32")[0] for name in ("melody.wav", "rain.wav")]
    wave = torch.from_numpy(np.concatenate(parts))[None]
    with torch.no_grad():
        whole = analyze(wave, cfg)
        for block in (1, 50, 333):
            assert torch.allclose(rep.analyze_in_blocks(wave, cfg, block), whole, atol=1e-6), block
        monkeypatch.setattr(rep, "LONG_FRAMES", 100)
        monkeypatch.setattr(rep, "BLOCK_FRAMES", 64)
        assert torch.allclose(analyze(wave, cfg), whole, atol=1e-6)


def test_inference_phase_loop_gives_the_same_bits_as_the_differentiable_one():
    """Without autograd the PGHI recurrence runs in numpy (a fraction of torch's per-call cost);
    with autograd it runs in torch. Both must give the same audio, bit for bit."""
    cfg = SpectralConfig()
    wave = torch.cat([chirp(), two_tone()])[None].repeat(2, 1)
    spec = analyze(wave, cfg)
    with torch.no_grad():
        fast = synthesize(spec, cfg)
    slow = synthesize(spec.clone().requires_grad_(True), cfg).detach()
    assert torch.equal(fast, slow)
