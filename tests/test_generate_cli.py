"""``distill generate`` and ``distill reconstruct`` as a user runs them: files, tags, sidecars, exit codes,
and bad input refused with nothing left behind.

The CLI runs in-process (``distill.cli.main``) against a tiny untrained model in a temporary library;
one test runs ``python -m distill.cli`` for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_models import tiny_model_file

from distill.cli import main
from distill.library import Library
from distill.model_file import ModelFile, save

ROOT = Path(__file__).resolve().parents[1]
NAME = "gen-cli"
SLIDERS_AT_REST = {"brightness": 0.0, "Axis 2": 0.0}


def _model_file(name: str = NAME, seed: int = 0) -> ModelFile:
    return tiny_model_file(name, seed)


@pytest.fixture(scope="module")
def tiny_file() -> ModelFile:
    return _model_file()


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_file):
    """``(library folder, entry)`` with the one model ``gen-cli`` in it."""
    folder = tmp_path_factory.mktemp("generate-cli") / "lib"
    entry = Library.open(str(folder)).add(tiny_file)
    return str(folder), entry


@pytest.fixture(scope="module")
def sine_wav(tmp_path_factory) -> Path:
    """A 2 s 440 Hz sine at 44.1 kHz, the input of ``reconstruct``."""
    path = tmp_path_factory.mktemp("generate-cli-input") / "sine.wav"
    t = np.arange(2 * 44100) / 44100
    sf.write(str(path), (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100, subtype="PCM_16")
    return path


def _cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


def _generate(capsys, library, *args, model: str = NAME) -> tuple[int, str, str]:
    return _cli(capsys, "generate", model, *args, "--library", library[0])


def _generate_json(capsys, library, *args, model: str = NAME) -> list[dict]:
    code, out, err = _generate(capsys, library, *args, "--json", model=model)
    assert code == 0, err
    return json.loads(out)


def _refused(code: int, err: str, *needles: str) -> None:
    assert code == 1, err
    assert "distill: error:" in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def _empty(folder: Path) -> bool:
    """Nothing at all (hidden temporary files included) was written into ``folder``."""
    return not folder.exists() or os.listdir(folder) == []


# --- generate: files, sidecars, tags ---------------------------------------------------------------------------------


def test_generate_writes_takes_with_sidecars_and_tags(capsys, library, tmp_path):
    out = tmp_path / "takes"
    items = _generate_json(capsys, library, "-d", "1.5", "-n", "3", "--seed", "7", "-o", out)
    assert isinstance(items, list) and len(items) == 3
    assert [item["seed"] for item in items] == [7, 8, 9]
    entry = library[1]
    for item in items:
        assert {"path", "format", "seed", "duration", "sample_rate", "channels"} <= set(item)
        assert item["format"] == "wav" and item["sample_rate"] == 48000 and item["channels"] == 1
        assert item["duration"] == pytest.approx(1.5)
        path = Path(item["path"])
        assert path.parent == out and path.suffix == ".wav" and f"seed{item['seed']}" in path.name
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (48000, 1, round(1.5 * 48000))
        assert info.subtype == "PCM_24"  # the WAV default
        audio, _ = sf.read(str(path))
        assert np.abs(audio).max() > 1e-4  # sound, not silence

        sidecar = json.loads(Path(f"{path}.json").read_text())
        assert item["sidecar"] == f"{path}.json"
        assert sidecar["seed"] == item["seed"] and sidecar["duration"] == 1.5
        assert sidecar["sliders"] == SLIDERS_AT_REST  # every slider, by label
        assert sidecar["evolution"] == 0.3
        assert sidecar["model"]["name"] == NAME and sidecar["model"]["id"] == entry.id
        assert sidecar["export"] == {"format": "wav", "sample_rate": 48000, "bit_depth": "24", "quality": None}

        comment = sf.SoundFile(str(path)).comment
        assert NAME in comment and entry.id in comment and f"seed {item['seed']}" in comment
        assert "brightness=+0" in comment and "Axis 2=+0" in comment
    assert sorted(p.name for p in out.iterdir()) == sorted(
        name for item in items for name in (Path(item["path"]).name, Path(item["path"]).name + ".json"))


@pytest.mark.parametrize("how", ["id", "id prefix", "name, other case", "file path"])
def test_model_by_id_prefix_and_path(capsys, library, tiny_file, tmp_path, how):
    entry = library[1]
    if how == "file path":
        ref = str(tmp_path / "model.distill")
        save(tiny_file, ref)
    else:
        ref = {"id": entry.id, "id prefix": entry.id[:6], "name, other case": NAME.upper()}[how]
    [item] = _generate_json(capsys, library, "-d", "0.2", "--seed", "1", "-o", tmp_path / "out", model=ref)
    sidecar = json.loads(Path(item["sidecar"]).read_text())
    assert sidecar["model"]["name"] == NAME
    assert sidecar["model"]["id"] == (None if how == "file path" else entry.id)
    assert sf.info(item["path"]).frames == round(0.2 * 48000)


def test_plain_output_lists_the_files(capsys, library, tmp_path):
    code, out, err = _generate(capsys, library, "-d", "0.2", "-o", tmp_path)  # no --seed: a new one, printed
    assert code == 0, err
    [line] = out.splitlines()
    assert "48000 Hz" in line and "seed" in line and Path(line.split()[0]).is_file()
    assert "pass --seed" in err


EXPORTS = [  # (options, sample rate, soundfile format, subtype)
    (["--format", "wav", "--bit-depth", "16"], 44100, "WAV", "PCM_16"),
    (["--format", "wav", "--bit-depth", "24"], 48000, "WAV", "PCM_24"),
    (["--format", "wav", "--bit-depth", "32f"], 96000, "WAV", "FLOAT"),
    (["--format", "flac", "--bit-depth", "16"], 96000, "FLAC", "PCM_16"),
    (["--format", "flac", "--bit-depth", "24"], 44100, "FLAC", "PCM_24"),
    (["--format", "flac"], 48000, "FLAC", "PCM_24"),
    (["--format", "ogg", "--quality", "3"], 44100, "OGG", "VORBIS"),
    (["--format", "ogg"], 96000, "OGG", "VORBIS"),
    (["--format", "mp3"], 44100, "MP3", "MPEG_LAYER_III"),
    (["--format", "mp3", "--quality", "2"], 48000, "MP3", "MPEG_LAYER_III"),
]


@pytest.mark.parametrize(("options", "rate", "container", "subtype"), EXPORTS,
                         ids=[" ".join(e[0][1::2]) + f" {e[1]}" for e in EXPORTS])
def test_every_export_format_reads_back(capsys, library, tmp_path, options, rate, container, subtype):
    duration = 0.7
    [item] = _generate_json(capsys, library, "-d", duration, "--seed", "3", *options, "--sample-rate", rate,
                            "--title", "Low Hum", "--artist", "Someone", "--album", "Takes", "-o", tmp_path)
    path = Path(item["path"])
    fmt = options[1]
    assert path.suffix == f".{fmt}" and item["format"] == fmt and item["sample_rate"] == rate
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels) == (container, subtype, rate, 1)
    assert info.frames == round(duration * rate)  # lossy formats too: exact in libsndfile 1.2.2
    with sf.SoundFile(str(path)) as handle:
        assert (handle.title, handle.artist, handle.album) == ("Low Hum", "Someone", "Takes")
        assert "seed 3" in handle.comment and NAME in handle.comment
    audio, _ = sf.read(str(path))
    assert np.isfinite(audio).all() and 1e-4 < np.abs(audio).max() <= 1.0
    sidecar = json.loads(Path(f"{path}.json").read_text())
    expected_quality = float(options[3]) if "--quality" in options else None
    assert sidecar["export"]["format"] == fmt and sidecar["export"]["sample_rate"] == rate
    assert sidecar["export"]["quality"] == expected_quality
    assert sidecar["tags"]["title"] == "Low Hum"


def test_ogg_quality_is_honoured(capsys, library, tmp_path):
    sizes = {}
    for quality in ("0", "10"):
        [item] = _generate_json(capsys, library, "-d", "2", "--seed", "5", "--format", "ogg", "--quality", quality,
                                "-o", tmp_path / quality)
        sizes[quality] = Path(item["path"]).stat().st_size
    assert sizes["10"] > 1.5 * sizes["0"], sizes


# --- determinism and names --------------------------------------------------------------------------------------------


def test_same_command_same_bytes_and_no_overwriting(capsys, library, tmp_path):
    args = ("-d", "0.8", "-n", "2", "--seed", "11", "--evolution", "0.6")
    first = _generate_json(capsys, library, *args, "-o", tmp_path / "a")
    second = _generate_json(capsys, library, *args, "-o", tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert Path(a["path"]).name == Path(b["path"]).name
        assert Path(a["path"]).read_bytes() == Path(b["path"]).read_bytes()
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    third = _generate_json(capsys, library, *args, "-o", tmp_path / "a")
    names = [Path(item["path"]).name for item in third]
    assert names == [f"{NAME}-seed11-2.wav", f"{NAME}-seed12-2.wav"]
    assert not set(names) & set(before)
    for name, data in before.items():  # the earlier takes are untouched
        assert (tmp_path / "a" / name).read_bytes() == data
    assert Path(third[0]["path"]).read_bytes() == Path(first[0]["path"]).read_bytes()
    assert len(list((tmp_path / "a").iterdir())) == 8  # 4 takes, 4 sidecars


def test_a_left_over_sidecar_is_not_overwritten(capsys, library, tmp_path):
    orphan = tmp_path / f"{NAME}-seed6.wav.json"  # its take was deleted, the notes were kept
    orphan.write_text("my notes")
    [item] = _generate_json(capsys, library, "-d", "0.2", "--seed", "6", "-o", tmp_path)
    assert Path(item["path"]).name == f"{NAME}-seed6-2.wav"
    assert orphan.read_text() == "my notes"


def test_sliders_by_label_and_index_change_the_sound(capsys, library, tmp_path):
    def take(*sliders):
        [item] = _generate_json(capsys, library, "-d", "1", "--seed", "4", "--bit-depth", "32f", *sliders,
                                "-o", tmp_path / f"run{len(os.listdir(tmp_path))}")
        return sf.read(item["path"])[0], json.loads(Path(item["sidecar"]).read_text()), item["path"]

    base, base_side, _ = take()
    one, one_side, _ = take("--slider", "brightness=3")
    both, both_side, path = take("--slider", "brightness=3", "--slider", "2=-5")
    assert not np.allclose(base, one) and not np.allclose(one, both)
    assert base_side["sliders"] == SLIDERS_AT_REST
    assert one_side["sliders"] == {"brightness": 3.0, "Axis 2": 0.0}
    assert both_side["sliders"] == {"brightness": 3.0, "Axis 2": -5.0}
    comment = sf.SoundFile(path).comment
    assert "brightness=+3" in comment and "Axis 2=-5" in comment
    again, _, _ = take("--slider", "1=3", "--slider", "axis 2=-5")  # same positions, other spellings
    assert np.array_equal(again, both)


# --- bad input: exit 1, a clear message, nothing written --------------------------------------------------------------


BAD = {  # case → (extra arguments, text the message must contain)
    "unknown model": (["--model", "gen-cl"], ["no model 'gen-cl'", "did you mean 'gen-cli'"]),
    "unknown slider": (["--slider", "sparkle=1"], ["unknown slider 'sparkle'", "1=brightness, 2=Axis 2"]),
    "unknown slider index": (["--slider", "3=1"], ["unknown slider '3'"]),
    "slider value 11": (["--slider", "brightness=11"], ["brightness", "outside -10"]),
    "slider value -10.5": (["--slider", "2=-10.5"], ["Axis 2", "outside -10"]),
    "slider without value": (["--slider", "brightness"], ["--slider 'brightness'", "NAME_OR_INDEX=VALUE"]),
    "slider value not a number": (["--slider", "brightness=loud"], ["--slider 'brightness=loud'"]),
    "duration 0": (["-d", "0"], ["duration 0.0 s is outside"]),
    "duration -1": (["--duration=-1"], ["duration -1.0 s is outside"]),
    "duration 601": (["-d", "601"], ["duration 601.0 s is outside", "600"]),
    "flac 32f": (["--format", "flac", "--bit-depth", "32f"], ["bit_depth", "flac supports 16, 24"]),
    "mp3 96 kHz": (["--format", "mp3", "--sample-rate", "96000"], ["sample_rate", "mp3 supports 44100, 48000"]),
    "ogg bit depth": (["--format", "ogg", "--bit-depth", "16"], ["bit_depth", "ogg is lossy"]),
    "22.05 kHz": (["--sample-rate", "22050"], ["sample_rate", "22050"]),
    "wav quality": (["--quality", "5"], ["quality", "lossless"]),
    "ogg quality 11": (["--format", "ogg", "--quality", "11"], ["quality", "0 to 10"]),
    "count 0": (["-n", "0"], ["-n/--count must be at least 1"]),
    "evolution 1.5": (["--evolution", "1.5"], ["evolution"]),
    "device cuda": (["--device", "cuda"], ["device 'cuda'", "CUDA is not available"]),
    "device name": (["--device", "tpu"], ["--device", "tpu"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_and_nothing_is_written(capsys, library, tmp_path, case):
    if case == "device cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    args, needles = BAD[case]
    model = NAME
    if args[:1] == ["--model"]:
        model, args = args[1], args[2:]
    out = tmp_path / "out"
    code, stdout, err = _generate(capsys, library, "-d", "0.3", "--seed", "1", *args, "-o", out, model=model)
    _refused(code, err, *needles)
    assert stdout == ""
    assert _empty(out) and os.listdir(tmp_path) == []


def test_ambiguous_name_lists_every_candidate(capsys, tmp_path):
    lib = Library.open(str(tmp_path / "lib"))
    twins = [lib.add(_model_file("twin", seed)) for seed in (1, 2)]
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "generate", "twin", "-d", "0.2", "-o", out, "--library", tmp_path / "lib")
    _refused(code, err, "'twin' matches 2 models", *(t.id for t in twins))
    assert _empty(out)


def test_out_is_an_existing_file(capsys, library, tmp_path):
    target = tmp_path / "takes.wav"
    target.write_bytes(b"mine")
    code, _, err = _generate(capsys, library, "-d", "0.2", "-o", target)
    _refused(code, err, str(target), "must be a folder")
    assert target.read_bytes() == b"mine" and os.listdir(tmp_path) == ["takes.wav"]


def test_unwritable_out_folder(capsys, library, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"mine")
    out = blocker / "takes" / "more"  # its parent is a file: no folder can be made there
    code, _, err = _generate(capsys, library, "-d", "0.2", "-n", "2", "-o", out)
    _refused(code, err, str(blocker), "cannot write")
    assert blocker.read_bytes() == b"mine" and os.listdir(tmp_path) == ["file"]


def test_json_error_is_one_json_object(capsys, library, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = _generate(capsys, library, "-d", "0.2", "--slider", "sparkle=2", "--json", "-o", out)
    _refused(code, err, "unknown slider 'sparkle'")
    report = json.loads(stdout)
    assert isinstance(report, dict) and "unknown slider 'sparkle'" in report["error"]
    assert _empty(out)


# --- reconstruct -----------------------------------------------------------------------------------------------------


def test_reconstruct_writes_the_input_duration_and_never_overwrites_silently(capsys, library, sine_wav, tmp_path):
    out = tmp_path / "again.flac"
    code, stdout, err = _cli(capsys, "reconstruct", NAME, sine_wav, "-o", out, "--library", library[0], "--json")
    assert code == 0, err
    written = json.loads(stdout)
    assert written["path"] == str(out) and written["format"] == "flac" and written["sample_rate"] == 44100
    info = sf.info(str(out))
    assert (info.format, info.samplerate, info.channels, info.frames) == ("FLAC", 44100, 1, 2 * 44100)
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert sidecar["model"]["name"] == NAME and sidecar["duration"] == pytest.approx(2.0)
    assert NAME in sf.SoundFile(str(out)).comment and "sine.wav" in sf.SoundFile(str(out)).comment

    original = out.read_bytes()
    code, _, err = _cli(capsys, "reconstruct", NAME, sine_wav, "-o", out, "--library", library[0])
    _refused(code, err, str(out), "--overwrite")
    assert out.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["again.flac", "again.flac.json"]

    code, stdout, err = _cli(capsys, "reconstruct", NAME, sine_wav, "-o", out, "--overwrite", "--library", library[0])
    assert code == 0, err
    assert out.read_bytes() == original  # deterministic, and replaced in place
    assert str(out) in stdout and sorted(os.listdir(tmp_path)) == ["again.flac", "again.flac.json"]


def test_reconstruct_overwrite_keeps_the_old_file_when_writing_fails(capsys, library, sine_wav, tmp_path):
    out = tmp_path / "again.wav"
    out.write_bytes(b"old take")
    (tmp_path / "again.wav.json").mkdir()  # the sidecar cannot be written: the export is refused
    code, _, err = _cli(capsys, "reconstruct", NAME, sine_wav, "-o", out, "--overwrite", "--library", library[0])
    _refused(code, err, "again.wav.json")
    assert out.read_bytes() == b"old take"
    assert sorted(os.listdir(tmp_path)) == ["again.wav", "again.wav.json"]


def test_reconstruct_refuses_an_unknown_extension(capsys, library, sine_wav, tmp_path):
    code, _, err = _cli(capsys, "reconstruct", NAME, sine_wav, "-o", tmp_path / "x.aiff", "--library", library[0])
    _refused(code, err, "x.aiff", ".wav, .flac, .ogg, .mp3")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("content", [b"", b"not audio at all"], ids=["empty", "text"])
def test_reconstruct_refuses_a_bad_input_file(capsys, library, tmp_path, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    out = tmp_path / "out" / "x.wav"
    code, _, err = _cli(capsys, "reconstruct", NAME, bad, "-o", out, "--library", library[0])
    _refused(code, err, str(bad))
    assert os.listdir(tmp_path) == ["bad.wav"]


def test_reconstruct_unknown_model(capsys, library, sine_wav, tmp_path):
    code, _, err = _cli(capsys, "reconstruct", "nope", sine_wav, "-o", tmp_path / "x.wav", "--library", library[0])
    _refused(code, err, "no model 'nope'")
    assert os.listdir(tmp_path) == []


# --- the real command ------------------------------------------------------------------------------------------------


def test_python_m_distill_cli_generate(library, tmp_path):
    """``python -m distill.cli`` runs the CLI module as ``__main__``: errors and success must still work."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "distill.cli", "generate", NAME, "-d", "0.3", "--seed", "2", "--format", "flac",
               "-o", str(out), "--library", library[0]]
    proc = subprocess.run([*command, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    [item] = json.loads(proc.stdout)
    info = sf.info(item["path"])
    assert (info.format, info.samplerate, info.frames) == ("FLAC", 48000, round(0.3 * 48000))
    proc = subprocess.run([*command, "--slider", "sparkle=1"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1 and "distill: error: unknown slider 'sparkle'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr

