"""Audio descriptors: each against a reference (librosa or its definition) and each monotonic in its quality."""

from __future__ import annotations

import time

import librosa
import numpy as np
import pytest
from scipy.signal import butter, sosfilt
from scipy.stats import spearmanr

from distill.audio_io import load_audio
from distill.descriptors import (
    DESCRIPTORS,
    FLATNESS_GATE_DB,
    HOP,
    UNITS,
    DescriptorError,
    describe,
    describe_batch,
    flatness_bands,
    onset_times,
)

SR = 48000


def _t(seconds: float = 2.0) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def _sine(freq: float, seconds: float = 2.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * _t(seconds))).astype(np.float32)


def _noise(seconds: float = 2.0, seed: int = 0, amp: float = 0.1) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def _am(mod_freq: float, depth: float, carrier: float = 1000.0) -> np.ndarray:
    t = _t()
    return (0.4 * (1 + depth * np.sin(2 * np.pi * mod_freq * t)) * np.sin(2 * np.pi * carrier * t)).astype(np.float32)


def _clicks(times, seconds: float = 2.0, noise: float = 0.0) -> np.ndarray:
    x = noise * np.random.default_rng(1).standard_normal(int(seconds * SR))
    x[(np.asarray(times) * SR).astype(int)] += 1.0
    return x.astype(np.float32)


def _tilted_noise(db_per_octave: float) -> np.ndarray:
    """White noise through a spectral tilt pivoting at 1 kHz."""
    spectrum = np.fft.rfft(_noise(seed=3))
    freqs = np.maximum(np.fft.rfftfreq(2 * SR, 1 / SR), 20.0)
    shaped = np.fft.irfft(spectrum * (freqs / 1000.0) ** (db_per_octave / 6.0206), 2 * SR)
    return (0.3 * shaped / np.abs(shaped).max()).astype(np.float32)


def _band_noise(lo: float, hi: float, seed: int = 4) -> np.ndarray:
    sos = butter(4, [lo, hi], "bandpass", fs=SR, output="sos")
    return sosfilt(sos, _noise(seed=seed, amp=0.3)).astype(np.float32)


def _chord(freqs=(523.25, 659.25, 783.99)) -> np.ndarray:
    return sum(0.2 * np.sin(2 * np.pi * f * _t()) for f in freqs).astype(np.float32)


def _values(signals, name: str) -> list[float]:
    return [describe(x, SR)[name] for x in signals]


def _rho(values, params) -> float:
    return float(spearmanr(params, values)[0])


def test_describe_gives_every_descriptor_as_a_float_with_a_unit():
    values = describe(_noise(), SR)
    assert tuple(values) == DESCRIPTORS
    assert all(type(v) is float and np.isfinite(v) for v in values.values())
    assert set(UNITS) == set(DESCRIPTORS)


# --- maths against references ------------------------------------------------------------------


@pytest.mark.parametrize("freq", [300.0, 1000.0, 5000.0])
def test_brightness_is_librosa_centroid_on_a_sine(freq):
    y = _sine(freq)
    ref = librosa.feature.spectral_centroid(y=y, sr=SR, n_fft=2048, hop_length=512)[0]
    assert describe(y, SR)["brightness"] == pytest.approx(ref[2:-2].mean(), rel=0.01)
    assert describe(y, SR)["brightness"] == pytest.approx(freq, rel=0.002)


def test_brightness_is_power_weighted_centroid_on_a_harmonic_tone():
    # Several partials: the weighting matters, so compare with librosa fed our weighting (power).
    y = sum(0.3 / k * np.sin(2 * np.pi * 220 * k * _t()) for k in range(1, 12)).astype(np.float32)
    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=512, window="hann", center=True)) ** 2
    ref = librosa.feature.spectral_centroid(S=power, sr=SR, n_fft=2048)[0]
    assert describe(y, SR)["brightness"] == pytest.approx(ref.mean(), rel=0.01)


def _reference_noisiness(y: np.ndarray) -> float:
    """The documented definition, with librosa's STFT and librosa's flatness applied band by band."""
    magnitude = np.abs(librosa.stft(y.astype(np.float64), n_fft=2048, hop_length=512, window="hann", center=True,
                                    pad_mode="constant"))
    energy = (magnitude ** 2).sum(axis=0)
    keep = energy >= energy.max() * 10 ** (FLATNESS_GATE_DB / 10)
    weighted = total = 0.0
    for lo, hi in flatness_bands(SR):
        flatness = librosa.feature.spectral_flatness(S=magnitude[lo:hi], power=2.0)[0]
        weight = (magnitude[lo:hi] ** 2).sum(axis=0) * keep
        weighted += (weight * flatness).sum()
        total += weight.sum()
    return weighted / total


