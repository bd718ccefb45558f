"""The HTTP endpoint as clients meet it: a real ``distill serve`` process (local Ray, Ray Serve, 127.0.0.1)
with tiny models (one trained a little) in a temporary library, real HTTP, every format read back, the CLI's bytes, two
models in one replica, batching, strict 4xx answers, a schemathesis fuzz run and a clean Ctrl-C.

The tests share one server (starting Ray and Serve costs ~30 s on 2 CPUs) and run in file order;
the last one stops it.
"""

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import requests
import soundfile as sf
from ports import free_port
from terminal import default_sigint
from tiny_models import tiny_model_file, trained_tiny_model_file

from distill.library import Library

ROOT = Path(__file__).resolve().parents[1]
MAX_DURATION = 12.0
ORIGIN = "http://localhost:5173"  # a web app's page allowed to call the API from a browser
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-library")
    lib = Library.open(folder)
    lib.add(trained_tiny_model_file("alpha", seed=0), name="alpha")  # sliders: 1 = brightness, 2 = Axis 2
    lib.add(tiny_model_file("beta", seed=1, sliders=False), name="beta")
    lib.add(tiny_model_file("gamma", seed=2, lineage="lineage-0"), name="gamma")  # blends with alpha in latent space
    lib.add(tiny_model_file("delta", seed=3), name="delta")  # its file gets damaged while the server runs
    return folder


@pytest.fixture(scope="module")
def server(library, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve-log") / "server.err"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "serve", "--library", str(library),
                                 "--port", str(port), "--num-cpus", "2", "--max-duration", str(MAX_DURATION),
                                 "--max-models", "2", "--batch-wait-ms", "20", "--cors-origin", ORIGIN],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=default_sigint)
    line = proc.stdout.readline()  # blocks until ready or exit
    assert line.startswith("serving at http://127.0.0.1:"), f"{line!r}\n{log.read_text()[-3000:]}"
    url = f"http://127.0.0.1:{port}"
    yield {"url": url, "proc": proc, "port": port, "log": log, "library": library}
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def generate(server, timeout=120, **body):
    return requests.post(f"{server['url']}/v1/generate", json=body, timeout=timeout)


def _read(response) -> tuple[np.ndarray, sf._SoundFileInfo]:
    data = io.BytesIO(response.content)
    info = sf.info(data)
    data.seek(0)
    audio, _ = sf.read(data, dtype="float32", always_2d=True)
    return audio, info


def test_serve_refuses_bad_settings_before_starting_ray(library, capsys, monkeypatch):
    import distill.ray_layer
    from distill.cli import main

    def no_ray(**_):
        raise AssertionError("Ray was started for settings that had to be refused first")

    monkeypatch.setattr(distill.ray_layer, "ensure_ray", no_ray)

    def refused(*args) -> str:
        assert main(["serve", "--library", str(library), *map(str, args)]) == 1
        return capsys.readouterr().err

    assert "no model 'nope'" in refused("--models", "nope")
    assert "max_duration" in refused("--max-duration", "0")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert "is in use" in refused("--port", taken.getsockname()[1])


def test_health_models_and_docs(server):
    health = requests.get(f"{server['url']}/healthz", timeout=30).json()
    assert health["status"] == "ok" and health["models"] == 4 and health["max_duration"] == MAX_DURATION
    models = {m["name"]: m for m in requests.get(f"{server['url']}/v1/models", timeout=30).json()["models"]}
    assert set(models) == {"alpha", "beta", "gamma", "delta"}
    sliders = models["alpha"]["sliders"]
    assert [(s["index"], s["label"]) for s in sliders] == [(1, "brightness"), (2, "Axis 2")]
    assert sliders[0]["explained_variance"] == pytest.approx(0.4)
    assert (sliders[0]["min"], sliders[0]["max"]) == (-10, 10)
    assert models["beta"]["sliders"] == [] and models["alpha"]["sample_rate"] == 48000
    details = requests.get(f"{server['url']}/v1/models/alpha", timeout=30).json()
    assert details["config"]["preset"] == "tiny" and details["id"] == models["alpha"]["id"]
    by_id = requests.get(f"{server['url']}/v1/models/{details['id']}", timeout=30).json()
    assert by_id["name"] == "alpha"
    missing = requests.get(f"{server['url']}/v1/models/nope", timeout=30)
    assert missing.status_code == 404 and missing.json()["field"] == "name"
    docs = requests.get(f"{server['url']}/docs", timeout=30)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = requests.get(f"{server['url']}/openapi.json", timeout=30).json()
    body = spec["paths"]["/v1/generate"]["post"]
    assert {"200", "404", "413", "422"} <= set(body["responses"])
    schema = spec["components"]["schemas"]["GenerateRequest"]["properties"]
    assert schema["duration"]["maximum"] == MAX_DURATION


