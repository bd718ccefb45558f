"""The project's one fixed evaluation setting for sound quality.

Every figure distill reports about how close two sounds are (round-trip benchmarks, validation
metrics, sweep objectives, model quality reports) comes from here, so numbers stay comparable:
auraloss ``MultiResolutionSTFTLoss`` at FFT sizes 2048/1024/512/256/128, hop n/4, window n
(spectral convergence + log-magnitude L1 at each resolution, averaged), and spectral convergence
at n_fft 2048 on its own. The reference is always the first argument.
"""

from __future__ import annotations

from functools import lru_cache

import torch

EVAL_FFT_SIZES = (2048, 1024, 512, 256, 128)
EVAL_SAMPLE_RATE = 48000  # Hz; quality is measured on audio at the working rate


@lru_cache(maxsize=4)
def _mrstft_module(device: str):
    import auraloss  # deferred: auraloss pulls scipy at import time

    return auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=list(EVAL_FFT_SIZES),
        hop_sizes=[n // 4 for n in EVAL_FFT_SIZES],
        win_lengths=list(EVAL_FFT_SIZES),
    ).to(device)


def _as_batch(wave: torch.Tensor) -> torch.Tensor:
    wave = torch.as_tensor(wave, dtype=torch.float32)
    if wave.dim() == 1:
        wave = wave[None]
    if wave.dim() != 2:
        raise ValueError(f"expected audio of shape (T,) or (B, T), got {tuple(wave.shape)}")
    return wave


def mrstft_distance(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Multi-resolution STFT distance (lower is better) between ``(B, T)`` or ``(T,)`` signals."""
    ref, est = _as_batch(reference), _as_batch(estimate)
    if ref.shape != est.shape:
        raise ValueError(f"shapes differ: reference {tuple(ref.shape)} vs estimate {tuple(est.shape)}")
    with torch.no_grad():
        return float(_mrstft_module(str(ref.device))(est[:, None], ref[:, None]))


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor, n_fft: int = 2048) -> float:
    """``‖|S_ref| - |S_est|‖_F / ‖|S_ref|‖_F`` at ``n_fft`` (hop n/4, Hann); 0 is perfect, 1 is silence."""
    ref, est = _as_batch(reference), _as_batch(estimate)
    window = torch.hann_window(n_fft, device=ref.device)

    def mag(x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True).abs()

    with torch.no_grad():
        s_ref, s_est = mag(ref), mag(est)
        return float(torch.linalg.norm(s_ref - s_est) / torch.linalg.norm(s_ref).clamp_min(1e-12))
