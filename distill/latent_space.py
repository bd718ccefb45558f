"""A model's latent space as the player sees it: where the data lies, and the labelled sliders.

:mod:`distill.latent_analysis` fits this once (PCA of the encoder means of the training chunks)
and stores it in the model file as plain data; generation reads it back with
:meth:`LatentSpace.from_dict`. No sklearn here, so loading a model stays light.

* ``mean``, ``components``, ``scales``: a Gaussian picture of where the training data's latent
  vectors lie — ``mean + Σ_k scales[k] · ε_k · components[k]`` with ``ε ~ N(0, 1)`` is a point
  that looks like the data, which is where generation starts (the plain prior N(0, I) of a VAE
  trained on a few files is mostly places the decoder never saw).
* ``sliders``: the first few components (as many as the data supports), each with a position
  range −10…+10 mapped to robust percentiles of the data's scores on it (5th → −10, median → 0,
  95th → +10), a label from the audio descriptors when one follows the slider monotonically,
  else ``"Axis N"``, and the Spearman ρ of every descriptor so a UI can show how sure it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

SLIDER_RANGE = 10.0  # positions run from -10 to +10
ANALYSIS_VERSION = 1


class SliderError(ValueError):
    """An unknown slider or a value out of range; the message lists what is allowed."""


@dataclass(frozen=True)
class Slider:
    index: int  # 1-based, as shown to the user
    component: int  # row of LatentSpace.components
    label: str  # a descriptor name ("brightness", …) or "Axis N"
    descriptor: str | None  # the descriptor the label comes from, None for "Axis N"
    explained_variance: float  # share of the latent variance along this axis (0..1)
    percentiles: tuple[float, float, float]  # scores at the 5th, 50th and 95th percentile
    rho: dict[str, float]  # Spearman ρ of each descriptor against the slider position

    def score(self, position: float) -> float:
        """Slider position (−10…+10) → score along the component (piecewise linear through the percentiles)."""
        low, mid, high = self.percentiles
        t = position / SLIDER_RANGE
        return mid + t * ((high - mid) if t >= 0 else (mid - low))

    def to_dict(self) -> dict:
        return {"index": self.index, "component": self.component, "label": self.label,
                "descriptor": self.descriptor, "explained_variance": self.explained_variance,
                "percentiles": list(self.percentiles), "rho": self.rho}

    @classmethod
    def from_dict(cls, data: dict) -> Slider:
        return cls(int(data["index"]), int(data["component"]), str(data["label"]), data.get("descriptor"),
                   float(data["explained_variance"]), tuple(float(v) for v in data["percentiles"]),
                   {str(k): float(v) for k, v in data.get("rho", {}).items()})


@dataclass(frozen=True)
class LatentSpace:
    mean: np.ndarray  # (latent_dim,) float64
    components: np.ndarray  # (K, latent_dim) orthonormal rows, float64
    scales: np.ndarray  # (K,) standard deviation of the data's scores on each component
    explained_variance_ratio: np.ndarray  # (K,)
    sliders: tuple[Slider, ...]
    info: dict  # how it was fitted: samples, chunks, files, threshold, descriptor curves

    @property
    def latent_dim(self) -> int:
        return self.mean.shape[0]

    def slider(self, key: str | int) -> Slider:
        """A slider by 1-based index (``3``, ``"3"``), label (``"brightness"``) or ``"axis 3"``, case-insensitive."""
        text = str(key).strip().lower()
        if re.fullmatch(r"\d+", text):
            number = int(text)
            if 1 <= number <= len(self.sliders):
                return self.sliders[number - 1]
        for slider in self.sliders:
            if slider.label.lower() == text or slider.label.lower().replace(" ", "") == text.replace(" ", ""):
                return slider
        raise SliderError(f"unknown slider {key!r}; this model has {self.describe_sliders()}")

    def describe_sliders(self) -> str:
        if not self.sliders:
            return "no sliders"
        return ", ".join(f"{s.index}={s.label}" for s in self.sliders)

    def offset(self, positions: dict[str | int, float]) -> np.ndarray:
        """Slider positions → the latent offset ``(latent_dim,)`` they add (0 at the median of every slider)."""
        total = np.zeros(self.latent_dim)
        seen: dict[int, str | int] = {}
        for key, position in positions.items():
            slider = self.slider(key)
            if not np.isfinite(position) or abs(position) > SLIDER_RANGE:
                raise SliderError(f"slider {slider.label!r}: {position} is outside -10…+10")
            if slider.index in seen:
                raise SliderError(f"slider {slider.label!r} is set twice ({seen[slider.index]!r} and {key!r})")
            seen[slider.index] = key
            total += (slider.score(position) - slider.percentiles[1]) * self.components[slider.component]
        return total

    def normalise_positions(self, positions: dict[str | int, float]) -> dict[str, float]:
        """Every slider's position by label (unset ones at 0): what a sidecar records."""
        self.offset(positions)  # validates
        by_index = {self.slider(k).index: float(v) for k, v in positions.items()}
        return {s.label: by_index.get(s.index, 0.0) for s in self.sliders}

    def to_dict(self) -> dict:
        return {"version": ANALYSIS_VERSION, "mean": self.mean.tolist(), "components": self.components.tolist(),
                "scales": self.scales.tolist(), "explained_variance_ratio": self.explained_variance_ratio.tolist(),
                "sliders": [s.to_dict() for s in self.sliders], **self.info}

    @classmethod
    def from_dict(cls, data: dict) -> LatentSpace:
        if data.get("version") != ANALYSIS_VERSION:
            raise ValueError(f"latent analysis version {data.get('version')!r}; this distill reads "
                             f"{ANALYSIS_VERSION} (run `distill model analyze` again)")
        known = {"version", "mean", "components", "scales", "explained_variance_ratio", "sliders"}
        space = cls(np.asarray(data["mean"], np.float64), np.asarray(data["components"], np.float64).reshape(
                        -1, len(data["mean"])), np.asarray(data["scales"], np.float64),
                    np.asarray(data["explained_variance_ratio"], np.float64),
                    tuple(Slider.from_dict(s) for s in data["sliders"]),
                    {k: v for k, v in data.items() if k not in known})
        if not (space.components.shape[0] == space.scales.shape[0] == space.explained_variance_ratio.shape[0]):
            raise ValueError("latent analysis: components, scales and explained variance disagree in length")
        return space

    @classmethod
    def standard(cls, latent_dim: int) -> LatentSpace:
        """The VAE's prior N(0, I) with no sliders: for a model file without an analysis."""
        return cls(np.zeros(latent_dim), np.eye(latent_dim), np.ones(latent_dim),
                   np.full(latent_dim, 1.0 / latent_dim), (), {"method": "prior"})