@pytest.mark.parametrize("export, subtype, channels", [
    ({"format": "wav", "bit_depth": "16"}, "PCM_16", 1),
    ({"format": "wav", "bit_depth": "32f", "sample_rate": 96000}, "FLOAT", 1),
    ({"format": "flac", "spatial": "stereo", "width": 0.8}, "PCM_24", 2),
    ({"format": "ogg", "quality": 4, "sample_rate": 44100}, "VORBIS", 1),
    ({"format": "mp3", "spatial": "binaural", "azimuth": 60, "sample_rate": 44100}, "MPEG_LAYER_III", 2),
])
def test_every_format_reads_back(server, export, subtype, channels):
    response = generate(server, model="alpha", seed=4, duration=1.5, **export)
    assert response.status_code == 200, response.text
    audio, info = _read(response)
    rate = export.get("sample_rate", 48000)
    assert info.samplerate == rate and info.channels == channels and info.subtype == subtype
    assert response.headers["Content-Type"] == {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg",
                                                "mp3": "audio/mpeg"}[export["format"]]
    assert response.headers["X-Distill-Seed"] == "4" and response.headers["X-Distill-Model"] == "alpha"
    assert float(response.headers["X-Distill-Duration"]) == 1.5
    assert int(response.headers["X-Distill-Sample-Rate"]) == rate
    assert int(response.headers["X-Distill-Channels"]) == channels
    assert f'filename="alpha-seed4.{export["format"]}"' in response.headers["Content-Disposition"]
    if export["format"] == "mp3":  # the encoder's padding: a frame or two more
        assert 1.5 * rate <= audio.shape[0] <= 1.5 * rate + 3000
    else:
        assert audio.shape[0] == round(1.5 * rate)
    assert 0 < np.abs(audio).max() <= 10 ** (-1 / 20) + 1e-3  # a real take, peak-limited like the CLI's


def test_random_seed_is_reported_and_reproduces(server):
    first = generate(server, model="beta", duration=0.5)
    assert first.status_code == 200
    seed = int(first.headers["X-Distill-Seed"])
    again = generate(server, model="beta", duration=0.5, seed=seed)
    assert again.content == first.content


@pytest.mark.parametrize("body, flags", [
    ({"seed": 5, "duration": 1.25, "sliders": {"brightness": 3, "2": -1.5}, "evolution": 0.6, "format": "flac",
      "bit_depth": "16", "sample_rate": 44100, "spatial": "stereo", "width": 0.8, "title": "Tïtle"},
     ["--seed", "5", "--duration", "1.25", "--slider", "brightness=3", "--slider", "2=-1.5", "--evolution", "0.6",
      "--format", "flac", "--bit-depth", "16", "--sample-rate", "44100", "--spatial", "stereo", "--width", "0.8",
      "--title", "Tïtle"]),
    ({"seed": 9, "duration": 2.0, "format": "wav", "spatial": "binaural", "azimuth": -45, "depth": 0.3,
      "loudness": -20, "blend": [{"model": "gamma", "weight": 0.4}]},
     ["--seed", "9", "--duration", "2", "--format", "wav", "--spatial", "binaural", "--azimuth", "-45",
      "--depth", "0.3", "--loudness", "-20", "--blend", "gamma:0.4"]),
    ({"seed": 2, "duration": 1.0, "format": "mp3"}, ["--seed", "2", "--duration", "1", "--format", "mp3"]),
    ({"seed": 2, "duration": 1.0, "format": "ogg"}, ["--seed", "2", "--duration", "1", "--format", "ogg"]),
])
def test_same_bytes_as_distill_generate(server, tmp_path, capsys, body, flags):
    from distill.cli import main

    response = generate(server, model="alpha", **body)
    assert response.status_code == 200, response.text
    assert main(["generate", "alpha", "--library", str(server["library"]), "-o", str(tmp_path), "--json", *flags]) == 0
    written = Path(json.loads(capsys.readouterr().out)[0]["path"])
    if body["format"] == "ogg":  # every Ogg stream has a random serial number; the audio is what must agree
        served, _ = _read(response)
        on_disk, _ = sf.read(written, dtype="float32", always_2d=True)
        np.testing.assert_array_equal(served, on_disk)
    else:
        assert response.content == written.read_bytes()
    assert response.headers["Content-Disposition"].endswith(f'filename="{written.name}"')


