"""Spatial output: stereo mid/side against its algebra, binaural against Woodworth and Brown & Duda
(re-derived here from the papers' formulas), depth against the room's reflection table, and validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.signal

from distill import binaural
from distill.binaural import HEAD_RADIUS_M, SPEED_OF_SOUND, itd_seconds, render_binaural, side_filter
from distill.spatial import (
    DIRECT_DROP_DB,
    REFLECTIONS,
    SPATIAL_MODES,
    SpatialError,
    SpatialSettings,
    spatialize,
)

SR = 48000


def _noise(seconds: float = 1.0, seed: int = 0, sample_rate: int = SR) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sample_rate))).astype(np.float32)


def _click(length: int = 6000, at: int = 1000) -> np.ndarray:
    x = np.zeros(length, np.float32)
    x[at] = 1.0
    return x


def _band_db(x: np.ndarray, low: float, high: float, sample_rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / sample_rate)
    return 10 * math.log10(spectrum[(freqs >= low) & (freqs < high)].sum())


def _lag_samples(late: np.ndarray, early: np.ndarray, upsample: int = 1) -> float:
    """Lag (samples, sub-sample) by which ``late`` follows ``early``: the cross-correlation's peak,
    refined by a parabola through it and its neighbours (on the ``upsample``× interpolated
    cross-correlation, zero-padding the cross-spectrum, when ``upsample`` > 1)."""
    n = 1 << math.ceil(math.log2(2 * len(late)))
    cross = np.fft.irfft(np.fft.rfft(late, n) * np.conj(np.fft.rfft(early, n)), n * upsample)
    k = int(np.argmax(cross))
    y0, y1, y2 = cross[k - 1], cross[k], cross[(k + 1) % len(cross)]
    peak = k + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    return (peak - len(cross) if peak > len(cross) / 2 else peak) / upsample


def _brown_duda(freqs: np.ndarray, ear_angle_deg: float) -> np.ndarray:
    """Brown & Duda (1998) eq. 2 with α_min 0.1, θ_min 150°, a = 8.75 cm, c = 343 m/s."""
    alpha = 1.05 + 0.95 * math.cos(math.radians(ear_angle_deg) / math.radians(150) * math.pi)
    w0 = 343.0 / 0.0875
    w = 2 * np.pi * freqs
    return np.abs((1 + 1j * alpha * w / (2 * w0)) / (1 + 1j * w / (2 * w0)))


# --- stereo ----------------------------------------------------------------------------------------

def test_stereo_width_zero_is_the_mono_take_in_both_channels():
    x = _noise()
    out = spatialize(x, SR, SpatialSettings("stereo", width=0.0))
    assert out.shape == (len(x), 2) and out.dtype == np.float32
    assert np.array_equal(out[:, 0], x) and np.array_equal(out[:, 1], x)


@pytest.mark.parametrize("width", [0.1, 0.5, 1.0])
def test_stereo_folds_down_to_the_mono_take(width):
    x = _noise()
    out = spatialize(x, SR, SpatialSettings("stereo", width=width))
    np.testing.assert_allclose((out[:, 0] + out[:, 1]) / 2, x, rtol=0, atol=1e-7)


def test_side_energy_grows_with_width_as_its_square():
    x = _noise()
    widths = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    energies = []
    for width in widths:
        out = spatialize(x, SR, SpatialSettings("stereo", width=width))
        energies.append(float(np.mean(((out[:, 0] - out[:, 1]) / 2) ** 2)))
    assert energies[0] == 0 and (np.diff(energies) > 0).all()
    np.testing.assert_allclose(energies, energies[-1] * widths ** 2, rtol=1e-4)


def test_side_is_decorrelated_from_mid_and_channels_at_full_width():
    x = _noise(2.0)
    out = spatialize(x, SR, SpatialSettings("stereo", width=1.0))
    mid, side = (out[:, 0] + out[:, 1]) / 2, (out[:, 0] - out[:, 1]) / 2
    assert abs(np.corrcoef(mid, side)[0, 1]) < 0.05
    assert abs(np.corrcoef(out[:, 0], out[:, 1])[0, 1]) < 0.05  # uncorrelated channels, never hard-panned
    assert min(np.mean(out[:, 0] ** 2), np.mean(out[:, 1] ** 2)) > 0.9 * np.mean(x ** 2)


@pytest.mark.parametrize("sample_rate", [24000, 48000])
def test_decorrelator_is_an_all_pass_then_the_bass_high_pass(sample_rate):
    """|D| = the 2nd-order 150 Hz Butterworth high-pass exactly: the all-passes add no colour."""
    taps = side_filter(sample_rate)
    freqs = np.fft.rfftfreq(1 << 18, 1 / sample_rate)
    measured = np.abs(np.fft.rfft(taps, 1 << 18))
    sos = scipy.signal.butter(2, 150.0, "highpass", fs=sample_rate, output="sos")
    _, expected = scipy.signal.sosfreqz(sos, worN=freqs, fs=sample_rate)
    band = freqs > 20
    np.testing.assert_allclose(20 * np.log10(measured[band] / np.abs(expected[band])), 0, atol=0.01)
    x = _noise(sample_rate=sample_rate)
    out = spatialize(x, sample_rate, SpatialSettings("stereo", width=1.0))
    side = (out[:, 0] - out[:, 1]) / 2
    assert _band_db(side, 20, 60, sample_rate) < _band_db(x, 20, 60, sample_rate) - 15  # bass stays mono


# --- binaural --------------------------------------------------------------------------------------

def test_itd_is_woodworth():
    a_c = HEAD_RADIUS_M / SPEED_OF_SOUND
    assert itd_seconds(90) == pytest.approx(a_c * (math.pi / 2 + 1))
    assert itd_seconds(90) == pytest.approx(656e-6, abs=1e-6)
    assert itd_seconds(30) == pytest.approx(a_c * (math.pi / 6 + 0.5))
    assert itd_seconds(-30) == -itd_seconds(30) and itd_seconds(0) == 0
    assert itd_seconds(135) == pytest.approx(itd_seconds(45))  # front/back symmetric
    assert itd_seconds(90, 60) == pytest.approx(a_c * (math.asin(0.5) + 0.5))
    assert itd_seconds(90, 90) == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("azimuth", [0, 30, -30, 60, 90, 135, -150])
def test_interaural_delay_matches_woodworth(azimuth):
    x = _noise()
    out = render_binaural(x, SR, azimuth, 0, 0)
    expected = itd_seconds(azimuth) * SR
    # Plain parabolic interpolation of the cross-correlation is biased by up to ~0.1 sample; on the 8×
    # interpolated cross-correlation the measured ITD is Woodworth's to < 0.01 sample.
    assert _lag_samples(out[:, 0], out[:, 1]) == pytest.approx(expected, abs=0.25)
    assert _lag_samples(out[:, 0], out[:, 1], upsample=8) == pytest.approx(expected, abs=0.02)


def test_far_ear_is_shadowed_at_high_frequencies_only():
    x = _noise(2.0)
    out = render_binaural(x, SR, 90, 0, 0)  # right: the left ear is the far one
    left, right = out[:, 0], out[:, 1]
    assert _band_db(left, 4000, 20000) < _band_db(right, 4000, 20000) - 6
    assert abs(_band_db(left, 20, 300) - _band_db(right, 20, 300)) < 1.5
    out = render_binaural(x, SR, -90, 0, 0)  # mirrored
    assert _band_db(out[:, 1], 4000, 20000) < _band_db(out[:, 0], 4000, 20000) - 6


@pytest.mark.parametrize(("azimuth", "elevation"), [(90, 0), (30, 0), (-120, 0), (0, 0)])
def test_ear_responses_are_brown_duda_times_the_elevation_and_rear_cues(azimuth, elevation):
    out = render_binaural(_click(8192, 2000), SR, azimuth, elevation, 0)
    freqs = np.fft.rfftfreq(8192, 1 / SR)
    sin_lat = math.sin(math.radians(azimuth)) * math.cos(math.radians(elevation))
    cues = binaural.pinna_notch_gain(freqs, elevation) * binaural.rear_shelf_gain(freqs, azimuth, elevation)
    band = (freqs > 100) & (freqs < 16000)
    for ear, axis in ((0, -1.0), (1, 1.0)):
        angle = math.degrees(math.acos(axis * sin_lat))
        measured = np.abs(np.fft.rfft(out[:, ear]))
        err_db = 20 * np.log10(measured[band] / (_brown_duda(freqs, angle) * cues)[band])
        assert np.abs(err_db).max() < 0.3, (ear, np.abs(err_db).max())
    if azimuth == 90:  # near ear boosted, far ear cut at high frequencies
        at_10k = np.argmin(np.abs(freqs - 10000))
        assert np.abs(np.fft.rfft(out[:, 1]))[at_10k] > 1.5 > 0.5 > np.abs(np.fft.rfft(out[:, 0]))[at_10k]


def test_elevation_moves_the_pinna_notch():
    freqs = np.fft.rfftfreq(8192, 1 / SR)
    low, high = (np.abs(np.fft.rfft(render_binaural(_click(8192, 2000), SR, 0, el, 0)[:, 0])) for el in (-40, 60))
    at_6k, at_10k = np.argmin(np.abs(freqs - 6000)), np.argmin(np.abs(freqs - 10000))
    assert 20 * np.log10(high[at_6k] / low[at_6k]) > 8  # the notch at 6 kHz for −40° …
    assert 20 * np.log10(low[at_10k] / high[at_10k]) > 8  # … and at 10 kHz for +60°
    assert binaural.notch_frequency(-40) == 6000 and binaural.notch_frequency(60) == 10000


def test_width_spreads_the_binaural_image():
    """Interaural coherence (the cross-correlation's peak within ±1 ms) falls as the width grows."""
    x = _noise(2.0)
    coherence = []
    for width in (0.0, 0.5, 1.0):
        out = render_binaural(x, SR, 0, 0, width).astype(np.float64)
        cross = scipy.signal.correlate(out[:, 0], out[:, 1], mode="full", method="fft")
        centre, reach = len(out) - 1, int(0.001 * SR)
        coherence.append(np.abs(cross[centre - reach:centre + reach + 1]).max()
                         / math.sqrt(np.sum(out[:, 0] ** 2) * np.sum(out[:, 1] ** 2)))
    assert coherence[0] > 0.99 and coherence[0] > coherence[1] > coherence[2]
    assert np.array_equal(render_binaural(x, SR, 20, 10, 0), spatialize(x, SR, SpatialSettings("binaural", 0, 20, 10)))


def test_width_is_two_virtual_sources_fed_with_mid_plus_and_minus_side():
    x, width, azimuth = _noise(), 0.6, 20.0
    side = scipy.signal.oaconvolve(x, side_filter(SR).astype(np.float32))[:len(x)]
    spread = width * binaural.SPREAD_DEG
    expected = (render_binaural(x + width * side, SR, azimuth - spread, 5, 0)
                + render_binaural(x - width * side, SR, azimuth + spread, 5, 0)) / 2
    out = render_binaural(x, SR, azimuth, 5, width)
    inside = slice(0, len(x) - 400)  # the last samples of ``expected`` lack the side cut off at the end
    np.testing.assert_allclose(out[inside], expected[inside], rtol=0, atol=2e-6)


# --- depth -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["stereo", "binaural"])
def test_depth_zero_is_dry_and_depth_adds_reflections_after_the_direct_sound(mode):
    click = _click(6000, 1000)
    dry = spatialize(click, SR, SpatialSettings(mode, width=0.0))
    wet = spatialize(click, SR, SpatialSettings(mode, width=0.0, depth=0.5))
    assert np.array_equal(spatialize(click, SR, SpatialSettings(mode, width=0.3, depth=0.0)),
                          spatialize(click, SR, SpatialSettings(mode, width=0.3)))
    after = slice(1000 + int(0.0045 * SR), 1000 + int(0.070 * SR))  # past the direct sound's ±4 ms FIR
    assert np.sum(dry[after] ** 2) < 1e-12
    assert np.sum(wet[after] ** 2) > 0.01
    # The direct sound is turned down by DIRECT_DROP_DB × depth (reflections start only 7 ms later).
    direct = slice(1000 - 200, 1000 + 200)
    ratio = np.abs(wet[direct]).max() / np.abs(dry[direct]).max()
    assert ratio == pytest.approx(10 ** (-DIRECT_DROP_DB * 0.5 / 20), rel=1e-3)


def test_stereo_reflections_arrive_at_the_table_delays_on_alternating_sides():
    out = spatialize(_click(6000, 1000), SR, SpatialSettings("stereo", width=0.0, depth=1.0))
    for delay_ms, azimuth, _, _ in REFLECTIONS:
        at = 1000 + delay_ms / 1000 * SR
        window = slice(int(at) - 20, int(at) + 21)
        both = np.abs(out[window]).sum(axis=1)
        assert abs(int(at) - 20 + int(np.argmax(both)) - at) <= 1, delay_ms
        left, right = np.abs(out[window]).max(axis=0)
        if abs(azimuth) > 30:
            assert (left > right) == (azimuth < 0), delay_ms


# --- settings, validation, shapes ------------------------------------------------------------------

@pytest.mark.parametrize(("settings", "field"), [
    (SpatialSettings("surround"), "mode"),
    (SpatialSettings("stereo", width=1.5), "width"),
    (SpatialSettings("stereo", width=float("nan")), "width"),
    (SpatialSettings("stereo", width=True), "width"),
    (SpatialSettings("stereo", width="wide"), "width"),
    (SpatialSettings("binaural", azimuth=200), "azimuth"),
    (SpatialSettings("binaural", elevation=-91), "elevation"),
    (SpatialSettings("binaural", depth=-0.1), "depth"),
    (SpatialSettings("stereo", azimuth=30), "azimuth"),
    (SpatialSettings("mono", elevation=10), "elevation"),
    (SpatialSettings("mono", depth=0.5), "depth"),
])
def test_bad_settings_name_the_field(settings, field):
    with pytest.raises(SpatialError) as caught:
        settings.validate()
    assert caught.value.field == field and str(caught.value).startswith(f"{field}: ")
    with pytest.raises(SpatialError, match=f"^{field}: "):
        spatialize(_noise(0.1), SR, settings)


def test_settings_round_trip_through_json():
    settings = SpatialSettings("binaural", width=0.25, azimuth=-45, elevation=10, depth=0.5)
    settings.validate()
    data = json.loads(json.dumps(settings.to_dict()))
    assert SpatialSettings.from_dict(data) == settings
    assert SpatialSettings.from_dict({"mode": "stereo", "width": 1}).width == 1.0
    assert SpatialSettings.from_dict({}) == SpatialSettings()
    assert SpatialSettings().channels == 1 and SpatialSettings("stereo").channels == 2
    SpatialSettings("mono", width=1.0).validate()  # width is ignored in mono, not refused
    with pytest.raises(SpatialError, match="^spread: unknown setting"):
        SpatialSettings.from_dict({"mode": "stereo", "spread": 1})
    with pytest.raises(SpatialError, match="^width: "):
        SpatialSettings.from_dict({"mode": "stereo", "width": 2})
    with pytest.raises(SpatialError, match="^spatial: "):
        SpatialSettings.from_dict(["stereo"])


def test_bad_audio_and_rate_name_the_field():
    with pytest.raises(SpatialError, match="^audio: "):
        spatialize(np.zeros((100, 2), np.float32), SR, SpatialSettings("stereo"))
    with pytest.raises(SpatialError, match="^audio: "):
        spatialize(np.array([0.0, np.nan], np.float32), SR, SpatialSettings("stereo"))
    with pytest.raises(SpatialError, match="^sample_rate: "):
        spatialize(_noise(0.1), 48000.0, SpatialSettings("stereo"))
    with pytest.raises(SpatialError, match="^azimuth: "):
        render_binaural(_noise(0.1), SR, azimuth=181)


@pytest.mark.parametrize("mode", SPATIAL_MODES)
@pytest.mark.parametrize(("length", "sample_rate"), [(4800, 48000), (2400, 24000), (12345, 48000), (1, 48000),
                                                     (0, 48000)])
def test_output_length_and_shape(mode, length, sample_rate):
    x = _noise(length / sample_rate, sample_rate=sample_rate)[:length]
    settings = SpatialSettings(mode, width=np.float64(0.7), depth=0.0 if mode == "mono" else np.float64(0.4),
                               azimuth=40 if mode == "binaural" else 0)
    out = spatialize(x, sample_rate, settings)
    assert out.shape == (length, settings.channels) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert np.array_equal(out, spatialize(x, sample_rate, settings))  # deterministic
    if mode == "mono":
        assert np.array_equal(out[:, 0], x)
