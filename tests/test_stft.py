import torch

from distill.stft import istft, magnitude_scale, stft


def test_stft_istft_identity():
    torch.manual_seed(0)
    wave = torch.randn(3, 48000)
    back = istft(stft(wave, 2048, 512), 2048, 512, length=wave.shape[-1])
    assert torch.allclose(back, wave, atol=1e-5)


def test_full_scale_sine_peaks_at_one():
    n_fft, sr = 2048, 48000
    freq = 40 * sr / n_fft  # exactly on bin 40
    t = torch.arange(sr) / sr
    spec = stft(torch.sin(2 * torch.pi * freq * t)[None], n_fft, 512)
    peak = spec.abs()[0, :, 10:-10].amax(dim=0)
    assert torch.allclose(peak, torch.ones_like(peak), atol=1e-3)
    assert magnitude_scale(n_fft) == 4.0 / n_fft
