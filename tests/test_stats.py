import pytest
import torch

from distill.representation import SpectralConfig, analyze
from distill.stats import SpectralStats, StatsAccumulator


def test_normalize_round_trip_and_moments():
    gen = torch.Generator().manual_seed(0)
    spec = analyze(torch.randn(4, 24000, generator=gen) * 0.1, SpectralConfig())
    acc = StatsAccumulator(128)
    acc.add(spec[:2])
    acc.merge(StatsAccumulator(128)).add(spec[2:])
    stats = acc.result()
    normed = stats.normalize(spec)
    assert torch.allclose(stats.denormalize(normed), spec, atol=1e-4)
    assert torch.allclose(normed[:, 0].mean(dim=(0, 2)), torch.zeros(128), atol=1e-3)
    # Unit variance wherever the band actually varies (masked-IF bands are constant: floor applies).
    varying = stats.std[0] > 1e-2
    assert torch.allclose(normed[:, 0].std(dim=(0, 2), unbiased=False)[varying], torch.ones(int(varying.sum())),
                          atol=1e-2)


def test_stats_dict_round_trip_and_validation():
    stats = SpectralStats(torch.zeros(2, 8), torch.ones(2, 8))
    again = SpectralStats.from_dict(stats.to_dict())
    assert torch.equal(again.mean, stats.mean) and torch.equal(again.std, stats.std)
    with pytest.raises(ValueError, match="mean"):
        SpectralStats.from_dict({"std": [[1.0]]})
    with pytest.raises(ValueError):
        StatsAccumulator(8).result()
    with pytest.raises(ValueError, match="spec"):
        stats.normalize(torch.zeros(1, 2, 4, 3))
