"""The representation's parameters, in a module without torch so that cache checks stay instant.

``SpectralConfig`` is re-exported by :mod:`distill.representation`, which holds the DSP.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.config_io import config_to_dict, config_values

PHASE_METHOD_NAMES = ("cumsum", "pghi", "pghi_fast")  # see distill.phase.METHODS
# Fields that only change how audio is *synthesised*, not what analysis produces: a cache built
# with other values is still valid.
SYNTHESIS_ONLY_FIELDS = frozenset({"phase", "seed"})


@dataclass(frozen=True)
class SpectralConfig:
    """Every parameter of the representation; stored with each cache and model."""

    sample_rate: int = 48000  # Hz; audio is resampled to this before analysis
    n_fft: int = 2048  # FFT size and Hann window length, samples (42.7 ms at 48 kHz)
    hop_length: int = 512  # samples between frames; n_fft / 4 so squared Hann windows overlap-add flat
    n_mels: int = 128  # mel bands (Slaney scale, triangular, band-average weights)
    f_min: float = 0.0  # Hz, lower edge of the first band
    f_max: float | None = None  # Hz, upper edge of the last band; None = sample_rate / 2
    log_floor: float = 1e-5  # amplitude added before the log (-100 dBFS): keeps log finite and smooth
    if_threshold_db: float = -80.0  # dBFS; bands quieter than this get IF 0 (phase is noise there)
    phase: str = "pghi"  # phase reconstruction used by synthesize(); see distill.phase.METHODS
    seed: int = 0  # seed of the random phase given to noise-like / silent bins (deterministic output)

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.n_fft <= 0 or self.n_fft % 2:
            raise ValueError(f"n_fft must be a positive even number, got {self.n_fft}")
        if not 0 < self.hop_length <= self.n_fft // 2:
            raise ValueError(f"hop_length must be in 1..n_fft/2 ({self.n_fft // 2}), got {self.hop_length}")
        if self.n_mels < 2:
            raise ValueError(f"n_mels must be at least 2, got {self.n_mels}")
        nyquist = self.sample_rate / 2
        f_max = nyquist if self.f_max is None else self.f_max
        if not 0 <= self.f_min < f_max <= nyquist:
            raise ValueError(f"need 0 <= f_min < f_max <= {nyquist} Hz, got f_min={self.f_min}, f_max={f_max}")
        if self.log_floor <= 0:
            raise ValueError(f"log_floor must be positive, got {self.log_floor}")
        if self.phase not in PHASE_METHOD_NAMES:
            raise ValueError(f"phase must be one of {sorted(PHASE_METHOD_NAMES)}, got {self.phase!r}")

    @property
    def n_bins(self) -> int:
        """Linear frequency bins of the STFT."""
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """Frames that :func:`analyze` produces for ``num_samples`` samples."""
        return num_samples // self.hop_length + 1

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SpectralConfig:
        return cls(**config_values(cls, data, "spectral"))

    def analysis_dict(self) -> dict:
        """The fields that determine :func:`distill.representation.analyze`'s output."""
        return {k: v for k, v in self.to_dict().items() if k not in SYNTHESIS_ONLY_FIELDS}
