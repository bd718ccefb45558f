"""The .distill model file: save → load gives the same model; anything damaged, foreign or unsafe is refused."""

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors import safe_open

from distill import model_file
from distill.model import ModelConfig, SpectrogramVAE
from distill.model_file import FORMAT_VERSION, ModelFile, ModelFileError
from distill.prepare_config import PrepareConfig
from distill.spectral_config import SpectralConfig
from distill.stats import SpectralStats
from distill.training_config import TrainingConfig

ROOT = Path(__file__).resolve().parents[1]


def tiny_model_file(name="tiny model", seed=0, analysis=None) -> tuple[ModelFile, SpectrogramVAE]:
    torch.manual_seed(seed)
    config = TrainingConfig(preset="tiny", prepare=PrepareConfig(spectral=SpectralConfig(n_mels=16)),
                            model=ModelConfig(n_mels=16, latent_dim=8, channels=(8, 8, 8, 8, 8)))
    model = SpectrogramVAE(config.model)
    stats = SpectralStats(torch.randn(2, 16), torch.rand(2, 16) + 0.5)
    mf = ModelFile.create(model, config, stats, name=name, lineage=f"run-{seed}", analysis=analysis,
                          training={"run": f"run-{seed}", "epochs": 3, "stopped": "completed", "seconds": 12.5},
                          report={"val_mrstft": 0.9, "ceiling_mrstft": 0.45, "eval_split": "val", "eval_chunks": 4},
                          tags=["pad"], description="a test model")
    return mf, model


@pytest.fixture
def saved(tmp_path):
    mf, model = tiny_model_file()
    path = tmp_path / "tiny.distill"
    model_file.save(mf, path)
    return mf, model, path


