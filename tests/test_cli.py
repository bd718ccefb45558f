"""The ``distill`` command as a user runs it: a real subprocess, real files, exit codes and output."""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def distill(*args, check=False):
    proc = subprocess.run([sys.executable, "-m", "distill.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_example_data_is_varied_and_deterministic(tmp_path, example_dir):
    distill("example-data", tmp_path / "again", check=True)
    ours = sorted(p.name for p in example_dir.iterdir())
    assert 8 <= len(ours) <= 12
    assert ours == sorted(p.name for p in (tmp_path / "again").iterdir())
    for name in ours:
        a, b = (example_dir / name).read_bytes(), (tmp_path / "again" / name).read_bytes()
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest(), name
        audio, rate = sf.read(str(example_dir / name))
        assert rate == 48000 and 1.5 <= audio.shape[0] / rate <= 6


def test_scan_json_lists_every_file_and_totals(tmp_path, example_dir):
    folder = tmp_path / "mix"
    folder.mkdir()
    for src in list(example_dir.iterdir())[:3]:
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "broken.wav").write_text("not audio")
    proc = distill("scan", folder, "--json", check=True)
    report = json.loads(proc.stdout)
    by_path = {f["path"]: f for f in report["files"]}
    assert by_path["broken.wav"]["status"] == "skipped" and by_path["broken.wav"]["reason"]
    assert report["totals"]["files_ok"] == 3 and report["totals"]["files_skipped"] == 1
    assert report["totals"]["total_minutes"] > 0
    ok = [f for f in report["files"] if f["status"] == "ok"]
    assert all(f["sample_rate"] == 48000 and f["channels"] in (1, 2) and f["duration"] > 1 for f in ok)


def test_scan_table_output(example_dir):
    proc = distill("scan", example_dir, check=True)
    assert "10 ok, 0 skipped" in proc.stdout


def test_scan_fails_clearly_when_nothing_is_usable(tmp_path):
    (tmp_path / "a.wav").write_text("nope")
    sf.write(str(tmp_path / "quiet.wav"), np.zeros(48000, np.float32), 48000)
    proc = distill("scan", tmp_path)
    assert proc.returncode == 1
    assert "none of the 2 audio files" in proc.stderr
    assert "digital silence" in proc.stdout


def test_scan_missing_folder_and_empty_folder(tmp_path):
    proc = distill("scan", tmp_path / "missing")
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    proc = distill("scan", tmp_path)
    assert proc.returncode == 1 and "no audio files" in proc.stderr


def test_roundtrip_writes_audio_and_reports_quality(tmp_path, example_dir):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("melody.wav", "kick.wav"):
        (folder / name).write_bytes((example_dir / name).read_bytes())
    proc = distill("roundtrip", folder, "--out", tmp_path / "out", "--seconds", "1", "--json", check=True)
    report = json.loads(proc.stdout)
    assert len(report["files"]) == 2
    for item in report["files"]:
        audio, rate = sf.read(item["output"])
        assert rate == 48000 and audio.shape[0] == 48000
        assert 0 < item["mrstft"] < 1.5 and 0 < item["sc"] < 0.6


def test_bad_command_line_is_a_usage_error():
    proc = distill("scan")
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_json_mode_keeps_stray_prints_off_stdout(tmp_path, example_dir, monkeypatch, capsys):
    """Ray's driver prints raylet warnings to sys.stdout in the middle of a run; with --json they
    must land on stderr, so that stdout is exactly one JSON document (a CI run failed on this)."""
    import distill.audio_io
    from distill.cli import main

    real_scan = distill.audio_io.scan_folder

    def noisy_scan(folder):
        print("(raylet) WARNING: 8 PYTHON worker processes have been started")
        return real_scan(folder)

    monkeypatch.setattr(distill.audio_io, "scan_folder", noisy_scan)
    assert main(["scan", str(example_dir), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["totals"]["files_ok"] >= 8 and "raylet" in err
    assert main(["scan", str(example_dir)]) == 0  # without --json, stdout is as it was
    assert "raylet" in capsys.readouterr().out


def test_example_data_is_rewritten_only_where_it_changed(tmp_path):
    """A smoke job writes the example data before each step; unchanged files keep their mtime, so
    the cache the previous step prepared stays fresh."""
    from distill.example_data import write_example_data

    files = write_example_data(tmp_path)
    stamps = {p.name: p.stat().st_mtime_ns for p in files}
    files[0].write_bytes(b"damaged")
    time.sleep(0.01)
    again = write_example_data(tmp_path)
    assert [p.name for p in again] == [p.name for p in files]
    assert {p.name: p.stat().st_mtime_ns for p in again[1:]} == {n: stamps[n] for n in list(stamps)[1:]}
    assert again[0].read_bytes() != b"damaged"