def test_noisiness_is_librosa_flatness_per_band():
    # Tonal, band-noise and broadband parts in different bands, and a fade-in: every band and the
    # frame weighting matter.
    t = _t()
    tone = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 6))
    y = (tone + _band_noise(2000.0, 4000.0) + 0.3 * _noise(seed=5, amp=0.01)) * np.minimum(t / 0.5, 1.0)
    y = y.astype(np.float32)
    reference = _reference_noisiness(y)
    assert 0.05 < reference < 0.5
    assert describe(y, SR)["noisiness"] == pytest.approx(reference, rel=1e-4)


def test_noisiness_of_white_noise_and_a_sine():
    # Many-bin periodogram bias: exp(-γ); the few-bin bands read a little flatter.
    assert describe(_noise(), SR)["noisiness"] == pytest.approx(np.exp(-np.euler_gamma), rel=0.03)
    for freq in (45.0, 94.0, 150.0, 440.0, 1000.0, 5000.0, 12000.0):  # bass tones too: no band is too narrow
        assert describe(_sine(freq), SR)["noisiness"] < 0.02, freq


def test_band_limited_noise_reads_noisy():
    # Whole-spectrum flatness read this noise as tonal as a sine (1e-4); per band it is noise.
    noise = describe(_band_noise(500.0, 1000.0), SR)["noisiness"]
    assert noise > 0.4
    assert noise > 10 * describe(_sine(707.0), SR)["noisiness"]
    assert noise > 10 * describe(_chord(), SR)["noisiness"]


def test_noisy_examples_read_noisier_than_tonal_ones(example_dir):
    values = {name: describe(load_audio(example_dir / f"{name}{ext}"), SR)["noisiness"]
              for name, ext in [("wind", ".wav"), ("rain", ".wav"), ("snare", ".wav"), ("pluck_a2", ".wav"),
                                ("pluck_e4", ".wav"), ("bell_c5", ".wav"), ("bell_g3", ".flac"), ("kick", ".wav"),
                                ("pad_am", ".wav"), ("melody", ".wav")]}
    noisy = [values.pop(name) for name in ("wind", "rain", "snare")]
    assert min(noisy) > 0.2
    assert max(values.values()) < 0.15
    assert min(noisy) > 2 * max(values.values())


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000, 96000, 192000])
def test_flatness_bands_are_contiguous_and_wide_enough(rate):
    bands = flatness_bands(rate)
    assert all(hi - lo >= 8 for lo, hi in bands)
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:], strict=False))
    freqs = np.arange(1025) * rate / 2048
    assert 20.0 <= freqs[bands[0][0]] and freqs[bands[-1][1] - 1] <= min(16000.0, rate / 2)
    if rate in (44100, 48000):
        assert len(bands) == 7


def test_loudness_is_rms_in_dbfs():
    x = _noise(amp=0.2)
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    assert describe(x, SR)["loudness"] == pytest.approx(20 * np.log10(rms), abs=1e-3)
    assert describe(_sine(1000.0, amp=1.0), SR)["loudness"] == pytest.approx(-3.0103, abs=1e-3)
    assert describe(2 * x, SR)["loudness"] - describe(x, SR)["loudness"] == pytest.approx(6.0206, abs=1e-3)


def test_roughness_reads_am_depth_in_the_band_only():
    depths = [0.0, 0.25, 0.5, 1.0]
    values = _values([_am(70.0, m) for m in depths], "roughness")
    assert _rho(values, depths) == 1.0
    assert values == pytest.approx(depths, abs=0.02)  # sinusoidal AM of depth m reads m
    assert describe(_am(4.0, 1.0), SR)["roughness"] < 0.02  # tremolo, below the band
    assert describe(_am(400.0, 1.0, carrier=3000.0), SR)["roughness"] < 0.02  # above the band
    assert describe(_sine(440.0), SR)["roughness"] < 0.01


def test_warmth_compares_low_mids_with_highs():
    noise = _noise(seed=2)
    low = sosfilt(butter(4, 500, "lowpass", fs=SR, output="sos"), noise).astype(np.float32)
    high = sosfilt(butter(4, 2000, "highpass", fs=SR, output="sos"), noise).astype(np.float32)
    assert describe(low, SR)["warmth"] > 20.0 > -20.0 > describe(high, SR)["warmth"]
    # White noise: 450 Hz of band against 22 kHz of band.
    assert describe(noise, SR)["warmth"] == pytest.approx(10 * np.log10(450 / 22000), abs=0.5)
    assert abs(describe(_sine(200.0), SR)["warmth"]) <= 60.0  # soft floor keeps band-limited sounds bounded


# --- onsets --------------------------------------------------------------------------------------

CLICK_TIMES = [0.2, 0.45, 0.6, 0.9, 1.1, 1.35, 1.6, 1.8]


@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_onset_times_on_a_click_train(noise):
    found = onset_times(_clicks(CLICK_TIMES, noise=noise), SR)
    assert len(found) == len(CLICK_TIMES)
    assert np.abs(found - CLICK_TIMES).max() <= HOP / SR


