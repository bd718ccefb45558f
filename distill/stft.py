"""Thin wrappers around ``torch.stft``/``torch.istft`` with the project's conventions.

One place decides the window, the padding and the magnitude scale, so that analysis, synthesis,
benchmarks and the training loss all agree.
"""

from __future__ import annotations

import torch


def hann_window(n_fft: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Periodic Hann window ``(n_fft,)``: with hop = n_fft/4 its squares overlap-add to a constant."""
    return torch.hann_window(n_fft, periodic=True, device=device, dtype=dtype)


def magnitude_scale(n_fft: int) -> float:
    """Factor that makes a full-scale sinusoid (amplitude 1) peak at |X| = 1: 2 / sum(window)."""
    return 4.0 / n_fft


def stft(wave: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex STFT ``(B, T) -> (B, n_fft // 2 + 1, T // hop + 1)``, scaled by :func:`magnitude_scale`.

    Frames are centred (frame n is centred on sample ``n * hop``). Zero padding rather than torch's
    default reflection: reflection invents a mirrored transient at the edges and fails on inputs
    shorter than half a window.
    """
    window = hann_window(n_fft, wave.device, wave.dtype)
    spec = torch.stft(wave, n_fft, hop_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    return spec * magnitude_scale(n_fft)


def stft_frames(wave: torch.Tensor, n_fft: int, hop_length: int, first: int, count: int) -> torch.Tensor:
    """Frames ``first … first + count`` of :func:`stft` ``(B, n_fft // 2 + 1, count)``, computed from
    only the samples they cover (zeros outside the signal, as :func:`stft`'s centred padding)."""
    start = first * hop_length - n_fft // 2
    size = (count - 1) * hop_length + n_fft
    lo, hi = max(0, start), min(wave.shape[-1], start + size)
    segment = torch.nn.functional.pad(wave[..., lo:hi], (lo - start, start + size - hi))
    window = hann_window(n_fft, wave.device, wave.dtype)
    spec = torch.stft(segment, n_fft, hop_length, window=window, center=False, return_complex=True)
    return spec * magnitude_scale(n_fft)


def istft(spec: torch.Tensor, n_fft: int, hop_length: int, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft`: ``(B, n_fft // 2 + 1, frames) -> (B, length)``; differentiable."""
    real_dtype = spec.real.dtype
    window = hann_window(n_fft, spec.device, real_dtype)
    # The inverse is linear, so the scale is undone on the real output rather than on the complex
    # input: half the values and a real multiply (4 ms less per 10 s of audio on one CPU thread).
    wave = torch.istft(spec, n_fft, hop_length, window=window, center=True, length=length)
    return wave * (1.0 / magnitude_scale(n_fft))


class OverlapAdd:
    """:func:`istft` assembled block by block: add the complex frames of a long signal a block at a
    time and read the audio at the end; only the output (and one block) is ever in memory.

    What ``torch.istft(center=True)`` does, written out: each frame's inverse FFT times the window,
    overlap-added at ``n · hop - n_fft / 2``, divided by the overlap-added squared window; the
    result equals :func:`istft` of all frames at once to float rounding.
    """

    def __init__(self, batch: int, frames: int, n_fft: int, hop_length: int, device=None,
                 dtype: torch.dtype = torch.float32):
        self.n_fft, self.hop = n_fft, hop_length
        self.window = hann_window(n_fft, device, dtype)
        size = (frames - 1) * hop_length + n_fft
        self.out = torch.zeros(batch, size, device=device, dtype=dtype)
        self.envelope = torch.zeros(size, device=device, dtype=dtype)

    def add(self, spec: torch.Tensor, first_frame: int) -> None:
        """Frames ``first_frame …`` of the signal: complex ``(B, n_fft // 2 + 1, F)`` (scaled like :func:`stft`)."""
        frames = torch.fft.irfft(spec.transpose(1, 2), n=self.n_fft) * self.window  # (B, F, n_fft)
        count = frames.shape[1]
        start = first_frame * self.hop
        stop = start + (count - 1) * self.hop + self.n_fft
        # Fold the frames onto the output: F frames of n_fft at stride hop (torch's fold is 2-D only).
        self.out[:, start:stop] += torch.nn.functional.fold(
            frames.transpose(1, 2), output_size=(1, stop - start), kernel_size=(1, self.n_fft),
            stride=(1, self.hop))[:, 0, 0]
        self.envelope[start:stop] += torch.nn.functional.fold(
            self.window.square()[None, :, None].expand(1, self.n_fft, count), output_size=(1, stop - start),
            kernel_size=(1, self.n_fft), stride=(1, self.hop))[0, 0, 0]

    def result(self, length: int) -> torch.Tensor:
        """The audio ``(B, length)`` (centred framing: the first ``n_fft / 2`` samples are padding)."""
        half = self.n_fft // 2
        audio = self.out[:, half:half + length] / self.envelope[half:half + length].clamp_min(1e-11)
        if audio.shape[-1] < length:
            audio = torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))
        return audio * (1.0 / magnitude_scale(self.n_fft))


def polar(magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """``magnitude · e^{i·phase}`` (any shape), differentiable.

    Not ``torch.polar``: on CPU (torch 2.13) it took 2.3 ms for 1025×200 values where
    ``complex(m·cos, m·sin)`` takes 0.5 ms (measured); the result is the same.
    """
    return torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))


def num_frames(num_samples: int, hop_length: int) -> int:
    """Frames :func:`stft` returns for ``num_samples`` samples (centred framing)."""
    return num_samples // hop_length + 1
