"""Everything that can live on object storage does, against a real S3 API: moto's server on 127.0.0.1.

The audio folder, the prepared cache, the run storage and the model library are all ``s3://`` URIs;
credentials and the endpoint come from the usual ``AWS_*`` variables, read by pyarrow. The
end-to-end test runs the real CLI in subprocesses (each with its own embedded Ray, whose workers
inherit the variables) from an empty working folder, and checks that nothing was written there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
import soundfile as sf
from ports import free_port

from distill.audio_io import AudioFileError, load_audio, load_segment, probe
from distill.source_folder import SourceFolder, file_sha256, stat_file
from distill.storage import Store

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "distill-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with one bucket; the ``AWS_*`` environment points at it."""
    pytest.importorskip("moto.server")
    import boto3

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start: {log.read_text(errors='replace')[-2000:]}") from None
                time.sleep(0.2)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _upload(local: Path, uri: str) -> None:
    """Copy the tree under ``local`` to ``uri`` (what `aws s3 sync` would do)."""
    store = Store.open(uri)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        store.write_bytes(path.relative_to(local).as_posix(), path.read_bytes())


def _objects(prefix: str) -> list[str]:
    store = Store.open(f"s3://{BUCKET}/{prefix}")
    return sorted(store.list_files())


def _modified(prefix: str) -> dict[str, int]:
    store = Store.open(f"s3://{BUCKET}/{prefix}")
    infos = store.filesystem.get_file_info(pafs.FileSelector(store.root, recursive=True))
    return {info.path: info.mtime_ns for info in infos if info.type == pafs.FileType.File}


