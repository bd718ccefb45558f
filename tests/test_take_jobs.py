"""What the HTTP endpoint's replicas do without Ray: batched takes, jobs, in-memory encoding, settings, config."""

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from tiny_models import tiny_model_file

from distill import loaded_model
from distill.export import ExportOptions, encode_bytes, write_audio
from distill.loaded_model import LoadedModel, TakeSpec
from distill.take_jobs import Job, JobProblem, check_job, encode_take, render_together
from distill.takes import TakeRequest, produce, produce_many

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models():
    return LoadedModel(tiny_model_file("alpha", seed=0), "cpu"), LoadedModel(tiny_model_file("beta", seed=1), "cpu")


def test_takes_rendered_together_are_bit_identical_to_takes_made_alone(models):
    alpha, _ = models
    lone = alpha.generate(1.0, seed=3, sliders={"brightness": 2}, evolution=0.5)
    [again] = alpha.generate_many([TakeSpec(1.0, 3, {"brightness": 2}, 0.5)])
    np.testing.assert_array_equal(lone.audio, again.audio)
    specs = [TakeSpec(1.0, s, {"brightness": 2}, 0.5) for s in (3, 4, 5)] + [TakeSpec(0.5, 6), TakeSpec(25.0, 7)]
    takes = alpha.generate_many(specs)
    assert [t.audio.shape[0] for t in takes] == [48000] * 3 + [24000, 25 * 48000]
    assert [t.seed for t in takes] == [3, 4, 5, 6, 7]
    # each decoded alone and synthesised with its length group: the same bits as alone
    for take, seed in zip(takes[:3], (3, 4, 5), strict=True):
        np.testing.assert_array_equal(take.audio, alpha.generate(1.0, seed, {"brightness": 2}, 0.5).audio)
    np.testing.assert_array_equal(takes[3].audio, alpha.generate(0.5, seed=6).audio)
    np.testing.assert_array_equal(takes[4].audio, alpha.generate(25.0, seed=7).audio)  # windowed: never batched


def test_a_group_split_into_cpu_batches_keeps_every_take_and_its_order(models, monkeypatch):
    alpha, _ = models
    monkeypatch.setattr(loaded_model, "CPU_BATCH_SECONDS", 1.0)  # 0.5 s takes go two at a time
    takes = alpha.generate_many([TakeSpec(0.5, seed) for seed in (11, 12, 13)])
    assert [t.seed for t in takes] == [11, 12, 13]
    for take in takes:
        np.testing.assert_array_equal(take.audio, alpha.generate(0.5, seed=take.seed).audio)


def test_produce_many_shapes_each_take_as_produce_does(models):
    alpha, _ = models
    requests = [TakeRequest(duration=1.0, seed=1, spatial=_spatial("stereo", width=0.9), loudness=-20.0),
                TakeRequest(duration=0.7, seed=2, spatial=_spatial("binaural", azimuth=40.0))]
    many = produce_many(alpha, requests)
    for take, request in zip(many, requests, strict=True):
        one = produce(alpha, request)
        np.testing.assert_array_equal(take.audio, one.audio)
        assert take.spatial == one.spatial and take.loudness == one.loudness
    with pytest.raises(ValueError, match="blend"):
        produce_many(alpha, [TakeRequest(blend=(("beta", 0.5),))])


def test_render_together_keeps_the_order_across_models(models):
    alpha, beta = models
    jobs = [Job(TakeRequest(duration=0.5, seed=s), ExportOptions()) for s in range(4)]
    items = [(alpha, jobs[0]), (beta, jobs[1]), (alpha, jobs[2]), (beta, jobs[3])]
    takes = render_together(items, max_duration=10)
    assert [t.model["name"] for t in takes] == ["alpha", "beta", "alpha", "beta"]
    assert [t.seed for t in takes] == [0, 1, 2, 3]


def _spatial(mode, **values):
    from distill.spatial import SpatialSettings

    return SpatialSettings(mode, **values)


@pytest.mark.parametrize("fmt, depth", [("wav", "16"), ("wav", "24"), ("wav", "32f"), ("flac", "16"),
                                        ("flac", "24"), ("mp3", None), ("ogg", None)])
