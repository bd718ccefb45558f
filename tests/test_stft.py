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


def test_overlap_add_in_blocks_equals_istft():
    from distill.stft import OverlapAdd

    torch.manual_seed(0)
    x = torch.randn(2, 48000)
    spec = stft(x, 2048, 512)
    whole = istft(spec, 2048, 512, length=x.shape[-1])
    for block in (1, 7, 40, spec.shape[-1]):
        ola = OverlapAdd(2, spec.shape[-1], 2048, 512)
        for first in range(0, spec.shape[-1], block):
            ola.add(spec[..., first:first + block], first)
        assert torch.allclose(ola.result(x.shape[-1]), whole, atol=2e-6)
