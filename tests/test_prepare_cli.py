"""``distill prepare`` as a user runs it: real processes, exit codes, JSON, and a build killed half-way."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from terminal import default_sigint
from test_prepare import _bad_files, _copy

from distill.prepare import check_cache
from distill.prepare_config import AugmentConfig, PrepareConfig

ROOT = Path(__file__).resolve().parents[1]
JSON_KEYS = {"cache", "manifest", "files_ok", "files_skipped", "rows_train", "rows_val", "processed_files",
             "reused_files", "bytes", "seconds"}


def distill(*args, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "distill.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.slow
def test_prepare_json_summary_and_only_bad_folder(tmp_path, example_dir):
    folder = _copy(example_dir, tmp_path / "data", ("kick.wav", "pluck_e4.wav"))
    proc = distill("prepare", folder, "--expansion", "1", "--chunk-seconds", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert JSON_KEYS <= set(summary)
    assert summary["files_ok"] == 2 and sorted(summary["processed_files"]) == ["kick.wav", "pluck_e4.wav"]
    again = json.loads(distill("prepare", folder, "--expansion", "1", "--chunk-seconds", "1", "--json").stdout)
    assert again["processed_files"] == [] and len(again["reused_files"]) == 2 and again["fresh"]

    bad = tmp_path / "bad"
    bad.mkdir()
    _bad_files(bad)
    proc = distill("prepare", bad)
    assert proc.returncode == 1
    assert "distill: error: none of the 6 audio files" in proc.stderr
    assert "empty.wav" in proc.stdout and "too short" in proc.stdout  # each bad file with its reason
    proc = distill("prepare", bad, "--json")
    assert proc.returncode == 1 and len(json.loads(proc.stdout.strip().splitlines()[-1])["files_skipped"]) == 6
    proc = distill("prepare", tmp_path / "missing")
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    proc = distill("prepare", folder, "--val-fraction", "2")
    assert proc.returncode == 1 and "val_fraction" in proc.stderr


@pytest.mark.slow
def test_large_cache_without_terminal_needs_yes(tmp_path, example_dir):
    folder = _copy(example_dir, tmp_path / "data", ("kick.wav",))
    proc = distill("prepare", folder, "--confirm-above-gb", "0.000001")
    assert proc.returncode == 1 and "--yes" in proc.stderr and "estimated disk use" in proc.stderr
    assert not (folder / ".distill/cache/manifest.json").exists()


def _journal_entries(folder: Path) -> list[Path]:
    """Finished files recorded by a build; not the store's in-flight temp files (``.tmp-…``), which
    pathlib's glob matches too (a kill between their write and rename leaves one behind)."""
    return [p for p in (folder / ".distill/cache/journal").glob("*.json") if not p.name.startswith(".")]


def _start_and_wait_for_a_finished_file(folder: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "distill.cli", "prepare", str(folder), "--num-cpus", "1", "--yes"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 240
    while not _journal_entries(folder) and time.monotonic() < deadline:
        assert proc.poll() is None, "prepare finished before it could be interrupted"
        time.sleep(0.1)
    return proc


@pytest.mark.slow
def test_ctrl_c_stops_cleanly(tmp_path, example_dir):
    folder = _copy(example_dir, tmp_path / "data", ("pluck_a2.wav", "rain.wav", "wind.wav", "melody.wav",
                                                     "pad_am.wav", "bell_c5.wav"))
    proc = _start_and_wait_for_a_finished_file(folder)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    cache = folder / ".distill/cache"
    assert not (cache / "manifest.json").exists() and not (cache / ".lock").exists()
    rerun = distill("prepare", folder, "--yes", "--json", timeout=600)
    assert rerun.returncode == 0 and json.loads(rerun.stdout.strip().splitlines()[-1])["reused_files"]


@pytest.mark.slow
def test_killed_build_is_never_valid_and_a_rerun_completes_it(tmp_path, example_dir):
    names = ("pluck_a2.wav", "pluck_e4.wav", "bell_c5.wav", "bell_g3.flac", "rain.wav", "wind.wav", "melody.wav",
             "pad_am.wav")
    folder = _copy(example_dir, tmp_path / "data", names)
    cache = folder / ".distill/cache"
    proc = _start_and_wait_for_a_finished_file(folder)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and the Ray it started, mid-build
    proc.communicate()
    cfg = PrepareConfig(augment=AugmentConfig(expansion=10))
    assert not (cache / "manifest.json").exists()
    assert not check_cache(folder, cfg=cfg).fresh  # a killed build is never taken as a valid cache
    finished = len(_journal_entries(folder))
    rerun = distill("prepare", folder, "--yes", "--json", timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert summary["files_ok"] == len(names)
    assert len(summary["reused_files"]) >= finished >= 1  # finished work was kept
    assert check_cache(folder, cfg=cfg).fresh
    manifest = json.loads((cache / "manifest.json").read_text())
    on_disk = {p.relative_to(cache).as_posix() for p in (cache / "shards").rglob("*.parquet")}
    assert on_disk == {s["path"] for s in manifest["shards"]}  # no orphan parts from the killed run
    assert not (cache / "journal").exists()