def _set_header(data: bytes, change) -> bytes:
    """The file with its safetensors header JSON changed by ``change(header)`` (data section untouched)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    change(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + size:]


def _refused(path: Path, *reasons: str) -> str:
    with pytest.raises(ModelFileError) as info:
        model_file.load(path)
    message = str(info.value)
    assert str(path) in message, message
    assert any(r in message for r in reasons), message
    return message


def test_tiny_config_is_valid_and_meta_complete():
    mf, _ = tiny_model_file()
    assert set(model_file.META_KEYS) <= set(mf.meta)
    assert mf.config.model.n_mels == mf.spectral.n_mels == 16
    assert mf.stats.mean.shape == (2, 16) and mf.name == "tiny model" and mf.lineage == "run-0"
    assert mf.meta["created"].endswith("+00:00") and mf.analysis is None
    assert all(t.device.type == "cpu" and t.is_contiguous() for t in mf.weights.values())


def test_save_load_gives_identical_tensors_meta_and_output(saved):
    mf, model, path = saved
    loaded = model_file.load(path)
    assert loaded.weights.keys() == mf.weights.keys()
    assert all(torch.equal(loaded.weights[k], mf.weights[k]) for k in mf.weights)
    assert loaded.meta == mf.meta
    assert loaded.config == mf.config and loaded.spectral == mf.spectral
    assert torch.equal(loaded.stats.mean, mf.stats.mean) and torch.equal(loaded.stats.std, mf.stats.std)
    rebuilt = model_file.build_model(loaded, "cpu")
    assert not rebuilt.training
    x = torch.randn(2, 2, 16, 40)
    with torch.no_grad():
        expected, _, _ = model.eval()(x)
        got, _, _ = rebuilt(x)
    assert torch.equal(got, expected)


def test_create_copies_the_weights():
    mf, model = tiny_model_file()
    before = {k: v.clone() for k, v in mf.weights.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert all(torch.equal(mf.weights[k], before[k]) for k in before)


def test_bytes_are_deterministic_even_across_processes(saved, tmp_path):
    mf, _, path = saved
    data = path.read_bytes()
    assert model_file.to_bytes(mf) == data == model_file.to_bytes(model_file.from_bytes(data, "x"))
    # safetensors writes its metadata map in a per-process random order; ours must not depend on it.
    again = tmp_path / "again.distill"
    code = ("import sys; from distill import model_file as m; "
            "m.save(m.load(sys.argv[1]), sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, str(path), str(again)], check=True, cwd=ROOT, timeout=120)
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_file_is_plain_safetensors_with_distill_metadata(saved):
    mf, _, path = saved
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        assert set(handle.keys()) == set(mf.weights)
    assert metadata["distill.format"] == str(FORMAT_VERSION)
    meta_text = metadata["distill.meta"]
    assert json.loads(meta_text) == mf.meta
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    assert metadata["distill.sha256"] == hashlib.sha256(meta_text.encode() + b"\0" + data[8 + size:]).hexdigest()
    assert (8 + size) % 8 == 0


def test_with_meta_and_read_meta(saved):
    mf, _, path = saved
    changed = model_file.with_meta(mf, name="other", analysis={"sliders": []})
    assert changed.name == "other" and mf.name == "tiny model" and changed.weights is mf.weights
    with pytest.raises(ValueError, match="unknown model meta key"):
        model_file.with_meta(mf, nme="typo")
    assert model_file.read_meta(path) == mf.meta == model_file.read_meta(path.read_bytes())


@pytest.mark.parametrize("where", ["start", "in-length", "header-start", "mid-header", "header-end", "data-start",
                                   "mid-data", "last-byte"])
def test_truncated_files_are_refused(saved, tmp_path, where):
    _, _, path = saved
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    cut = {"start": 0, "in-length": 5, "header-start": 9, "mid-header": 8 + size // 2, "header-end": 8 + size,
           "data-start": 8 + size + 3, "mid-data": (8 + size + len(data)) // 2, "last-byte": len(data) - 1}[where]
    bad = tmp_path / f"cut-{where}.distill"
    bad.write_bytes(data[:cut])
    message = _refused(bad, "truncated", "not a distill model file")
    if cut > 8:
        assert "truncated" in message and str(cut) in message
    with pytest.raises(ModelFileError):
        model_file.read_meta(bad) if cut < 8 + size else model_file.from_bytes(data[:cut], "x")


def test_tampered_data_is_refused(saved, tmp_path):
    _, _, path = saved
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    bad = tmp_path / "tampered.distill"
    bad.write_bytes(bytes(data))
    _refused(bad, "damaged or modified (checksum mismatch)")
    assert model_file.read_meta(bad)["name"] == "tiny model"  # listing reads the header only


def test_tampered_meta_with_same_header_length_is_refused(saved, tmp_path):
    _, _, path = saved
    data = path.read_bytes()
    needle = b'\\"name\\":\\"tiny model\\"'
    assert data.count(needle) == 1
    bad = tmp_path / "renamed-inside.distill"
    bad.write_bytes(data.replace(needle, needle.replace(b"tiny", b"tidy")))
    assert len(bad.read_bytes()) == len(data)
    _refused(bad, "damaged or modified (checksum mismatch)")


def test_wav_text_and_empty_files_are_not_model_files(tmp_path):
    wav = tmp_path / "song.distill"
    sf.write(str(wav), np.zeros(4800, np.float32), 48000, format="WAV")
    _refused(wav, "not a distill model file")
    text = tmp_path / "notes.distill"
    text.write_text("these are not weights\n" * 10)
    _refused(text, "not a distill model file")
    empty = tmp_path / "empty.distill"
    empty.write_bytes(b"")
    _refused(empty, "not a distill model file")
    with pytest.raises(ModelFileError, match="no such file"):
        model_file.load(tmp_path / "missing.distill")


def test_plain_safetensors_without_distill_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.distill"
    save_file({"w": torch.zeros(3)}, str(path))
    _refused(path, "without distill metadata")


@pytest.mark.parametrize(("version", "reason"), [("2", "made by a newer distill"), ("0", "older model file format")])
def test_other_format_versions_are_refused(saved, tmp_path, version, reason):
    _, _, path = saved
    bad = tmp_path / f"v{version}.distill"
    bad.write_bytes(_set_header(path.read_bytes(), lambda h: h["__metadata__"].update({"distill.format": version})))
    message = _refused(bad, reason)
    assert "checksum" not in message


def test_missing_meta_keys_and_weights_that_do_not_fit_are_refused(saved, tmp_path):
    mf, _, _ = saved
    meta = {k: v for k, v in mf.meta.items() if k != "lineage"}
    bad = tmp_path / "nolineage.distill"
    bad.write_bytes(model_file._encode(mf.weights, json.dumps(meta), "1"))
    _refused(bad, "missing meta key(s) ['lineage']")

    config = mf.config.to_dict()
    config["model"]["latent_dim"] = 4
    wrong = tmp_path / "wrong.distill"
    model_file.save(model_file.with_meta(mf, config=config), wrong)
    _refused(wrong, "weights do not fit the config")

    fewer = tmp_path / "fewer.distill"
    weights = dict(mf.weights)
    weights.pop("head.bias")
    fewer.write_bytes(model_file.to_bytes(ModelFile(weights, mf.meta)))
    assert "head.bias" in _refused(fewer, "weights do not fit the config")


def test_pickles_are_refused_without_running_anything(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.distill"
    evil.write_bytes(pickle.dumps({"weights": Exploit()}))
    _refused(evil, "not a distill model file")
    torch_file = tmp_path / "checkpoint.distill"
    torch.save({"model": {"w": torch.zeros(2)}, "x": Exploit()}, torch_file)
    _refused(torch_file, "not a distill model file")
    assert not marker.exists()
