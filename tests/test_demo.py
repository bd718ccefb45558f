"""`make demo`'s pipeline on the example data: scan, round trip, and the benchmark's JSON report."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_roundtrip_json_on_example_data(tmp_path, example_dir):
    folder = tmp_path / "bench"
    folder.mkdir()
    for name in ("melody.wav", "snare.wav", "bell_g3.flac"):
        (folder / name).write_bytes((example_dir / name).read_bytes())
    proc = subprocess.run([sys.executable, "benchmarks/roundtrip.py", str(folder), "--seconds", "1",
                           "--repeats", "1", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert len(report["files"]) == 3
    for entry in report["files"]:
        for method in ("if", "gl32", "gl100", "oracle"):
            assert set(entry[method]) == {"mrstft", "sc", "seconds"}
    mean = report["mean"]
    # The oracle (true phase) bounds what any phase can do from this magnitude.
    assert mean["oracle"]["mrstft"] < mean["if"]["mrstft"]
    assert mean["oracle"]["mrstft"] < mean["gl32"]["mrstft"]
    assert mean["if"]["seconds"] < mean["gl32"]["seconds"]


def test_benchmark_table_and_bad_folder(tmp_path, example_dir):
    proc = subprocess.run([sys.executable, "benchmarks/roundtrip.py", str(tmp_path / "missing")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_prepare_and_augment_benchmarks_report_json(tmp_path, example_dir):
    folder = tmp_path / "bench"
    folder.mkdir()
    for name in ("kick.wav", "pluck_e4.wav"):
        (folder / name).write_bytes((example_dir / name).read_bytes())
    proc = subprocess.run([sys.executable, "benchmarks/prepare.py", str(folder), "--cpus", "1", "--expansion", "1",
                           "--fresh-files", "20", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    run = report["runs"][0]
    assert run["files"] == 2 and run["x_realtime_build"] > 0
    assert set(run["stage_ms_per_audio_second"]) == {"decode", "augment", "analyze", "write"}
    assert report["fresh"]["files"] == 20 and report["fresh"]["check_median_seconds"] > 0
    proc = subprocess.run([sys.executable, "benchmarks/augment.py", str(folder), "--seconds", "1", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    methods = json.loads(proc.stdout)["methods"]
    # (which method wins depends on the material: on a kick and a pluck alone the plain vocoder can)
    assert all(0 < m["mrstft_round_trip"] < 5 and m["ms_per_audio_second"] > 0 for m in methods.values())


def test_training_benchmarks_report_json(tmp_path, example_dir):
    from test_prepare import _copy

    folder = _copy(example_dir, tmp_path / "bench", ("kick.wav", "snare.wav", "pluck_e4.wav"))
    proc = subprocess.run([sys.executable, "benchmarks/train_throughput.py", str(folder), "--preset", "tiny",
                           "--epochs", "1", "--expansion", "1", "--batch", "4", "--modes", "plain,ray1", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = {r["mode"]: r for r in json.loads(proc.stdout)["results"]}
    assert set(results) == {"plain", "ray1"} and results["plain"]["vs_plain"] == 1.0
    assert all(r["samples_per_second"] > 0 and 0 <= r["data_wait_share"] < 1 for r in results.values())
    proc = subprocess.run([sys.executable, "benchmarks/learning_curve.py", str(folder), "--preset", "tiny",
                           "--minutes", "0.1", "--variants", "512", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert result["epochs"] >= 1 and result["curve"][0]["val_mrstft"] > result["ceiling_mrstft"] > 0


def test_generation_benchmark_reports_json():
    proc = subprocess.run([sys.executable, "benchmarks/generate.py", "--seconds", "1", "--presets", "tiny",
                           "--repeats", "1", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert results and all(r["realtime_factor"] > 0 and r["total_seconds"] > 0 for r in results)
    assert {r["threads"] for r in results} >= {1}