def test_two_models_one_replica_loaded_once_and_lru(server):
    seen = []
    for name in ("alpha", "beta", "beta", "gamma", "alpha"):
        response = generate(server, model=name, seed=1, duration=0.5)
        assert response.status_code == 200 and response.headers["X-Distill-Model"] == name
        seen.append((name, response.headers["X-Distill-Replica"], response.headers["X-Distill-Model-Cache"]))
    assert len({replica for _, replica, _ in seen}) == 1  # one replica served all three models
    assert seen[2][2] == "hit"  # beta loaded once, then used from memory
    assert seen[4][2] == "miss"  # --max-models 2: alpha was the least recently used when gamma came


def test_concurrent_requests_of_different_durations_are_batched(server):
    durations = [0.5, 1.0, 1.0, 2.0, 1.0, 0.5, 2.0, 1.0]

    async def many():
        async with aiohttp.ClientSession() as session:
            async def one(i, duration):
                async with session.post(f"{server['url']}/v1/generate", json={
                        "model": "alpha", "seed": 100 + i, "duration": duration, "format": "wav",
                        "bit_depth": "32f"}) as r:
                    return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()
            return await asyncio.gather(*(one(i, d) for i, d in enumerate(durations)))

    results = asyncio.run(many())
    assert all(status == 200 for status, _, _ in results)
    assert max(int(h["x-distill-batch"]) for _, h, _ in results) > 1  # some were decoded together
    for i, ((_, _, body), duration) in enumerate(zip(results, durations, strict=True)):
        audio, _ = sf.read(io.BytesIO(body), dtype="float32")
        assert audio.shape[0] == round(duration * 48000)
        alone = generate(server, model="alpha", seed=100 + i, duration=duration, format="wav", bit_depth="32f")
        lone, _ = sf.read(io.BytesIO(alone.content), dtype="float32")
        assert alone.headers["X-Distill-Batch"] == "1"
        np.testing.assert_array_equal(audio, lone)  # made in a batch or alone: the same bits


