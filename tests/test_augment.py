"""Augmentation: the vocoder keeps what it should, parameters are deterministic, chunks have context."""

import math

import numpy as np
import pytest

from distill.augment import AugmentParams, apply_params, draw_params, variant_rng
from distill.chunking import chunk_starts, chunk_windows, window_length
from distill.prepare_config import AugmentConfig, PrepareConfig
from distill.vocoder import change_pitch_and_speed, time_stretch

SR = 48000


def _sine(freq, seconds=2.0, amp=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_freq(y):
    y = y[4096:-4096]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), 8 * len(y)))
    return np.argmax(spectrum) * SR / (8 * len(y))


@pytest.mark.parametrize("semitones,speed", [(2.0, 1.0), (-2.0, 1.0), (0.0, 1.1), (0.0, 0.9), (1.3, 1.07)])
def test_pitch_and_speed_are_independent_and_exact(semitones, speed):
    out = change_pitch_and_speed(_sine(440.0), SR, semitones, speed)
    assert abs(len(out) - 2 * SR / speed) <= 2  # duration follows speed only
    expected = 440.0 * 2 ** (semitones / 12)
    assert abs(_peak_freq(out) - expected) < 0.5  # pitch follows semitones only (< 2 cents)
    rms = lambda x: np.sqrt(np.mean(x[4096:-4096] ** 2))  # noqa: E731
    assert abs(rms(out) / rms(_sine(440.0)) - 1) < 0.1  # a steady tone keeps its level


def test_phase_locking_keeps_a_two_tone_chord_clean():
    chord = _sine(440.0) + _sine(554.37)
    out = time_stretch(chord, 1.1)
    spectrum = np.abs(np.fft.rfft(out[4096:-4096]))
    freqs = np.fft.rfftfreq(len(out) - 8192, 1 / SR)
    energy_near = sum(spectrum[np.abs(freqs - f) < 15].__pow__(2).sum() for f in (440.0, 554.37))
    assert energy_near / (spectrum**2).sum() > 0.95  # the energy stays on the two partials


def test_parameters_are_deterministic_and_within_ranges():
    cfg = AugmentConfig(expansion=10)
    draws = [draw_params(cfg, variant_rng(cfg, "a/b.wav", 3, v), v) for v in range(11)]
    again = [draw_params(cfg, variant_rng(cfg, "a/b.wav", 3, v), v) for v in range(11)]
    assert draws[0] == AugmentParams() and draws[0].is_clean
    for p, q in zip(draws, again, strict=True):
        assert p.pitch_semitones == q.pitch_semitones and p.speed == q.speed and p.gain == q.gain
        assert (math.isnan(p.noise_snr_db) and math.isnan(q.noise_snr_db)) or p.noise_snr_db == q.noise_snr_db
    assert draws[1:] != [draw_params(cfg, variant_rng(cfg, "a/c.wav", 3, v), v) for v in range(1, 11)]
    many = [draw_params(cfg, variant_rng(cfg, "x.wav", c, v), v) for c in range(40) for v in range(1, 11)]
    pitched = [p.pitch_semitones for p in many if p.pitch_semitones != 0]
    assert 0.35 < len(pitched) / len(many) < 0.65 and all(-2 <= s <= 2 for s in pitched)
    assert all(0.9 <= p.speed <= 1.1 and 0.7 <= p.gain <= 1.3 for p in many)
    snrs = [p.noise_snr_db for p in many if not math.isnan(p.noise_snr_db)]
    assert 0.2 < len(snrs) / len(many) < 0.4 and all(15 <= s <= 40 for s in snrs)


def test_noise_meets_its_snr_and_volume_is_not_undone():
    cfg = PrepareConfig(chunk_seconds=1.0)
    starts = [0]
    window = chunk_windows(_sine(440.0, 1.5), starts, cfg.chunk_length, cfg.margin, 1.1)[0]
    rng = np.random.default_rng(0)
    clean, _ = apply_params(window, AugmentParams(), cfg.chunk_length, cfg.margin, SR, rng)
    louder, _ = apply_params(window, AugmentParams(gain=1.3), cfg.chunk_length, cfg.margin, SR, rng)
    assert np.allclose(louder, clean * 1.3, atol=1e-6)  # no per-chunk normalisation
    noisy, applied = apply_params(window, AugmentParams(noise_snr_db=20.0), cfg.chunk_length, cfg.margin, SR, rng)
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert abs(snr - 20.0) < 0.5 and applied.noise_snr_db == 20.0
    silent, applied = apply_params(np.zeros_like(window), AugmentParams(noise_snr_db=20.0), cfg.chunk_length,
                                   cfg.margin, SR, rng)
    assert not silent.any() and math.isnan(applied.noise_snr_db)  # reported as not applied


def test_speed_variant_reads_past_the_chunk_without_a_seam():
    cfg = PrepareConfig(chunk_seconds=1.0)
    audio = _sine(300.0, 3.0)
    starts = chunk_starts(len(audio), cfg.chunk_length, cfg.min_tail)
    windows = chunk_windows(audio, starts, cfg.chunk_length, cfg.margin, 1.1)
    out, _ = apply_params(windows[1], AugmentParams(speed=1.1), cfg.chunk_length, cfg.margin, SR,
                          np.random.default_rng(0))
    assert len(out) == cfg.chunk_length
    level = np.sqrt(np.mean(out.reshape(-1, 480) ** 2, axis=1))  # 10 ms frames
    assert level.min() > 0.3  # no gap at either end: context filled it


def test_chunking_pads_the_tail_and_keeps_short_files():
    assert chunk_starts(100, 1000, 50) == [0]  # shorter than one chunk: still one chunk
    assert chunk_starts(2030, 1000, 50) == [0, 1000]  # a 30-sample tail is dropped
    assert chunk_starts(2060, 1000, 50) == [0, 1000, 2000]  # a 60-sample tail is kept, padded
    audio = np.arange(1, 2061, dtype=np.float32)
    windows = chunk_windows(audio, [0, 1000, 2000], 1000, 10, 1.1)
    assert windows.shape == (3, window_length(1000, 10, 1.1))
    assert windows[0, :10].sum() == 0 and windows[0, 10] == 1  # context before the file is zeros
    assert windows[1, 10] == 1001 and windows[2, 10 + 60:].sum() == 0  # the tail is zero-padded


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="expansion"):
        AugmentConfig(expansion=-1)
    with pytest.raises(ValueError, match="speed_range"):
        AugmentConfig(speed_range=(1.2, 0.9))
    with pytest.raises(ValueError, match="pitch_probability"):
        AugmentConfig(pitch_probability=1.5)
    with pytest.raises(ValueError, match="chunk_seconds"):
        PrepareConfig(chunk_seconds=0)
    with pytest.raises(ValueError, match="unknown"):
        PrepareConfig.from_dict({"chunk_secs": 2})
    cfg = PrepareConfig(augment=AugmentConfig(expansion=3))
    assert PrepareConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.fingerprint() != PrepareConfig().fingerprint()
    from dataclasses import replace
    assert replace(cfg, spectral=replace(cfg.spectral, phase="cumsum")).fingerprint() == cfg.fingerprint()