@pytest.fixture(scope="module")
def mixed_tree(tmp_path_factory, example_dir):
    """A local tree with audio, a sub-folder, hidden files, a cache folder and a non-audio file."""
    root = tmp_path_factory.mktemp("tree")
    for name in ("kick.wav", "bell_g3.flac", "pluck_e4.wav"):
        shutil.copy(example_dir / name, root / name)
    (root / "sub").mkdir()
    shutil.copy(example_dir / "snare.wav", root / "sub" / "Snare.WAV")
    (root / ".hidden.wav").write_bytes((example_dir / "kick.wav").read_bytes())
    (root / ".distill" / "cache").mkdir(parents=True)
    (root / ".distill" / "cache" / "x.wav").write_bytes((example_dir / "kick.wav").read_bytes())
    (root / "notes.txt").write_text("not audio")
    wave = (example_dir / "kick.wav").read_bytes()
    (root / "truncated.wav").write_bytes(wave[: len(wave) // 2])  # the header still says the full length
    return root


def test_a_remote_folder_lists_and_reads_like_the_same_local_folder(s3, mixed_tree):
    uri = f"s3://{BUCKET}/tree"
    _upload(mixed_tree, uri)
    local, remote = SourceFolder.open(mixed_tree), SourceFolder.open(uri + "/")
    assert remote.location == uri and remote.is_remote and not local.is_remote
    listed = remote.list_audio()
    assert list(listed) == list(local.list_audio()) == ["bell_g3.flac", "kick.wav", "pluck_e4.wav",
                                                        "sub/Snare.WAV", "truncated.wav"]
    for rel, stat in listed.items():
        assert stat == stat_file(remote.locate(rel)) and stat.size == (mixed_tree / rel).stat().st_size
        assert file_sha256(remote.locate(rel)) == file_sha256(local.locate(rel))
    for rel in ("bell_g3.flac", "sub/Snare.WAV"):
        there, here = remote.locate(rel), local.locate(rel)
        assert probe(there).frames == probe(here).frames and probe(there).format == probe(here).format
        np.testing.assert_array_equal(load_audio(there), load_audio(here))
        np.testing.assert_array_equal(load_segment(there, 1000, 24000), load_segment(here, 1000, 24000))


def test_remote_problems_name_the_location(s3, mixed_tree):
    uri = f"s3://{BUCKET}/tree"
    _upload(mixed_tree, uri)
    with pytest.raises(AudioFileError, match=r"s3://distill-test/tree/truncated.wav: truncated"):
        probe(f"{uri}/truncated.wav")
    with pytest.raises(AudioFileError, match="tree/none.wav: file does not exist"):
        probe(f"{uri}/none.wav")
    with pytest.raises(FileNotFoundError, match=f"s3://{BUCKET}/nothing-here: folder does not exist"):
        SourceFolder.open(f"s3://{BUCKET}/nothing-here")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        SourceFolder.open(f"{uri}/kick.wav")


def test_store_locations_reopen_in_another_process(s3, tmp_path):
    """``Store.path`` drops the scheme (``bucket/prefix``); what is handed to trials, workers and Tune
    must be a location that opens the same folder again."""
    store = Store.open(f"s3://{BUCKET}/runs/")
    assert store.locate("a/b") == f"s3://{BUCKET}/runs/a/b" and store.locate() == f"s3://{BUCKET}/runs"
    assert Store.open(f"s3://{BUCKET}/x?region=us-east-1").locate("y") == f"s3://{BUCKET}/x/y?region=us-east-1"
    store.write_bytes("a/b/file.txt", b"hello")
    assert Store.open(store.locate("a/b")).read_bytes("file.txt") == b"hello"
    assert Store.open(tmp_path).locate("z") == str(tmp_path / "z")


def _distill(*args, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "distill.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_prepare_train_and_generate_with_everything_on_s3(s3, example_dir, tmp_path):
    """Dataset, cache, run storage and library on ``s3://``; then a take from the model read back from S3."""
    data, cache = f"s3://{BUCKET}/e2e/sounds", f"s3://{BUCKET}/e2e/cache"
    runs, library = f"s3://{BUCKET}/e2e/runs", f"s3://{BUCKET}/e2e/models"
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    for name in ("kick.wav", "bell_g3.flac", "pluck_e4.wav", "snare.wav"):
        shutil.copy(example_dir / name, sounds / name)
    _upload(sounds, data)
    work = tmp_path / "work"  # the commands run here; nothing may be written here
    work.mkdir()

    proc = _distill("prepare", data, "--cache", cache, "--expansion", "1", "--yes", "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    prepared = json.loads(proc.stdout)
    assert prepared["files_ok"] == 4 and prepared["cache"] == cache and prepared["rows_train"] > 0
    assert "manifest.json" in _objects("e2e/cache") and any(p.endswith(".parquet") for p in _objects("e2e/cache"))
    cache_before = _modified("e2e/cache")

    proc = _distill("train", data, "--preset", "tiny", "--epochs", "1", "--cache", cache, "--storage", runs,
                    "--library", library, "--name", "s3run", "--yes", "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    trained = json.loads(proc.stdout)
    assert _modified("e2e/cache") == cache_before  # the cache prepared above was reused, not rebuilt
    assert {"run.json", "report.json", "metrics.csv", "model.distill"} <= set(_objects("e2e/runs/s3run"))
    assert any(p.startswith("checkpoints/") for p in _objects("e2e/runs/s3run"))
    assert any(p.endswith(".distill") for p in _objects("e2e/models"))

    proc = _distill("generate", "s3run", "--library", library, "-d", "1.5", "--seed", "4", "-o", tmp_path / "takes",
                    "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    (take,) = json.loads(proc.stdout)
    audio, rate = sf.read(take["path"])
    assert rate == 48000 and len(audio) == int(1.5 * 48000) and np.abs(audio).max() > 0
    assert trained["model"]["library"] == library and Path(take["path"]).name.startswith("s3run")
    assert list(work.iterdir()) == []  # no local copies, caches or runs on the way


def test_a_config_file_on_storage_is_read_like_a_local_one(s3, tmp_path):
    """A sweep on S3 writes its ``best_config.toml`` there and prints ``distill train … --config <that URI>``."""
    from distill.training_config import ConfigError, load_config_file

    text = 'preset = "tiny"\n[loss]\nkl_beta = 0.001\n'
    Store.open(f"s3://{BUCKET}/configs").write_bytes("best_config.toml", text.encode())
    (tmp_path / "best_config.toml").write_text(text)
    remote = load_config_file(f"s3://{BUCKET}/configs/best_config.toml")
    assert remote == load_config_file(tmp_path / "best_config.toml") == ("tiny", {"loss": {"kl_beta": 0.001}})
    with pytest.raises(ConfigError, match=f"s3://{BUCKET}/configs/none.toml: cannot read"):
        load_config_file(f"s3://{BUCKET}/configs/none.toml")
