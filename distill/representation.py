"""The 2-channel IF-mel representation: ``analyze`` audio into it, ``synthesize`` audio from it.

Channel 0 is the natural log of the band-average mel *amplitude* (the square root of the
triangle-weighted mean power of the band's bins; a full-scale sinusoid has amplitude 1 in its bin).
Channel 1 is the band's instantaneous frequency (IF): the energy-weighted mean of its bins'
instantaneous frequencies, written relative to the band as ``(IF - centre) / reach`` so it lies in
[-1, 1], and 0 where the band is quieter than ``if_threshold_db``.

Why this IF: a linear bin k advances its phase by ``2π k hop / n_fft`` per hop on its own, so
averaging raw phase differences of different bins mixes unrelated offsets (the earlier prototype's
bug). The instantaneous frequency of every bin near a sinusoid is the sinusoid's frequency, so an
energy-weighted mean inside a band *is* the frequency of what dominates the band. ``reach`` is the
band's half-width plus ``n_fft / (2 hop)`` bins, the furthest a bin's IF can sit from the bin itself
(phase differences are only known modulo 2π), so the mean can never fall outside [-1, 1].

All functions take batches, run on CPU and CUDA, and ``synthesize`` is differentiable.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import torch

from distill import mel as melscale
from distill import phase as phase_rec
from distill.spectral_config import PHASE_METHOD_NAMES, SpectralConfig
from distill.stft import OverlapAdd, istft, polar, stft, stft_frames

PHASE_METHODS = phase_rec.METHODS
assert set(PHASE_METHODS) == set(PHASE_METHOD_NAMES), "spectral_config and phase disagree"
_POWER_EPS = 1e-20  # bin power treated as silence when rebuilding linear magnitude
# Above this many frames (44 s at the defaults) synthesis without autograd runs in blocks of
# BLOCK_FRAMES, carrying the phase across, so memory stays bounded: one 10-minute synthesis at once
# peaked at 4.2 GB (several frames × bins tensors); the result is the same to float rounding.
LONG_FRAMES = 4096
BLOCK_FRAMES = 2048


@dataclass(frozen=True)
class BandGeometry:
    """Precomputed per-config tensors (float64 on CPU; moved/cast on use)."""

    weights: torch.Tensor  # (n_mels, n_bins) band-average analysis weights, rows sum to 1
    inverse: torch.Tensor  # (n_bins, n_mels) pseudo-inverse of ``weights`` (mel power -> bin power)
    centres: torch.Tensor  # (n_mels,) band centre, in bins
    reach: torch.Tensor  # (n_mels,) IF scale, in bins: half-width + n_fft / (2 hop)
    left_band: torch.Tensor  # (n_bins,) long: band on the left of each bin (its falling edge)
    right_band: torch.Tensor  # (n_bins,) long: band on the right of each bin (its rising edge)
    left_weight: torch.Tensor  # (n_bins,) interpolation weight of left_band for each bin
    right_weight: torch.Tensor  # (n_bins,) interpolation weight of right_band for each bin
    bin_weighted: torch.Tensor  # (n_mels, n_bins) weights · bin index (band mean of k, as a product)
    expected_advance: torch.Tensor  # (n_bins,) phase advance of a bin-centred sinusoid, mod 2π


@lru_cache(maxsize=16)
def band_geometry(cfg: SpectralConfig) -> BandGeometry:
    """Band tables for ``cfg`` (cached: they only depend on the config)."""
    args = (cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
    weights = melscale.band_average_weights(*args)
    centres = melscale.band_centres_bins(*args)
    reach = melscale.band_half_widths_bins(*args) + cfg.n_fft / (2.0 * cfg.hop_length)
    # Each bin k between centres c_m <= k < c_{m+1} lies under bands m (left) and m + 1 (right),
    # weighted by linear interpolation between the centres; bins outside the first/last centre
    # lean entirely on that band. bin_frequencies() uses these weights to pick a bin's band.
    bins = torch.arange(cfg.n_bins, dtype=torch.float64)
    right = torch.searchsorted(centres, bins, right=True).clamp(1, cfg.n_mels - 1)
    left = right - 1
    frac = ((bins - centres[left]) / (centres[right] - centres[left])).clamp(0.0, 1.0)
    inverse = torch.linalg.pinv(weights)
    k = torch.arange(cfg.n_bins, dtype=torch.float64)
    expected = torch.remainder(2 * math.pi * cfg.hop_length / cfg.n_fft * k, 2 * math.pi)
    return BandGeometry(weights, inverse, centres, reach, left, right, 1.0 - frac, frac, weights * k, expected)


def _table(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.to(device=like.device, dtype=like.dtype if t.is_floating_point() else t.dtype)


@lru_cache(maxsize=32)
def _sparse_table(cfg: SpectralConfig, name: str, device: str, dtype: torch.dtype) -> torch.Tensor:
    """A band table of ``band_geometry(cfg)`` as a sparse CSR matrix on ``device``."""
    dense = getattr(band_geometry(cfg), name).to(device=device, dtype=dtype)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul is all we use
        warnings.simplefilter("ignore", UserWarning)
        return dense.to_sparse_csr()


def _over_bands(cfg: SpectralConfig, name: str, x: torch.Tensor) -> torch.Tensor:
    """``table (n_mels, K) @ x (B, K, N)`` → ``(B, n_mels, N)`` for a band table such as ``weights``.

    Each band covers at most a few dozen bins (2k non-zeros of 131k), so without autograd on CPU
    the product is sparse: 0.04 ms instead of 0.33 ms per 2 s row, and analysis does five of them
    (analysis 20 % faster, measured). Autograd and accelerators take the dense product, which is
    what GPUs do best and what autograd supports everywhere.
    """
    if x.requires_grad or x.device.type != "cpu":
        return _table(getattr(band_geometry(cfg), name), x) @ x
    table = _sparse_table(cfg, name, str(x.device), x.dtype)
    batch, bins, frames = x.shape
    flat = x.transpose(0, 1).reshape(bins, batch * frames)
    return (table @ flat).reshape(-1, batch, frames).transpose(0, 1)


def _check_wave(wave: torch.Tensor) -> None:
    if wave.dim() != 2:
        raise ValueError(f"wave must have shape (batch, samples), got {tuple(wave.shape)}")


def analyze(wave: torch.Tensor, cfg: SpectralConfig = SpectralConfig()) -> torch.Tensor:
    """Audio ``(B, T)`` at ``cfg.sample_rate`` → representation ``(B, 2, n_mels, T // hop + 1)``.

    Above :data:`LONG_FRAMES` frames without autograd, the frames are analysed in blocks
    (:func:`analyze_in_blocks`, the same result) so memory stays bounded.
    """
    _check_wave(wave)
    frames = cfg.num_frames(wave.shape[-1])
    if frames > LONG_FRAMES and not (torch.is_grad_enabled() and wave.requires_grad):
        return analyze_in_blocks(wave, cfg)
    return _analyze_spectrum(stft(wave, cfg.n_fft, cfg.hop_length), cfg)


@torch.no_grad()
def analyze_in_blocks(wave: torch.Tensor, cfg: SpectralConfig, block_frames: int = BLOCK_FRAMES) -> torch.Tensor:
    """:func:`analyze` ``block_frames`` frames at a time: each block's STFT (plus a frame of context on
    each side) is computed from only the samples it covers (:func:`distill.stft.stft_frames`)."""
    _check_wave(wave)
    frames = cfg.num_frames(wave.shape[-1])
    out = torch.empty(wave.shape[0], 2, cfg.n_mels, frames, device=wave.device, dtype=wave.dtype)
    for a in range(0, frames, block_frames):
        # One frame of context on each side: frame n's IF needs frame n - 1, and frame 0 takes frame 1's.
        b, lo = min(frames, a + block_frames), max(0, a - 1)
        hi = min(frames, b + 1)
        part = _analyze_spectrum(stft_frames(wave, cfg.n_fft, cfg.hop_length, lo, hi - lo), cfg)
        out[..., a:b] = part[..., a - lo:b - lo]
    return out


def _analyze_spectrum(spec: torch.Tensor, cfg: SpectralConfig) -> torch.Tensor:
    """Complex STFT frames ``(B, K, N)`` → representation ``(B, 2, n_mels, N)`` (frame 0 as the first)."""
    geo = band_geometry(cfg)
    power = spec.real.square() + spec.imag.square()
    mel_power = _over_bands(cfg, "weights", power)
    amplitude = mel_power.clamp_min(0.0).sqrt()
    log_amp = torch.log(amplitude + cfg.log_floor)

    # Instantaneous frequency of every bin from the phase advance between frames, written so that
    # the full-size (B, K, N) work is a few plain real ops (this function is most of the cost of
    # preparing a dataset): angle(X[n]·conj(X[n-1])) as atan2 of real products (complex multiply +
    # torch.angle cost half of analyze() on CPU), and the mean over a band's bins of
    # IF_k = k + c·dev_k taken as (Σ w·E·k + c·Σ w·E·dev) / Σ w·E, two matrix products instead of
    # building IF_k per bin. dev_k is the advance minus the bin's own expected advance, wrapped.
    re, im = spec.real.contiguous(), spec.imag.contiguous()
    cross_re = re[..., 1:] * re[..., :-1] + im[..., 1:] * im[..., :-1]
    cross_im = im[..., 1:] * re[..., :-1] - re[..., 1:] * im[..., :-1]
    advance = torch.atan2(cross_im, cross_re)  # (B, K, N-1), in (-π, π]
    expected = _table(geo.expected_advance, power)[:, None]  # (K, 1), in [0, 2π)
    deviation = advance - expected  # in (-3π, π]: one conditional turn wraps it to (-π, π]
    deviation = deviation + (deviation <= -math.pi).to(deviation.dtype) * (2 * math.pi)
    # Weight each bin's IF by the energy it has in *both* frames (|X[n]|·|X[n-1]| = |cross|): an IF
    # is only as good as the two phases it came from, and a bin silent a frame ago has a meaningless one.
    pair_energy = torch.hypot(cross_re, cross_im)  # (B, K, N-1)
    scale = cfg.n_fft / (2 * math.pi * cfg.hop_length)  # radians of deviation → bins
    # Frame 0 has no predecessor: it takes frame 1's IF, weighted by its own power.
    energy0, dev0 = power[..., :1], deviation[..., :1]
    band_energy = torch.cat([_over_bands(cfg, "weights", energy0), _over_bands(cfg, "weights", pair_energy)], dim=-1)
    band_sum = torch.cat([_over_bands(cfg, "bin_weighted", energy0)
                          + scale * _over_bands(cfg, "weights", energy0 * dev0),
                          _over_bands(cfg, "bin_weighted", pair_energy)
                          + scale * _over_bands(cfg, "weights", pair_energy * deviation)], dim=-1)
    band_if = band_sum / band_energy.clamp_min(1e-20)
    centres, reach = _table(geo.centres, power)[:, None], _table(geo.reach, power)[:, None]
    rel_if = ((band_if - centres) / reach).clamp(-1.0, 1.0)
    audible = 20 * torch.log10(amplitude.clamp_min(1e-12)) >= cfg.if_threshold_db
    rel_if = torch.where(audible & (band_energy > 0), rel_if, torch.zeros_like(rel_if))
    return torch.stack([log_amp, rel_if], dim=1)


def mel_amplitude(spec: torch.Tensor, cfg: SpectralConfig) -> torch.Tensor:
    """Channel 0 back to linear band amplitude ``(B, n_mels, N)`` (>= 0)."""
    return (torch.exp(spec[:, 0]) - cfg.log_floor).clamp_min(0.0)


def linear_magnitude(spec: torch.Tensor, cfg: SpectralConfig) -> torch.Tensor:
    """Estimate of the linear STFT magnitude ``(B, n_bins, N)`` from channel 0.

    The minimum-norm least-squares inverse of the band weights applied to band *power*, clipped at
    zero. Where bands are as fine as bins (low frequencies) this recovers the exact spectrum; where
    a band spans many bins it spreads the power smoothly along the triangle. Measured on the real
    recordings it matches non-negative least squares (librosa's mel inverse) to three decimals at
    the cost of one matrix product, and beats interpolating between band centres by a wide margin.
    """
    return _magnitude_frames_first(spec, cfg).transpose(1, 2)


def _magnitude_frames_first(spec: torch.Tensor, cfg: SpectralConfig) -> torch.Tensor:
    """:func:`linear_magnitude` laid out ``(B, N, n_bins)``: the phase code scans along frequency."""
    amp = mel_amplitude(spec, cfg)
    inverse = _table(band_geometry(cfg).inverse, amp)
    power = torch.einsum("km,bmn->bnk", inverse, amp.square()).clamp_min(0.0)
    # sqrt has an infinite slope at 0; clamping keeps gradients finite. No floor is *added*: even
    # -120 dB of invented energy in bins that should be silent costs a lot on a log-magnitude scale.
    return torch.where(power > _POWER_EPS, power.clamp_min(_POWER_EPS).sqrt(), torch.zeros_like(power))


def bin_frequencies(spec: torch.Tensor, cfg: SpectralConfig) -> torch.Tensor:
    """Frequency (in bins) each linear bin should rotate at, ``(B, n_bins, N)``, from channel 1.

    Each bin lies under two neighbouring bands; it takes the IF of the one that contributes more
    of its energy. This is a gather from two candidates, not an argmax over all bands.
    """
    return _bin_frequencies_frames_first(spec, cfg).transpose(1, 2)


def _bin_frequencies_frames_first(spec: torch.Tensor, cfg: SpectralConfig) -> torch.Tensor:
    geo = band_geometry(cfg)
    # Contiguous (B, N, M) copies (small: M = n_mels) so the gathers below read rows, not strides.
    rel_if = spec[:, 1].transpose(1, 2).contiguous()
    amp = mel_amplitude(spec, cfg).transpose(1, 2).contiguous()
    band_freq = _table(geo.centres, rel_if) + rel_if * _table(geo.reach, rel_if)
    left, right = geo.left_band.to(amp.device), geo.right_band.to(amp.device)
    power = amp.square()
    # gather with an expanded index, not power[..., left] or index_select along the last dimension:
    # those took 4.8 and 3.8 ms per call for 10 s of frames on one CPU thread, gather 0.8 ms
    # (four calls were 15 % of a whole synthesis; measured with benchmarks/generate.py).
    left = left.expand(*power.shape[:-1], -1)
    right = right.expand(*power.shape[:-1], -1)
    left_share = _table(geo.left_weight, amp) * power.gather(-1, left)
    right_share = _table(geo.right_weight, amp) * power.gather(-1, right)
    return torch.where(left_share >= right_share, band_freq.gather(-1, left), band_freq.gather(-1, right))


def synthesize(spec: torch.Tensor, cfg: SpectralConfig = SpectralConfig(), length: int | None = None,
               method: str | None = None, **phase_options) -> torch.Tensor:
    """Representation ``(B, 2, n_mels, N)`` → audio ``(B, length)`` (default ``(N - 1) * hop``).

    Magnitude from channel 0, phase rebuilt from the IF channel (and the magnitude's shape) by
    ``cfg.phase`` (or ``method``), then one inverse STFT. Differentiable; no iterations.
    """
    if spec.dim() != 4 or spec.shape[1] != 2 or spec.shape[2] != cfg.n_mels:
        raise ValueError(f"spec must have shape (batch, 2, {cfg.n_mels}, frames), got {tuple(spec.shape)}")
    method = cfg.phase if method is None else method
    length = (spec.shape[-1] - 1) * cfg.hop_length if length is None else length
    if method == "pghi" and spec.shape[-1] > LONG_FRAMES and not (torch.is_grad_enabled() and spec.requires_grad):
        return synthesize_in_blocks(spec, cfg, length, BLOCK_FRAMES, **phase_options)
    magnitude = _magnitude_frames_first(spec, cfg)
    freqs = _bin_frequencies_frames_first(spec, cfg)
    phase = phase_rec.reconstruct(method, magnitude, freqs, cfg.n_fft, cfg.hop_length, seed=cfg.seed,
                                  **phase_options)
    complex_spec = polar(magnitude, phase).transpose(1, 2)
    return istft(complex_spec, cfg.n_fft, cfg.hop_length, length=length)


@torch.no_grad()
def synthesize_in_blocks(spec: torch.Tensor, cfg: SpectralConfig, length: int, block_frames: int = BLOCK_FRAMES,
                         **phase_options) -> torch.Tensor:
    """:func:`synthesize` with PGHI, ``block_frames`` frames at a time: ``(B, 2, n_mels, N)`` → ``(B, length)``.

    Each block sees one frame of context on each side (the phase's time derivative and frequency
    jump), continues the previous block's phase (:func:`distill.phase.pghi_phase_block`), takes
    the whole signal's loudest bin (a first, cheap pass) and its rows of the one random-phase
    table (drawn in order from the same seed), and is overlap-added into the output
    (:class:`distill.stft.OverlapAdd`). Memory: the output plus one block.
    """
    frames = spec.shape[-1]
    blocks = [(a, min(frames, a + block_frames)) for a in range(0, frames, block_frames)]
    peak = torch.stack([_magnitude_frames_first(spec[..., a:b], cfg).amax(dim=(1, 2), keepdim=True)
                        for a, b in blocks]).amax(dim=0)
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)  # the rows phase._random_phase draws
    ola = OverlapAdd(spec.shape[0], frames, cfg.n_fft, cfg.hop_length, spec.device, spec.dtype)
    carry = None
    for a, b in blocks:
        lo, hi = max(0, a - 1), min(frames, b + 1)
        context = spec[..., lo:hi]
        magnitude = _magnitude_frames_first(context, cfg)
        freqs = _bin_frequencies_frames_first(context, cfg)
        table = torch.rand((b - a, cfg.n_bins), generator=generator, dtype=torch.float32) * (2 * math.pi)
        phase, carry = phase_rec.pghi_phase_block(
            magnitude, freqs, cfg.n_fft, cfg.hop_length, first=a - lo, count=b - a, carry=carry, first_frame=a,
            peak=peak, table=table.to(magnitude.device, magnitude.dtype), **phase_options)
        ola.add(polar(magnitude[:, a - lo:b - lo], phase).transpose(1, 2), a)
    return ola.result(length)
