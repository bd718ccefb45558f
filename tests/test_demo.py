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