def test_onset_count_agrees_with_librosa():
    clicks = _clicks(CLICK_TIMES)
    ref = librosa.onset.onset_detect(y=clicks, sr=SR, hop_length=512, units="time")
    assert len(ref) == len(CLICK_TIMES)
    assert describe(clicks, SR)["density"] == pytest.approx(len(ref) / 2.0)


@pytest.mark.parametrize("make", [_noise, lambda: _sine(440.0), lambda: _am(4.0, 0.5)], ids=["noise", "sine", "trem"])
def test_steady_sounds_have_no_onsets(make):
    # Including the clip's own start and end, which a padded STFT would otherwise count as events.
    assert len(onset_times(make(), SR)) == 0


# --- monotonic responses (what the slider labels rely on) ------------------------------------------


def test_brightness_rises_with_frequency():
    freqs = [100, 200, 400, 800, 1600, 3200, 6400]
    assert _rho(_values([_sine(f) for f in freqs], "brightness"), freqs) == 1.0


def test_warmth_follows_a_tilt_filter():
    slopes = [-6, -4, -2, 0, 2, 4, 6]  # dB/octave: negative = darker = warmer
    assert _rho(_values([_tilted_noise(s) for s in slopes], "warmth"), slopes) <= -0.95


@pytest.mark.parametrize(("tone", "noise"), [(440.0, None), (707.0, (500.0, 1000.0))], ids=["white", "band"])
def test_noisiness_rises_with_noise_mix(tone, noise):
    mixes = np.linspace(0.0, 1.0, 7)
    hiss = _noise(amp=0.3) if noise is None else _band_noise(*noise)
    signals = [((1 - a) * _sine(tone) + a * hiss).astype(np.float32) for a in mixes]
    assert _rho(_values(signals, "noisiness"), mixes) >= 0.95


def test_loudness_rises_with_gain():
    gains = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
    assert _rho(_values([g * _noise() for g in gains], "loudness"), gains) == 1.0


def test_roughness_rises_with_am_depth():
    depths = np.linspace(0.0, 1.0, 7)
    assert _rho(_values([_am(70.0, m) for m in depths], "roughness"), depths) >= 0.95


def test_density_rises_with_click_count():
    counts = [0, 2, 4, 6, 8, 10, 12]
    signals = [_clicks(np.linspace(0.15, 1.85, n) if n else [], noise=1e-3) for n in counts]
    values = _values(signals, "density")
    assert _rho(values, counts) >= 0.95
    assert values == pytest.approx([n / 2.0 for n in counts])


def test_descriptors_other_than_loudness_ignore_gain():
    x = (_sine(220.0) + _noise() + _clicks([0.5, 1.0, 1.5])).astype(np.float32)
    loud, quiet = describe(x, SR), describe(0.001 * x, SR)
    for name in ("brightness", "warmth", "noisiness", "roughness", "density"):
        assert quiet[name] == pytest.approx(loud[name], rel=1e-3, abs=1e-6), name


# --- edge cases ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [2.0, 0.1, 0.001])
def test_silence_has_defined_values(seconds):
    values = describe(np.zeros(int(seconds * SR), dtype=np.float32), SR)
    assert values == {"brightness": 0.0, "warmth": 0.0, "noisiness": 0.0, "loudness": -120.0, "roughness": 0.0,
                      "density": 0.0}


@pytest.mark.parametrize("make", [lambda: _noise(0.1), lambda: _sine(440.0, 0.1), lambda: 1e-9 * _noise(0.1),
                                  lambda: np.ones(1, dtype=np.float32)], ids=["noise", "sine", "faint", "one-sample"])
def test_short_clips_are_finite(make):
    assert all(np.isfinite(v) for v in describe(make(), SR).values())


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 96000])
def test_other_sample_rates(rate):
    t = np.arange(rate) / rate
    values = describe((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    assert values["brightness"] == pytest.approx(440.0, rel=0.01)
    assert all(np.isfinite(v) for v in values.values())


def test_batch_equals_one_by_one():
    clips = np.stack([_noise(), _sine(440.0), np.zeros(2 * SR, dtype=np.float32), _am(70.0, 0.5)])
    for got, clip in zip(describe_batch(clips, SR), clips, strict=True):
        want = describe(clip, SR)
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(
    ("audio", "rate", "needle"),
    [
        (np.zeros((2, 100), dtype=np.float32), SR, "shape"),
        (np.zeros(0, dtype=np.float32), SR, "nothing to measure"),
        (np.array([0.0, np.nan], dtype=np.float32), SR, "NaN"),
        (np.zeros(100, dtype=np.int16), SR, "float"),
        (np.zeros(100, dtype=np.float32), 0, "sample_rate"),
    ],
)
def test_bad_input_is_refused(audio, rate, needle):
    with pytest.raises(DescriptorError, match=needle):
        describe(audio, rate)


def test_cheap_enough_for_the_latent_analysis():
    # Measured ~5-7 ms for 2 s at 48 kHz on 2 CPU threads; the bound only catches gross regressions.
    clip = _noise()
    describe(clip, SR)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        describe(clip, SR)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.05
