"""Fitting a model's :class:`~distill.latent_space.LatentSpace`: PCA of the latent space, labelled by ear.

1. Encode the clean (un-augmented) training chunks; every latent *step* of every chunk is one
   sample (a 2 s chunk gives 6), so even 5 short files give dozens of samples.
2. PCA (scikit-learn) of those posterior means. Sliders are the leading components that each
   explain at least ``MIN_SHARE`` of the variance, until ``CUMULATIVE`` is explained, at most
   ``MAX_SLIDERS`` — and never more than the chunks minus one: steps of one chunk are not
   independent, so the chunk count is what the data supports (unlike RAVE, whose PCA wants ≥ 128
   examples, this works on 5 files).
3. Label each slider by listening: decode ``REFERENCE_CHUNKS`` real chunks with the slider moved
   to each of ``POSITIONS``, measure the audio descriptors (:mod:`distill.descriptors`) and take
   the Spearman ρ of each against the position. A slider is named after a descriptor only when
   ``|ρ| ≥ RHO_THRESHOLD`` (the relation is monotonic), strongest first; a second slider that
   also passes for a name already given becomes "brightness 2"; the rest are "Axis N". A slider
   whose descriptor *falls* as it moves up is flipped, so that "brightness +10" is always the
   bright end.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import torch
from scipy.stats import spearmanr

from distill.descriptors import DESCRIPTORS, describe
from distill.inference import eval_mode, model_to_audio
from distill.latent_space import SLIDER_RANGE, LatentSpace, Slider
from distill.model import SpectrogramVAE, to_model_space
from distill.prepared import evenly_spread
from distill.spectral_config import SpectralConfig
from distill.stats import SpectralStats

MAX_SLIDERS = 8
MIN_SHARE = 0.02  # a component below 2 % of the variance is detail, not a control
CUMULATIVE = 0.95  # stop adding sliders once this share of the variance is covered
MAX_SAMPLING_COMPONENTS = 32  # components kept for drawing new latent points (generation)
RHO_THRESHOLD = 0.8
POSITIONS = np.linspace(-SLIDER_RANGE, SLIDER_RANGE, 7)
REFERENCE_CHUNKS = 4
MAX_CHUNKS = 512  # chunks encoded for the PCA (an even spread of the collection)


class AnalysisError(ValueError):
    """Too little data, or data that does not fit the model; the message says which."""


@torch.no_grad()
def encode_chunks(model: SpectrogramVAE, spec: torch.Tensor, stats: SpectralStats,
                  batch_size: int = 16) -> torch.Tensor:
    """Raw chunks ``(E, 2, n_mels, N)`` → posterior means ``(E, latent_dim, ⌈N/32⌉)`` on the CPU."""
    out = []
    with eval_mode(model) as device:
        for first in range(0, spec.shape[0], batch_size):
            part = spec[first:first + batch_size].to(device, torch.float32)
            mean, _ = model.encode(to_model_space(part, stats.mean.to(device), stats.std.to(device)))
            out.append(mean.float().cpu())
    return torch.cat(out)


def choose_sliders(ratios: np.ndarray, chunks: int) -> int:
    """How many leading components become sliders (module docstring, step 2)."""
    supported = min(MAX_SLIDERS, max(1, chunks - 1), len(ratios))
    count, covered = 0, 0.0
    for ratio in ratios[:supported]:
        if ratio < MIN_SHARE and count > 0:
            break
        count += 1
        covered += ratio
        if covered >= CUMULATIVE:
            break
    return count


def spearman(positions: np.ndarray, values: np.ndarray) -> float:
    """Spearman ρ, with 0 for a constant series (no relation, rather than NaN)."""
    values = np.asarray(values, np.float64)
    if not np.all(np.isfinite(values)) or np.ptp(values) <= 1e-12 * max(1.0, float(np.abs(values).max())):
        return 0.0
    return float(spearmanr(positions, values).statistic)


def assign_labels(rhos: list[dict[str, float]],
                  threshold: float = RHO_THRESHOLD) -> list[tuple[str | None, str | None]]:
    """``(label, descriptor)`` per slider: ``(None, None)`` when no descriptor passes ``threshold``.

    Strongest |ρ| first, each descriptor named once ("brightness"); a slider whose passing
    descriptors were all taken by stronger ones is named after its strongest with a number
    ("brightness 2"): it does move brightness, and the UI shows both sliders' ρ.
    """
    # Ties go to the slider with more variance (the lower index), then to the order of DESCRIPTORS.
    order = {name: k for k, name in enumerate(DESCRIPTORS)}
    pairs = sorted((-abs(r), i, order.get(name, len(order)), name)
                   for i, rho in enumerate(rhos) for name, r in rho.items() if abs(r) >= threshold)
    chosen: list[str | None] = [None] * len(rhos)
    for _, i, _, name in pairs:
        if chosen[i] is None and name not in chosen:
            chosen[i] = name
    labels: list[tuple[str | None, str | None]] = []
    for i in range(len(rhos)):
        if chosen[i] is not None:
            labels.append((chosen[i], chosen[i]))
            continue
        passing = [name for _, j, _, name in pairs if j == i]
        if not passing:
            labels.append((None, None))
            continue
        count = 1 + sum(1 for label, descriptor in labels if descriptor == passing[0]) + sum(
            1 for j in range(i + 1, len(rhos)) if chosen[j] == passing[0])
        labels.append((f"{passing[0]} {count}", passing[0]))
    return labels


@torch.no_grad()
def descriptor_curves(model: SpectrogramVAE, references: torch.Tensor, direction: np.ndarray,
                      scores: np.ndarray, stats: SpectralStats, spectral: SpectralConfig,
                      frames: int) -> dict[str, list[float]]:
    """Each descriptor's mean over ``references`` ``(R, latent_dim, T)`` at every slider position.

    ``scores`` are the offsets along ``direction`` ``(latent_dim,)`` for :data:`POSITIONS`.
    """
    shift = torch.as_tensor(np.outer(scores, direction), dtype=torch.float32)  # (P, latent_dim)
    z = (references[None] + shift[:, None, :, None]).flatten(0, 1)  # (P·R, latent_dim, T)
    length = (frames - 1) * spectral.hop_length
    audio = []
    with eval_mode(model) as device:
        for first in range(0, z.shape[0], 8):
            x = model.decode(z[first:first + 8].to(device), frames)
            audio.append(model_to_audio(x, stats, spectral, length).cpu())
    audio = torch.cat(audio).reshape(len(scores), references.shape[0], -1).numpy()
    values = [[describe(clip, spectral.sample_rate) for clip in row] for row in audio]
    return {name: [float(np.mean([v[name] for v in row])) for row in values] for name in DESCRIPTORS}


def fit_latent_space(model: SpectrogramVAE, spec: torch.Tensor, stats: SpectralStats, spectral: SpectralConfig,
                     files: int | None = None) -> LatentSpace:
    """The latent space of ``model`` over the clean training chunks ``spec`` ``(E, 2, n_mels, N)`` (raw)."""
    from sklearn.decomposition import PCA  # deferred: sklearn takes ~1 s to import

    chunks = spec.shape[0]
    if chunks < 2:
        raise AnalysisError(f"latent analysis needs at least 2 training chunks, got {chunks}")
    means = encode_chunks(model, spec, stats)  # (E, D, T)
    samples = means.permute(0, 2, 1).reshape(-1, means.shape[1]).double().numpy()  # (E·T, D)
    keep = min(MAX_SAMPLING_COMPONENTS, samples.shape[0] - 1, samples.shape[1])
    pca = PCA(n_components=keep, svd_solver="full").fit(samples)
    components = pca.components_.copy()
    ratios = pca.explained_variance_ratio_
    projected = pca.transform(samples)
    count = choose_sliders(ratios, chunks)
    references = means[evenly_spread(chunks, REFERENCE_CHUNKS)]
    curves, rhos, percentiles = [], [], []
    for k in range(count):
        pct = np.percentile(projected[:, k], [5, 50, 95])
        probe = Slider(k + 1, k, "", None, 0.0, tuple(pct), {})
        scores = np.array([probe.score(p) - pct[1] for p in POSITIONS])
        curve = descriptor_curves(model, references, components[k], scores, stats, spectral, spec.shape[-1])
        curves.append(curve)
        rhos.append({name: spearman(POSITIONS, values) for name, values in curve.items()})
        percentiles.append(pct)
    labels = assign_labels(rhos)
    sliders = []
    for k, ((label, descriptor), rho, pct) in enumerate(zip(labels, rhos, percentiles, strict=True)):
        if descriptor is not None and rho[descriptor] < 0:  # flip: moving the slider up raises its descriptor
            components[k] *= -1
            projected[:, k] *= -1
            pct = -pct[::-1]
            rho = {name: -r for name, r in rho.items()}
            curves[k] = {name: values[::-1] for name, values in curves[k].items()}
        sliders.append(Slider(k + 1, k, label or f"Axis {k + 1}", descriptor, float(ratios[k]),
                              tuple(float(v) for v in pct), {n: round(r, 4) for n, r in rho.items()}))
    info = {"method": "pca", "samples": int(samples.shape[0]), "chunks": int(chunks), "files": files,
            "rho_threshold": RHO_THRESHOLD, "positions": POSITIONS.tolist(),
            "curves": {str(s.index): curves[s.component] for s in sliders},
            "fitted": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return LatentSpace(pca.mean_.copy(), components, np.sqrt(pca.explained_variance_), ratios.copy(),
                       tuple(sliders), info)