@pytest.mark.parametrize("body, status, field", [
    ({"model": "nope"}, 404, "model"),
    ({"model": "../alpha.distill"}, 404, "model"),
    ({"model": "alpha", "seed": "3"}, 422, "seed"),
    ({"model": "alpha", "seed": -1}, 422, "seed"),
    ({"model": "alpha", "seed": True}, 422, "seed"),
    ({"model": "alpha", "duration": MAX_DURATION + 1}, 422, "duration"),
    ({"model": "alpha", "duration": "4"}, 422, "duration"),
    ({"model": "alpha", "duration": 0}, 422, "duration"),
    ({"model": "alpha", "sliders": {"nope": 1}}, 422, "sliders"),
    ({"model": "alpha", "sliders": {"brightness": 11}}, 422, "sliders.brightness"),
    ({"model": "alpha", "sliders": {"3": 1}}, 422, "sliders"),
    ({"model": "alpha", "evolution": 1.5}, 422, "evolution"),
    ({"model": "alpha", "format": "aiff"}, 422, "format"),
    ({"model": "alpha", "format": "ogg", "bit_depth": "24"}, 422, "bit_depth"),
    ({"model": "alpha", "format": "flac", "bit_depth": "32f"}, 422, "bit_depth"),
    ({"model": "alpha", "format": "mp3", "sample_rate": 96000}, 422, "sample_rate"),
    ({"model": "alpha", "format": "wav", "quality": 5}, 422, "quality"),
    ({"model": "alpha", "spatial": "stereo", "azimuth": 30}, 422, "azimuth"),
    ({"model": "alpha", "width": 0.5}, 422, "width"),
    ({"model": "alpha", "spatial": "surround"}, 422, "spatial"),
    ({"model": "alpha", "loudness": 0}, 422, "loudness"),
    ({"model": "alpha", "blend": [{"model": "nope", "weight": 0.5}]}, 404, "blend.0.model"),
    ({"model": "alpha", "blend": [{"model": "gamma", "weight": 1.5}]}, 422, "blend.0.weight"),
    ({"model": "alpha", "blend": [{"model": "gamma", "weight": 0.6}, {"model": "beta", "weight": 0.6}]}, 422,
     "blend"),
    ({"model": "alpha", "colour": "red"}, 422, "colour"),
    ({}, 422, "model"),
])
def test_bad_requests_get_the_documented_4xx(server, body, status, field):
    response = generate(server, **body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["status"] == status and answer["field"] == field, answer
    assert answer["error"]


def test_malformed_and_oversized_bodies(server):
    url = f"{server['url']}/v1/generate"
    for data, headers in ((b"{not json", {"Content-Type": "application/json"}), (b"", {}),
                          (b"[1, 2]", {"Content-Type": "application/json"}),
                          (b"model=alpha", {"Content-Type": "application/x-www-form-urlencoded"})):
        response = requests.post(url, data=data, headers=headers, timeout=30)
        assert response.status_code == 422 and response.json()["field"], response.text
    big = json.dumps({"model": "alpha", "title": "x" * 70_000}).encode()
    assert requests.post(url, data=big, headers={"Content-Type": "application/json"}, timeout=30).status_code == 413

    def chunks():  # no Content-Length: the limit must hold for a streamed body too
        for _ in range(100):
            yield b" " * 1024

    streamed = requests.post(url, data=chunks(), headers={"Content-Type": "application/json"}, timeout=30)
    assert streamed.status_code == 413 and streamed.json()["field"] == "body"
    # and the server is as healthy as before
    assert requests.get(f"{server['url']}/healthz", timeout=30).status_code == 200
    assert generate(server, model="alpha", seed=1, duration=0.5).status_code == 200


def test_web_pages_named_by_cors_origin_may_call_the_api(server):
    url = f"{server['url']}/v1/generate"
    preflight = requests.options(url, timeout=30, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    answer = requests.post(url, json={"model": "alpha", "seed": 1, "duration": 0.5}, headers={"Origin": ORIGIN},
                           timeout=120)
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = answer.headers["Access-Control-Expose-Headers"].lower()
    assert "x-distill-seed" in exposed and "content-disposition" in exposed  # a page's script can read them
    refused = requests.post(url, json={"model": "nope"}, headers={"Origin": ORIGIN}, timeout=30)
    assert refused.status_code == 404 and refused.headers["Access-Control-Allow-Origin"] == ORIGIN
    other = requests.post(url, json={"model": "alpha", "seed": 1, "duration": 0.5},
                          headers={"Origin": "http://elsewhere.example"}, timeout=120)
    assert "Access-Control-Allow-Origin" not in other.headers  # the browser keeps it from that page


def test_the_example_client(server, tmp_path):
    proc = subprocess.run([sys.executable, "serve/example_client.py", "--url", server["url"], "--model", "alpha",
                           "-o", tmp_path], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "model alpha" in proc.stdout and "1=brightness" in proc.stdout and "a bad request gets 422" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha-seed1.wav", "alpha-seed2.flac"]
    assert sf.info(tmp_path / "alpha-seed2.flac").channels == 2


def test_a_request_that_fails_midway_leaves_the_server_healthy(server):
    with pytest.raises(requests.exceptions.ReadTimeout):  # the client gives up while its take is being made
        generate(server, timeout=(10, 0.05), model="alpha", seed=5, duration=MAX_DURATION)
    lib = Library.open(server["library"])
    path = Path(lib.location(lib.resolve("delta")))
    whole = path.read_bytes()
    try:
        path.write_bytes(whole[: len(whole) // 2])  # damaged after the server listed it, before it was loaded
        broken = generate(server, model="delta", seed=1, duration=0.5)
        assert broken.status_code == 500, broken.text
        assert broken.json()["field"] == "model" and "could not be loaded" in broken.json()["error"]
    finally:
        path.write_bytes(whole)
    assert requests.get(f"{server['url']}/healthz", timeout=30).status_code == 200
    assert generate(server, model="delta", seed=1, duration=0.5).status_code == 200  # whole again: it loads
    assert generate(server, model="alpha", seed=5, duration=1.0).status_code == 200


def test_schemathesis_finds_no_server_errors(server, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "schemathesis.cli", "--no-color", "run",
                           f"{server['url']}/openapi.json", "--checks", "not_a_server_error",
                           "--max-examples", "40", "--workers", "2", "--seed", "1"],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path,  # it writes .schemathesis/
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert requests.get(f"{server['url']}/healthz", timeout=30).status_code == 200


def test_ctrl_c_stops_the_server_cleanly(server):
    proc = server["proc"]
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    assert proc.wait(timeout=90) == 0
    assert "stopped" in server["log"].read_text()
    assert "Traceback" not in server["log"].read_text()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server['url']}/healthz", timeout=5)
    deadline = time.monotonic() + 30  # and the port is free again
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", server["port"])) != 0:
                break
        time.sleep(0.5)
    else:
        pytest.fail("the port still accepts connections")
