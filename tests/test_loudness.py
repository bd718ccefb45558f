"""Loudness: BS.1770-4 integrated loudness against pyloudnorm and the standard's reference values, true
peak against exactly known inter-sample peaks, and normalisation to targets under the true-peak ceiling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.signal

from distill import loudness
from distill.loudness import (
    LIMITER_HOLD_S,
    LIMITER_SMOOTH_S,
    TARGET_RANGE_LUFS,
    TRUE_PEAK_CEILING_DBTP,
    LoudnessError,
    LoudnessReport,
    integrated_loudness,
    k_weighting_sos,
    match_loudness,
    normalize_loudness,
    true_peak_dbtp,
)

RATE = 48000
SLACK_DB = 0.05  # the promise: true peak ≤ ceiling + 0.05 dB
# BS.1770-4 Annex 1, Tables 1 and 2: the K-weighting biquads at 48 kHz (b0 b1 b2 a0 a1 a2).
ITU_48K = np.array([[1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241, 0.73248077421585],
                    [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621]])


def seconds(s, rate=RATE):
    return np.arange(round(s * rate)) / rate


def sine(freq, dbfs, s, rate=RATE, phase=0.0):
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * seconds(s, rate) + phase)).astype(np.float32)


def noise_bursts(s=4.0, rate=RATE, seed=1):
    """Decaying noise hits (300 ms, τ 80 ms) every 500 ms at random levels: a percussive, gated take."""
    rng = np.random.default_rng(seed)
    x = np.zeros(round(s * rate))
    n = round(0.3 * rate)
    for start in range(0, x.size - n, round(0.5 * rate)):
        x[start:start + n] += rng.standard_normal(n) * np.exp(-np.arange(n) / (0.08 * rate)) * rng.uniform(0.1, 0.5)
    return x.astype(np.float32)


def decaying_sine(s=4.0, rate=RATE):
    """A plucked 220 Hz note with a 660 Hz partial, decaying over the take."""
    t = seconds(s, rate)
    return (0.5 * np.sin(2 * np.pi * 220 * t) * np.exp(-t) + 0.2 * np.sin(2 * np.pi * 660 * t) * np.exp(-2 * t)
            ).astype(np.float32)


def click_train(s=4.0, rate=RATE):
    """8 clicks/s: a 1 ms full-scale spike on a decaying 180 Hz body (τ 50 ms) — a peaky drum loop."""
    x = np.zeros(round(s * rate))
    t = seconds(0.2, rate)
    click = 0.15 * np.exp(-t / 0.05) * np.sin(2 * np.pi * 180 * t)
    spike = round(0.001 * rate)
    click[:spike] += np.hanning(2 * spike)[spike:] * np.sign(np.sin(2 * np.pi * 3000 * t[:spike]))
    for start in range(0, x.size - t.size, round(0.125 * rate)):
        x[start:start + t.size] += click
    return x.astype(np.float32)


def sparse_clicks(s=4.0, rate=RATE):
    """4 clicks/s of 30 ms (τ 4 ms) and digital silence between: too sparse to ever reach -14 LUFS."""
    x = np.zeros(round(s * rate))
    t = seconds(0.03, rate)
    click = 0.3 * np.exp(-t / 0.004) * np.sin(2 * np.pi * 1500 * t)
    for start in range(0, x.size - t.size, round(0.25 * rate)):
        x[start:start + t.size] += click
    return x.astype(np.float32)


SIGNALS = {"noise_bursts": noise_bursts, "decaying_sine": decaying_sine, "click_train": click_train}


# --------------------------------------------------------------------------------------------------
# Integrated loudness


def test_k_weighting_reproduces_the_standards_coefficients_at_48k():
    np.testing.assert_allclose(k_weighting_sos(RATE), ITU_48K, rtol=0, atol=1e-12)


def test_integrated_loudness_equals_pyloudnorm_with_the_standards_filters():
    pyln = pytest.importorskip("pyloudnorm")
    rng = np.random.default_rng(0)
    quiet_start = rng.standard_normal(3 * RATE) * 0.1
    quiet_start[:RATE] *= 0.01  # a second of -40 dB: the relative gate drops it
    cases = [
        (quiet_start, RATE),
        (np.stack([noise_bursts(3.0, 44100), 0.3 * decaying_sine(3.0, 44100)], axis=1), 44100),
        (rng.standard_normal((2 * 24000, 5)) * [0.1, 0.1, 0.05, 0.02, 0.02], 24000),  # Ls, Rs weigh 1.41
        (click_train(2.5), RATE),
    ]
    for audio, rate in cases:
        ours = integrated_loudness(audio.astype(np.float32), rate)
        # "DeMan" = the BS.1770 filters at any rate (ours too); lengths are whole 100 ms steps, so the
        # blocks are the same.
        reference = pyln.Meter(rate, filter_class="DeMan").integrated_loudness(audio.astype(np.float32))
        assert ours == pytest.approx(reference, abs=1e-4)
        # pyloudnorm's default filters are RBJ-cookbook approximations of the standard's: close, not equal.
        assert ours == pytest.approx(pyln.Meter(rate).integrated_loudness(audio), abs=0.1)


def test_reference_sines_read_their_standard_values():
    # BS.1770-4 Annex 1: a 0 dBFS 1 kHz sine into the left, centre or right channel reads -3.01 LKFS
    # (997 Hz: a frequency whose period is not a whole number of samples).
    assert integrated_loudness(sine(997, 0.0, 2.0), RATE) == pytest.approx(-3.01, abs=0.01)
    assert integrated_loudness(sine(997, -20.0, 2.0), RATE) == pytest.approx(-23.01, abs=0.01)
    # EBU Tech 3341 cases 1 and 2: a stereo 1 kHz sine at -23 (-33) dBFS in each channel reads -23 (-33) LUFS.
    for level in (-23.0, -33.0):
        tone = sine(1000, level, 20.0)
        assert integrated_loudness(np.stack([tone, tone], axis=1), RATE) == pytest.approx(level, abs=0.1)


@pytest.mark.parametrize("segments", [
    [(-36, 10), (-23, 60), (-36, 10)],  # EBU Tech 3341 case 3: the relative gate drops the -36 parts
    [(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)],  # case 4: the absolute gate drops the -72 parts
    [(-26, 20), (-20, 20.1), (-26, 20)],  # case 5: both levels count
])
def test_gating_follows_ebu_tech_3341(segments):
    levels = np.concatenate([np.full(round(s * RATE), 10 ** (db / 20), np.float32) for db, s in segments])
    tone = np.sin(2 * np.pi * 1000 * np.arange(levels.size) / RATE).astype(np.float32) * levels
    assert integrated_loudness(np.stack([tone, tone], axis=1), RATE) == pytest.approx(-23.0, abs=0.1)


def test_takes_shorter_than_a_block_are_one_block():
    pyln = pytest.importorskip("pyloudnorm")
    take = np.random.default_rng(2).standard_normal(4800).astype(np.float32) * 0.1  # 0.1 s
    with pytest.raises(ValueError):  # why we measure ourselves: pyloudnorm refuses anything under 400 ms
        pyln.Meter(RATE).integrated_loudness(take)
    weighted = scipy.signal.sosfilt(ITU_48K, take.astype(np.float64))
    expected = -0.691 + 10 * math.log10(np.mean(weighted ** 2))
    assert integrated_loudness(take, RATE) == pytest.approx(expected, abs=1e-6)
    assert integrated_loudness(sine(997, 0.0, 0.1), RATE) == pytest.approx(-3.01, abs=0.05)
    assert integrated_loudness(sine(997, 0.0, 0.0005), RATE) > -math.inf  # 24 samples still measure


def test_silence_and_takes_below_the_absolute_gate_read_minus_infinity():
    assert integrated_loudness(np.zeros((RATE, 2), np.float32), RATE) == -math.inf
    assert integrated_loudness(sine(997, -70.0, 1.0), RATE) == -math.inf  # -73 LUFS
    assert integrated_loudness(sine(997, -70.0, 0.1), RATE) == -math.inf  # the short path gates too
    assert true_peak_dbtp(np.zeros(4800, np.float32), RATE) == -math.inf


def test_chunked_processing_matches_one_piece(monkeypatch):
    take = np.stack([noise_bursts(3.0), click_train(3.0)], axis=1)
    whole = integrated_loudness(take, RATE), true_peak_dbtp(take, RATE)
    monkeypatch.setattr(loudness, "FILTER_CHUNK", 7777)
    monkeypatch.setattr(loudness, "PEAK_CHUNK", 997)
    assert integrated_loudness(take, RATE) == pytest.approx(whole[0], abs=1e-9)
    assert true_peak_dbtp(take, RATE) == pytest.approx(whole[1], abs=1e-4)


# --------------------------------------------------------------------------------------------------
# True peak


@pytest.mark.parametrize("rate", [48000, 192000])  # 4× below 176.4 kHz, 2× above
def test_true_peak_finds_the_inter_sample_peak(rate):
    # A sine at fs/4 with phase 45° has every sample at ±0.707 of its amplitude: the samples read 3 dB low.
    n = np.arange(rate // 2)
    tone = 0.5 * np.sin(np.pi / 2 * n + np.pi / 4)
    fade = round(0.01 * rate)  # a 10 ms fade in/out, so the take's ends ring no higher than the tone
    ramp = np.hanning(2 * fade)
    tone[:fade] *= ramp[:fade]
    tone[-fade:] *= ramp[fade:]
    tone = tone.astype(np.float32)
    assert 20 * np.log10(np.abs(tone).max()) == pytest.approx(-6.02 - 3.01, abs=0.01)
    assert true_peak_dbtp(tone, rate) == pytest.approx(-6.02, abs=0.01)
    # Cut abruptly, the take's ends ring (Gibbs) a little above the tone — a real true peak: 0.11 dB.
    abrupt = (0.5 * np.sin(np.pi / 2 * n + np.pi / 4)).astype(np.float32)
    assert -6.02 <= true_peak_dbtp(abrupt, rate) <= -6.02 + 0.5


def test_true_peak_agrees_with_dense_oversampling():
    rng = np.random.default_rng(5)
    sos = scipy.signal.butter(8, 18000, fs=RATE, output="sos")  # content below 18 kHz, as in music
    take = scipy.signal.sosfilt(sos, rng.standard_normal(RATE // 2)).astype(np.float32)
    take /= np.abs(take).max()
    dense = scipy.signal.resample_poly(take.astype(np.float64), 32, 1, window=("kaiser", 12.0))
    truth = 20 * np.log10(np.abs(dense).max())
    measured = true_peak_dbtp(take, RATE)
    assert truth - 0.2 <= measured <= truth + 0.02
    assert measured >= 0.0  # never below the sample peak (the samples are phase 0 of the interpolation)


# --------------------------------------------------------------------------------------------------
# Normalisation


@pytest.mark.parametrize("target", [-14.0, -18.0, -23.0, -30.0])
@pytest.mark.parametrize("name", list(SIGNALS))
def test_normalize_reaches_the_target_under_the_ceiling(name, target):
    pyln = pytest.importorskip("pyloudnorm")
    take = SIGNALS[name]()
    out, report = normalize_loudness(take, RATE, target)
    assert out.shape == take.shape and out.dtype == np.float32
    assert report.note == ""
    assert abs(report.after_lufs - target) <= 0.1
    assert report.after_lufs == pytest.approx(integrated_loudness(out, RATE), abs=1e-9)
    assert pyln.Meter(RATE, filter_class="DeMan").integrated_loudness(out) == pytest.approx(target, abs=0.5)
    assert true_peak_dbtp(out, RATE) <= TRUE_PEAK_CEILING_DBTP + SLACK_DB
    assert report.true_peak_dbtp == pytest.approx(true_peak_dbtp(out, RATE), abs=1e-4)
    assert report.before_lufs == pytest.approx(integrated_loudness(take, RATE), abs=1e-9)


def test_a_click_train_at_minus_14_is_limited_and_still_reaches_the_target():
    take = click_train()
    plain_gain = -14.0 - integrated_loudness(take, RATE)
    assert true_peak_dbtp(take, RATE) + plain_gain > TRUE_PEAK_CEILING_DBTP + 6  # plain gain would clip by 6+ dB
    out, report = normalize_loudness(take, RATE, -14.0)
    assert report.limited and report.max_reduction_db > 6
    assert report.gain_db > plain_gain + 1  # make-up gain re-applied after limiting
    assert abs(integrated_loudness(out, RATE) + 14.0) <= 0.5
    assert true_peak_dbtp(out, RATE) <= -1.0 + SLACK_DB


def test_without_limiting_normalisation_is_one_plain_gain():
    take = decaying_sine()
    out, report = normalize_loudness(take, RATE, -30.0)
    assert not report.limited and report.max_reduction_db == 0.0
    assert report.gain_db == pytest.approx(-30.0 - integrated_loudness(take, RATE))
    np.testing.assert_allclose(out, take * np.float32(10 ** (report.gain_db / 20)), rtol=1e-6, atol=0)


def test_the_limiter_acts_only_around_peaks_and_ramps_smoothly():
    t = seconds(2.0)
    take = 0.1 * np.sin(2 * np.pi * 440 * t)  # ≈ -23 LUFS
    spike = slice(RATE, RATE + round(0.002 * RATE))
    take[spike] += 0.9 * np.hanning(spike.stop - spike.start) * np.sin(2 * np.pi * 3000 * t[spike])
    take = take.astype(np.float32)
    out, report = normalize_loudness(take, RATE, -14.0)
    assert report.limited and report.note == ""
    valid = np.abs(take) > 0.02  # the gain out/in is well defined away from zero crossings
    gain = np.where(valid, out / np.where(valid, take, 1), np.nan)
    makeup = 10 ** (report.gain_db / 20)
    reach = round((LIMITER_HOLD_S + LIMITER_SMOOTH_S) / 2 * RATE) + 1  # how far a peak's gain reduction spreads
    far = np.ones(take.size, bool)
    far[spike.start - reach:spike.stop + reach] = False
    np.testing.assert_allclose(gain[far & valid], makeup, rtol=1e-5)  # untouched away from the spike
    assert np.nanmin(gain[spike]) < 0.5 * makeup  # the spike itself turned down
    steps = np.abs(np.diff(gain))  # NaN where either neighbour is invalid
    ramp = round(LIMITER_SMOOTH_S * RATE)
    assert np.nanmax(steps) <= makeup / ramp * 1.01  # no step: the gain moves at most 1/ramp of itself per sample


def test_stereo_shares_one_gain_and_keeps_its_image():
    take = np.stack([click_train(), 0.5 * noise_bursts()], axis=1)
    out, report = normalize_loudness(take, RATE, -16.0)
    assert report.limited and abs(report.after_lufs + 16.0) <= 0.1
    valid = (np.abs(take) > 1e-3).all(axis=1)
    np.testing.assert_allclose(out[valid, 0] / take[valid, 0], out[valid, 1] / take[valid, 1], rtol=1e-4)
    assert true_peak_dbtp(out, RATE) <= TRUE_PEAK_CEILING_DBTP + SLACK_DB


def test_silence_comes_back_unchanged_with_a_report_that_says_so():
    take = np.zeros((RATE, 2), np.float32)
    out, report = normalize_loudness(take, RATE, -14.0)
    np.testing.assert_array_equal(out, take)
    assert report.before_lufs == report.after_lufs == -math.inf and report.gain_db == 0.0
    assert not report.limited and "silent" in report.note
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))  # plain JSON: no infinities
    assert data["before_lufs"] is None and data["true_peak_dbtp"] is None and data["target_lufs"] == -14.0


def test_a_short_take_normalizes():
    take = (np.random.default_rng(3).standard_normal(4800) * np.hanning(4800) * 0.3).astype(np.float32)
    out, report = normalize_loudness(take, RATE, -14.0)
    assert out.shape == (4800,) and report.note == ""
    assert abs(integrated_loudness(out, RATE) + 14.0) <= 0.1
    assert true_peak_dbtp(out, RATE) <= TRUE_PEAK_CEILING_DBTP + SLACK_DB


def test_an_unreachable_target_stops_keeps_the_ceiling_and_says_why():
    take = sparse_clicks()
    out, report = normalize_loudness(take, RATE, -14.0)
    assert report.after_lufs < -14.5 and "not reached" in report.note
    assert report.limited and true_peak_dbtp(out, RATE) <= TRUE_PEAK_CEILING_DBTP + SLACK_DB


def test_a_lower_ceiling_is_kept():
    out, report = normalize_loudness(click_train(), RATE, -18.0, ceiling_dbtp=-3.0)
    assert true_peak_dbtp(out, RATE) <= -3.0 + SLACK_DB and abs(report.after_lufs + 18.0) <= 0.1


def test_normalisation_is_deterministic():
    take = np.stack([noise_bursts(2.0), click_train(2.0)], axis=1)
    first, report = normalize_loudness(take, RATE, -14.0)
    second, again = normalize_loudness(take, RATE, -14.0)
    assert first.tobytes() == second.tobytes() and report == again


def test_report_to_dict_is_plain_json():
    report = LoudnessReport(-14.0, -20.0, -14.02, 6.5, -1.0, True, 2.5)
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False)) == {
        "target_lufs": -14.0, "before_lufs": -20.0, "after_lufs": -14.02, "gain_db": 6.5, "true_peak_dbtp": -1.0,
        "limited": True, "max_reduction_db": 2.5, "note": ""}


@pytest.mark.parametrize("target", [TARGET_RANGE_LUFS[0] - 1, TARGET_RANGE_LUFS[1] + 0.1, math.nan, math.inf,
                                    "loud", None, True])
def test_bad_targets_name_loudness(target):
    with pytest.raises(LoudnessError) as error:
        normalize_loudness(decaying_sine(1.0), RATE, target)
    assert error.value.field == "loudness" and str(error.value).startswith("loudness: ")


@pytest.mark.parametrize("kwargs,field", [
    ({"ceiling_dbtp": 0.5}, "ceiling_dbtp"),
    ({"ceiling_dbtp": math.nan}, "ceiling_dbtp"),
    ({"audio": np.zeros(4800, np.int16)}, "audio"),
    ({"audio": np.zeros((4800, 6), np.float32)}, "audio"),
    ({"audio": np.zeros((2, 4800, 1), np.float32)}, "audio"),
    ({"audio": np.zeros(0, np.float32)}, "audio"),
    ({"audio": np.array([0.1, math.nan] * 2400, np.float32)}, "audio"),
    ({"sample_rate": 44100.0}, "sample_rate"),
    ({"sample_rate": 0}, "sample_rate"),
])
def test_bad_arguments_name_their_field(kwargs, field):
    arguments = {"audio": decaying_sine(0.5), "sample_rate": RATE, "target_lufs": -14.0, **kwargs}
    with pytest.raises(LoudnessError) as error:
        normalize_loudness(**arguments)
    assert error.value.field == field


# --------------------------------------------------------------------------------------------------
# Matching


def test_match_loudness_is_a_plain_gain_to_the_reference():
    take = np.stack([noise_bursts(2.0), decaying_sine(2.0)], axis=1)
    out = match_loudness(take, RATE, -20.5)
    assert integrated_loudness(out, RATE) == pytest.approx(-20.5, abs=1e-3)
    ratio = out[np.abs(take) > 1e-3] / take[np.abs(take) > 1e-3]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6)
    silence = np.zeros(4800, np.float32)
    np.testing.assert_array_equal(match_loudness(silence, RATE, -20.0), silence)
    with pytest.raises(LoudnessError) as error:
        match_loudness(take, RATE, -math.inf)
    assert error.value.field == "reference_lufs"
