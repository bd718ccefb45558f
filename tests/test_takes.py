"""The take pipeline shared by the CLI, Serve and the UI: requests, blending (latent vs audio), spatial and loudness.

Tiny untrained models stand in for trained ones: blending and shaping are about how takes are
combined and placed, which the models' quality does not change.
"""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import tiny_model_file

from distill.blending import AUDIO, LATENT, BlendError, BlendPart, blend_mode, generate_blended, parse_blend
from distill.loaded_model import GenerationError, LoadedModel
from distill.loudness import integrated_loudness, true_peak_dbtp
from distill.spatial import SpatialSettings
from distill.takes import TakeRequest, produce, settings_from_parameters

RATE = 48000


@pytest.fixture(scope="module")
def models() -> dict[str, LoadedModel]:
    """``a`` and ``a2`` share a lineage (same run, different weights); ``b`` is another run."""
    return {"a": LoadedModel(tiny_model_file("a", 0, lineage="run-1"), "cpu", entry_id="aaaaaaaaaaaa"),
            "a2": LoadedModel(tiny_model_file("a2", 1, lineage="run-1"), "cpu", entry_id="bbbbbbbbbbbb"),
            "b": LoadedModel(tiny_model_file("b", 2), "cpu", entry_id="cccccccccccc")}


def test_blend_mode_follows_lineage(models):
    mode, reason = blend_mode(models["a"], [models["a2"]])
    assert mode == LATENT and "lineage" in reason
    mode, reason = blend_mode(models["a"], [models["a2"], models["b"]])
    assert mode == AUDIO and "b comes from another training lineage" in reason


def test_incompatible_models_blend_in_the_audio_domain_and_say_so(models):
    take = generate_blended(models["a"], [BlendPart(models["b"], 0.4)], 1.0, seed=3)
    assert take.blend["mode"] == AUDIO and "another training lineage" in take.blend["reason"]
    assert [(m["name"], m["weight"]) for m in take.blend["models"]] == [("a", 0.6), ("b", 0.4)]
    alone = models["a"].generate(1.0, 3)
    # loudness matching: the blend is as loud as the main model's take alone
    assert integrated_loudness(take.audio, RATE) == pytest.approx(integrated_loudness(alone.audio, RATE), abs=0.2)
    assert take.audio.shape == alone.audio.shape and not np.allclose(take.audio, alone.audio)
    # ... and it is a mix of both: closer to each model than the models are to each other
    other = models["b"].generate(1.0, 3).audio
    assert abs(np.corrcoef(take.audio, other)[0, 1]) > 0.2 and np.corrcoef(take.audio, alone.audio)[0, 1] > 0.5


def test_latent_blend_mixes_decoded_spectra_continuously(models):
    a, a2 = models["a"], models["a2"]
    take = generate_blended(a, [BlendPart(a2, 0.5)], 1.0, seed=5)
    assert take.blend["mode"] == LATENT
    nearly_a = generate_blended(a, [BlendPart(a2, 1e-4)], 1.0, seed=5).audio
    alone = a.generate(1.0, 5).audio
    assert np.corrcoef(nearly_a, alone)[0, 1] > 0.999  # a vanishing weight gives the main model's take
    assert np.corrcoef(take.audio, alone)[0, 1] < 0.99  # half-way is something else
    again = generate_blended(a, [BlendPart(a2, 0.5)], 1.0, seed=5).audio
    np.testing.assert_array_equal(take.audio, again)  # deterministic


def test_blend_weights_are_checked(models):
    assert parse_blend("rain:0.3") == ("rain", 0.3)
    assert parse_blend("s3://bucket/m.distill:0.25") == ("s3://bucket/m.distill", 0.25)
    for bad in ("rain", "rain:", ":0.3", "rain:x", "rain:0", "rain:1", "rain:-0.2"):
        with pytest.raises(BlendError, match="blend"):
            parse_blend(bad)
    with pytest.raises(BlendError, match="add up to 1.1"):
        generate_blended(models["a"], [BlendPart(models["b"], 0.6), BlendPart(models["a2"], 0.5)], 1.0)


def test_request_from_dict_names_bad_fields():
    request = TakeRequest.from_dict({"duration": 2, "seed": 7, "sliders": {"brightness": 3},
                                     "spatial": {"mode": "stereo", "width": 0.8}, "loudness": -18,
                                     "blend": ["rain:0.2", {"model": "wind", "weight": 0.1}]})
    assert request.blend == (("rain", 0.2), ("wind", 0.1)) and request.spatial.mode == "stereo"
    assert TakeRequest.from_dict(request.to_dict()) == request
    for data, field in (({"colour": 1}, "colour"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"),
                        ({"loudness": -90}, "loudness"), ({"loudness": "loud"}, "loudness"),
                        ({"sliders": {"a": "x"}}, "sliders"), ({"spatial": {"mode": "quad"}}, "mode"),
                        ({"blend": [{"model": "x"}]}, "blend"), ({"blend": ["x:0.7", "y:0.6"]}, "blend")):
        with pytest.raises(ValueError, match=field):
            TakeRequest.from_dict(data)


def test_produce_shapes_after_blending(models):
    request = TakeRequest(duration=1.0, seed=2, sliders={"brightness": 4},
                          spatial=SpatialSettings("binaural", width=0.3, azimuth=40.0), loudness=-20.0,
                          blend=(("b", 0.3),))
    take = produce(models["a"], request, [models["b"]])
    assert take.audio.shape == (RATE, 2) and take.audio.dtype == np.float32
    assert take.spatial["mode"] == "binaural" and take.blend["mode"] == AUDIO
    assert abs(integrated_loudness(take.audio, RATE) + 20.0) < 0.5
    assert true_peak_dbtp(take.audio, RATE) <= -1.0 + 0.05
    params = take.parameters()
    assert params["sliders"]["brightness"] == 4.0 and params["loudness"]["target_lufs"] == -20.0
    again = TakeRequest.from_dict(settings_from_parameters(params))
    assert again.blend == (("cccccccccccc", 0.3),) and again.spatial == request.spatial and again.loudness == -20.0
    mono = produce(models["a"], TakeRequest(duration=0.5, seed=2), [])
    assert mono.audio.shape == (RATE // 2,) and mono.spatial["mode"] == "mono" and mono.loudness is None
    np.testing.assert_array_equal(mono.audio, models["a"].generate(0.5, 2).audio)  # shaping mono changes nothing


def test_produce_checks_before_generating(models):
    with pytest.raises(GenerationError, match="duration"):
        produce(models["a"], TakeRequest(duration=0.01), [])
    with pytest.raises(ValueError, match="unknown slider"):
        produce(models["a"], TakeRequest(duration=1.0, sliders={"sparkle": 2}), [])


def test_audio_blend_with_a_silent_main_take_matches_the_other_model(models, monkeypatch):
    from dataclasses import replace

    a, b = models["a"], models["b"]
    silent = replace(a.generate(1.0, 3), audio=np.zeros(RATE, np.float32))
    monkeypatch.setattr(a, "generate", lambda *args, **kwargs: silent)
    take = generate_blended(a, [BlendPart(b, 0.4)], 1.0, seed=3)
    other = b.generate(1.0, 3).audio
    assert np.isfinite(take.audio).all()
    assert take.blend["matched_lufs"] == pytest.approx(integrated_loudness(other, RATE), abs=1e-3)
    assert integrated_loudness(take.audio, RATE) == pytest.approx(integrated_loudness(other, RATE), abs=0.1)
