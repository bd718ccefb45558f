"""New sound of any length: a smooth latent trajectory, decoded in overlapping windows, one synthesis.

Why windows: the decoder is convolutional and decodes any length, but ten minutes at once would
hold ~0.5 GB per activation map on the way up. Each window of ``WINDOW_STEPS`` latent steps is
decoded on its own and neighbours are cross-faded in the *2-channel domain* (log amplitude and
IF), so the joined spectrogram is as smooth as each window; phase is then rebuilt once for the
whole spectrogram (:func:`distill.inference.model_to_audio`), so it runs continuously across the
joins (long signals are synthesised in blocks that carry the phase across,
:func:`distill.representation.synthesize_in_blocks`, with the same result). Cross-fading audio
instead would add two unrelated phases and comb-filter the overlap.

A window's first and last latent step see the decoder's zero padding, so its weight there is 0
(``MARGIN_STEPS``); the cross-fade is a raised cosine over the rest of the overlap, and weights
are normalised by their sum, which also covers a longer overlap. Windows never agree exactly:
the decoder's GroupNorm normalises over the whole window it is given, so its output depends on
the window's length and content; the cross-fade is what hides that.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from distill.latent_space import LatentSpace
from distill.model import DOWNSAMPLE, SpectrogramVAE

MIN_SECONDS = 0.1
MAX_SECONDS = 600.0  # 10 minutes (1.1 GB peak on CPU with block synthesis, measured)
# Latent steps per decoded window (2048 frames, 22 s at the defaults): a window's activations stay
# well under 100 MB even for the widest preset, and takes up to 22 s decode in one call (10 s in
# 16-step windows decoded 48 steps for 30; this halved the tiny model's decode time).
WINDOW_STEPS = 64
OVERLAP_STEPS = 4  # steps shared by neighbouring windows
MARGIN_STEPS = 1  # steps at each window edge that get no weight (they see the decoder's padding)
WANDER_STEPS = 4.0  # correlation time of the wandering trajectory, in latent steps (1.4 s at the defaults)


def latent_trajectory(space: LatentSpace, steps: int, seed: int, evolution: float,
                      offset: np.ndarray | None = None) -> torch.Tensor:
    """A latent sequence ``(latent_dim, steps)`` float32 that looks like the training data.

    Each component's score is ``scale · (√(1 − e²) · a + e · g(t))``: ``a`` a fixed draw, ``g`` a
    smooth unit-variance random walk (Gaussian-filtered noise), ``e`` the evolution (0 static, 1
    wandering). Both parts have unit variance, so every ``e`` stays inside the data's spread.
    ``offset`` (from the sliders) is added at every step. The draws depend only on ``seed`` and are
    made in float64 on the CPU, then cast: the same inputs give the same bits on every device.
    A longer request with the same seed starts with the same trajectory.
    """
    if not 0.0 <= evolution <= 1.0:
        raise ValueError(f"evolution must be in 0…1, got {evolution}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    generator = torch.Generator().manual_seed(int(seed))
    k = space.components.shape[0]
    static = torch.randn(k, generator=generator, dtype=torch.float64)
    reach = int(math.ceil(3 * WANDER_STEPS))
    noise = torch.randn(steps + 2 * reach, k, generator=generator, dtype=torch.float64)  # time-major: prefix-stable
    taps = torch.exp(-0.5 * (torch.arange(-reach, reach + 1, dtype=torch.float64) / WANDER_STEPS) ** 2)
    taps = taps / taps.square().sum().sqrt()  # unit variance after filtering
    wander = torch.nn.functional.conv1d(noise.T[:, None], taps[None, None])[:, 0]  # (K, steps)
    scores = math.sqrt(1.0 - evolution**2) * static[:, None] + evolution * wander
    scores = scores * torch.as_tensor(space.scales)[:, None]
    z = torch.as_tensor(space.mean)[:, None] + torch.as_tensor(space.components).T @ scores
    if offset is not None:
        z = z + torch.as_tensor(offset, dtype=torch.float64)[:, None]
    return z.float()


def plan_windows(steps: int, window: int = WINDOW_STEPS, overlap: int = OVERLAP_STEPS) -> tuple[int, list[int]]:
    """``(length, starts)`` of the fewest windows of at most ``window`` steps that cover ``steps`` with
    neighbours overlapping by ``overlap``, all of one length (so a take just over one window long
    decodes two short windows, not two long ones that mostly overlap). The last ends at ``steps``."""
    if steps <= window:
        return steps, [0]
    count = -(-(steps - overlap) // (window - overlap))
    length = -(-(steps + (count - 1) * overlap) // count)
    return length, [min(i * (length - overlap), steps - length) for i in range(count)]


def _ramp(length: int, fade: int, margin: int, rise: bool) -> torch.Tensor:
    """Weights ``(length,)``: 0 for ``margin`` frames, a raised-cosine over ``fade`` frames, then 1 (or mirrored)."""
    w = torch.ones(length, dtype=torch.float64)
    w[:margin] = 0.0
    t = (torch.arange(fade, dtype=torch.float64) + 0.5) / fade
    w[margin:margin + fade] = torch.sin(0.5 * math.pi * t) ** 2
    return w if rise else w.flip(0)


@torch.no_grad()
def decode_long(model: SpectrogramVAE, z: torch.Tensor, frames: int, window: int = WINDOW_STEPS,
                overlap: int = OVERLAP_STEPS) -> torch.Tensor:
    """Latent sequence ``(latent_dim, T)`` → model-space spectrogram ``(1, 2, n_mels, frames)`` on the CPU.

    Windows of ``window`` steps overlapping by ``overlap`` are decoded one at a time on the model's
    device and cross-faded (module docstring). ``frames`` ≤ ``32 · T``.
    """
    if overlap < 2 * MARGIN_STEPS + 1 or overlap >= window:
        raise ValueError(f"overlap must be in {2 * MARGIN_STEPS + 1}…{window - 1} steps, got {overlap}")
    steps = z.shape[-1]
    if frames > steps * DOWNSAMPLE:
        raise ValueError(f"{frames} frames need at least {math.ceil(frames / DOWNSAMPLE)} latent steps, got {steps}")
    device = next(model.parameters()).device
    length, starts = plan_windows(steps, window, overlap)
    if len(starts) == 1:
        return model.decode(z[None].to(device), frames).float().cpu()
    span, margin = length * DOWNSAMPLE, MARGIN_STEPS * DOWNSAMPLE
    fade = (overlap - 2 * MARGIN_STEPS) * DOWNSAMPLE
    total = torch.zeros(1, 2, model.cfg.n_mels, steps * DOWNSAMPLE, dtype=torch.float64)
    weight = torch.zeros(steps * DOWNSAMPLE, dtype=torch.float64)
    for i, start in enumerate(starts):
        part = model.decode(z[None, :, start:start + length].to(device), span).double().cpu()
        w = torch.ones(span, dtype=torch.float64)
        if i > 0:
            w = w * _ramp(span, fade, margin, rise=True)
        if i < len(starts) - 1:
            w = w * _ramp(span, fade, margin, rise=False)
        first = start * DOWNSAMPLE
        total[..., first:first + span] += part * w
        weight[first:first + span] += w
    return (total / weight).float()[..., :frames]


@torch.no_grad()
def encode_long(model: SpectrogramVAE, x: torch.Tensor, window: int = WINDOW_STEPS, context: int = 2) -> torch.Tensor:
    """Model-space spectrogram ``(1, 2, n_mels, N)`` → posterior means ``(latent_dim, ⌈N/32⌉)`` on the CPU.

    Encoded in windows of ``window`` steps with ``context`` steps of real signal on each side, of
    which only the centre is kept, so long inputs need bounded memory and agree with a one-shot
    encoding away from the edges of the whole input.
    """
    device = next(model.parameters()).device
    frames = x.shape[-1]
    steps = -(-frames // DOWNSAMPLE)
    out = []
    for start in range(0, steps, window):
        stop = min(steps, start + window)
        lo, hi = max(0, start - context), min(steps, stop + context)
        piece = x[..., lo * DOWNSAMPLE:min(frames, hi * DOWNSAMPLE)].to(device)
        mean, _ = model.encode(piece)
        out.append(mean[0, :, start - lo:stop - lo].float().cpu())
    return torch.cat(out, dim=-1)
