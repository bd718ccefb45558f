"""``distill generate`` with spatial output, blends, loudness, presets and history; ``distill preset`` and
``distill history`` as a user runs them (in-process, tiny untrained models in a temporary library)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tiny_models import tiny_model_file

from distill.cli import main
from distill.library import Library
from distill.loudness import integrated_loudness

RATE = 48000


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> str:
    """A library with ``shape-a`` and ``shape-a2`` (one training lineage) and ``shape-b`` (another)."""
    folder = str(tmp_path_factory.mktemp("shaping-cli") / "lib")
    lib = Library.open(folder)
    lib.add(tiny_model_file("shape-a", 0, lineage="run-1"))
    lib.add(tiny_model_file("shape-a2", 1, lineage="run-1"))
    lib.add(tiny_model_file("shape-b", 2))
    return folder


@pytest.fixture
def run(capsys, library, tmp_path):
    """``run(*args)`` → ``(exit code, stdout, stderr)`` with the library and a fresh history folder."""
    history = tmp_path / "history"

    def call(*args: str, json_out: bool = False):
        capsys.readouterr()
        argv = [str(a) for a in args]
        if argv[0] in ("generate", "preset") or argv[:2] == ["history", "keep"]:
            argv += ["--library", library]
        if argv[0] == "history" or "--history" in argv or "--from-history" in argv:
            argv += ["--history-dir", str(history)]
        code = main(argv + (["--json"] if json_out else []))
        out, err = capsys.readouterr()
        return code, (json.loads(out) if json_out and out.strip() else out), err

    return call


def test_stereo_with_loudness_target_and_history(run, tmp_path):
    code, out, err = run("generate", "shape-a", "-d", "1.5", "--seed", "4", "--spatial", "stereo", "--width", "0.7",
                         "--loudness", "-18", "--history", "-o", tmp_path / "out", json_out=True)
    assert code == 0, err
    [item] = out
    audio, rate = sf.read(item["path"], dtype="float32")
    assert audio.shape == (int(1.5 * RATE), 2) and rate == RATE and item["channels"] == 2
    assert abs(integrated_loudness(audio, rate) + 18.0) < 0.5
    sidecar = json.loads(Path(item["sidecar"]).read_text())
    assert sidecar["spatial"] == {"mode": "stereo", "width": 0.7, "azimuth": 0.0, "elevation": 0.0, "depth": 0.0}
    assert sidecar["loudness"]["target_lufs"] == -18.0 and item["history"]
    code, entries, _ = run("history", "list", json_out=True)
    assert code == 0 and [e["id"] for e in entries] == [item["history"]]
    assert entries[0]["parameters"]["spatial"]["mode"] == "stereo" and entries[0]["channels"] == 2
    code, shown, _ = run("history", "show", "1", json_out=True)
    assert shown["id"] == item["history"] and Path(shown["audio_location"]).exists()


def test_blend_says_which_domain(run, tmp_path):
    code, out, err = run("generate", "shape-a", "-d", "1", "--seed", "1", "--blend", "shape-b:0.3", "-o", tmp_path,
                         json_out=True)
    assert code == 0, err
    assert out[0]["blend"]["mode"] == "audio" and "another training lineage" in out[0]["blend"]["reason"]
    assert json.loads(Path(out[0]["sidecar"]).read_text())["blend"]["mode"] == "audio"
    code, out, err = run("generate", "shape-a", "-d", "1", "--seed", "1", "--blend", "shape-a2:0.3", "-o", tmp_path)
    assert code == 0 and "latent blend" in out, err


def test_presets_from_the_command_line(run, tmp_path):
    code, _, err = run("preset", "save", "shape-a", "airy", "--slider", "brightness=5", "--spatial", "binaural",
                       "--azimuth", "-40", "--evolution", "0.8", "--seed", "9", "-d", "1")
    assert code == 0, err
    code, listed, _ = run("preset", "list", "shape-a", json_out=True)
    assert [p["name"] for p in listed] == ["airy"]
    assert listed[0]["settings"]["sliders"] == {"brightness": 5.0, "Axis 2": 0.0}
    code, out, _ = run("preset", "load", "shape-a", "AIRY")
    assert code == 0 and "seed 9" in out and "binaural" in out and "--preset airy" in out
    # generate from the preset; a flag given on the command line wins over the preset's value
    code, out, err = run("generate", "shape-a", "--preset", "airy", "--evolution", "0.1", "-o", tmp_path,
                         json_out=True)
    assert code == 0, err
    sidecar = json.loads(Path(out[0]["sidecar"]).read_text())
    assert (sidecar["seed"], sidecar["duration"], sidecar["evolution"]) == (9, 1.0, 0.1)
    assert sidecar["sliders"]["brightness"] == 5.0 and sidecar["spatial"]["azimuth"] == -40.0
    assert run("preset", "rename", "shape-a", "airy", "breeze")[0] == 0
    assert run("preset", "load", "shape-a", "airy")[0] == 1
    assert run("preset", "delete", "shape-a", "breeze")[0] == 0
    code, out, _ = run("preset", "list", "shape-a")
    assert "no presets" in out


def test_preset_with_sliders_the_model_lost_loads_with_a_note(run, library, tmp_path):
    from distill.sound_presets import PresetBook

    identity = {"name": "shape-a", "id": Library.open(library).resolve("shape-a").id, "lineage": "run-1"}
    PresetBook.open(library).save(identity, "old", {"seed": 3, "duration": 0.5, "sliders": {"sparkle": 4.0}})
    code, out, err = run("generate", "shape-a", "--preset", "old", "-o", tmp_path, json_out=True)
    assert code == 0 and "no longer has the slider(s) sparkle" in err
    assert json.loads(Path(out[0]["sidecar"]).read_text())["seed"] == 3


def test_history_compare_keep_and_clear(run, tmp_path):
    for seed in ("1", "2"):
        assert run("generate", "shape-a", "-d", "0.5", "--seed", seed, "--history", "-o", tmp_path)[0] == 0
    code, comparison, _ = run("history", "compare", "2", "1", json_out=True)
    assert code == 0 and comparison["differences"]["seed"] == [1, 2]
    assert set(comparison["measures"]) >= {"loudness_lufs", "brightness"}
    code, out, _ = run("history", "compare", "2", "1")
    assert "seed" in out and "B - A" in out
    code, kept, err = run("history", "keep", "1", "second take", json_out=True)
    assert code == 0 and kept["settings"]["seed"] == 2, err
    assert run("preset", "load", "shape-a", "second take")[0] == 0
    code, saved, err = run("preset", "save", "shape-a", "from history", "--from-history", "2", "--spatial", "stereo",
                           "--width", "0.2", json_out=True)
    assert code == 0, err
    assert saved["settings"]["seed"] == 1 and saved["settings"]["spatial"]["width"] == 0.2
    code, out, _ = run("history", "clear", "--yes", json_out=True)
    assert out == {"removed": 2}
    assert run("history", "list", json_out=True)[1] == []


@pytest.mark.parametrize("args, message", [
    (("--azimuth", "30"), "azimuth"),
    (("--width", "0.8"), "--width: mono output has no width"),
    (("--depth", "0.5"), "depth"),
    (("--spatial", "stereo", "--width", "3"), "width"),
    (("--loudness", "-100"), "loudness"),
    (("--blend", "nonexistent:0.2"), "nonexistent"),
    (("--blend", "shape-b:1.5"), "weight"),
    (("--preset", "nope"), "no preset 'nope'"),
])
def test_bad_shaping_options_are_refused_before_anything_is_written(run, tmp_path, args, message):
    out_dir = tmp_path / "refused"
    code, _, err = run("generate", "shape-a", "-d", "0.5", *args, "-o", out_dir)
    assert code == 1 and message in err and "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_bad_history_and_preset_references(run):
    code, _, err = run("history", "show", "zzzz")
    assert code == 1 and "zzzz" in err
    code, _, err = run("preset", "save", "shape-a", "x", "--slider", "sparkle=2")
    assert code == 1 and "sparkle" in err
    code, _, err = run("preset", "list", "no-such-model")
    assert code == 1 and "no-such-model" in err


def test_spatial_outputs_are_stereo_files(run, tmp_path):
    code, out, err = run("generate", "shape-a", "-d", "0.5", "--seed", "3", "--spatial", "binaural", "--azimuth", "60",
                         "--depth", "0.3", "--format", "flac", "-o", tmp_path, json_out=True)
    assert code == 0, err
    audio, _ = sf.read(out[0]["path"], dtype="float32")
    assert audio.shape == (RATE // 2, 2) and not np.allclose(audio[:, 0], audio[:, 1])