def test_encode_bytes_is_what_write_audio_writes(tmp_path, fmt, depth):
    audio = (np.random.default_rng(0).standard_normal((4800, 2)) * 0.3).astype(np.float32)
    options = ExportOptions(format=fmt, bit_depth=depth, sample_rate=44100, title="Tïtle", comment="c")
    data = encode_bytes(audio, 48000, options)
    path = tmp_path / f"take.{fmt}"
    write_audio(path, audio, 48000, options)
    if fmt == "ogg":  # a random stream serial number in every Ogg file; the audio agrees
        np.testing.assert_array_equal(sf.read(io.BytesIO(data))[0], sf.read(path)[0])
    else:
        assert data == path.read_bytes()


def test_jobs_check_fields_and_name_them(models):
    alpha, _ = models
    good = Job.from_dict({"request": {"duration": 1.0, "seed": 2, "sliders": {"brightness": 1}},
                          "export": {"format": "flac", "sample_rate": 48000, "bit_depth": "16"}})
    assert Job.from_dict(good.to_dict()) == good
    for data, field in (({"request": {"duration": 1, "spatial": {"mode": "stereo", "azimuth": 10}}, "export": {}},
                         "azimuth"),
                        ({"request": {}, "export": {"format": "ogg", "bit_depth": "24"}}, "bit_depth"),
                        ({"request": {"seed": -1}, "export": {}}, "seed")):
        with pytest.raises(JobProblem) as caught:
            Job.from_dict(data)
        assert caught.value.status == 422 and caught.value.field == field
    for request, field in ((TakeRequest(sliders={"nope": 1.0}), "sliders"), (TakeRequest(duration=30.0), "duration")):
        with pytest.raises(JobProblem) as caught:
            check_job(alpha, Job(request, ExportOptions()), max_duration=20)
        assert caught.value.field == field, caught.value


def test_encoded_take_headers(models):
    alpha, _ = models
    take = produce(alpha, TakeRequest(duration=0.5, seed=11, spatial=_spatial("stereo")))
    encoded = encode_take(take, ExportOptions(format="mp3", sample_rate=44100))
    assert encoded.media_type == "audio/mpeg" and encoded.filename == "alpha-seed11.mp3"
    assert encoded.headers["X-Distill-Seed"] == "11" and encoded.headers["X-Distill-Channels"] == "2"
    assert "X-Distill-Bit-Depth" not in encoded.headers and sf.info(io.BytesIO(encoded.body)).samplerate == 44100


def test_serve_settings_and_the_deploy_config(tmp_path):
    from ray.serve.schema import ServeDeploySchema

    from distill.ray_layer.serving import ServeSettings

    config = yaml.safe_load((ROOT / "serve/config.yaml").read_text())
    app = ServeDeploySchema.model_validate(config).applications[0]
    assert app.import_path == "distill.ray_layer.serving:build_app"
    assert {d.name for d in app.deployments} == {"Generator", "Gateway"}
    settings = ServeSettings.from_args(app.args)
    assert settings.batching and settings.max_duration == 60
    for bad, word in (({"colour": 1}, "colour"), ({"max_batch_size": 0}, "max_batch_size"),
                      ({"max_duration": 601}, "max_duration"), ({"max_body_bytes": 10}, "max_body_bytes"),
                      ({"cors_origins": ["localhost:5173"]}, "cors_origins"),
                      ({"cors_origins": "https://a.example/path"}, "cors_origins")):
        with pytest.raises(ValueError, match=word):
            ServeSettings.from_args(bad)
    from distill.library import Library
    from distill.ray_layer.serving import build_app

    Library.open(tmp_path / "lib").add(tiny_model_file("alpha"), name="alpha")
    # How `serve run` calls the import path (Serve's own function; it refuses a builder that takes
    # more than one parameter, which `serve run serve/config.yaml` once showed): an application.
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve.deployment import Application

    args = {**app.args, "library": str(tmp_path / "lib"), "models": ["alpha"]}
    assert isinstance(call_user_app_builder_with_args_if_necessary(build_app, args), Application)
    with pytest.raises(ValueError, match="no model 'nope'"):
        build_app({"library": str(tmp_path / "lib"), "models": ["nope"]})
