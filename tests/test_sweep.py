"""``distill sweep`` end to end on a real local Ray with 2 CPUs: three tiny trials, Ctrl-C after the
first, ``jobs/sweep.py --resume`` finishes the other two without redoing it and writes the table,
the plot, the best config and the library model; the best config then trains with ``distill train``."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from terminal import default_sigint
from test_prepare import _copy

from distill import model_file
from distill.cli import main
from distill.library import Library

ROOT = Path(__file__).resolve().parents[1]
# Small and fast: one epoch per trial, two evaluation chunks, no previews.
BASE = "[train]\nbatch_size = 4\n[run]\neval_chunks = 2\nreport_chunks = 2\nnum_previews = 1\npreview_every = 0\n"


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=default_sigint)


def _wait_for_report(proc: subprocess.Popen, runs: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if list(runs.glob("*/report.json")):
            return
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    raise AssertionError("no trial finished in 5 minutes")


def _summary(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_an_interrupted_sweep_resumes_keeps_the_best_and_its_config_trains(tmp_path, example_dir):
    folder = _copy(example_dir, tmp_path / "data", ("kick.wav", "snare.wav", "pluck_a2.wav", "bell_c5.wav"))
    base = tmp_path / "base.toml"
    base.write_text(BASE)
    library = tmp_path / "library"
    sweep = folder / ".distill/sweeps/s"
    common = ["--num-cpus", "2", "--json", "--library", str(library)]
    # Ctrl-C in a terminal signals the whole process group, the embedded Ray included.
    proc = _start(["-m", "distill.cli", "sweep", str(folder), "--name", "s", "--trials", "3", "--epochs", "1",
                   "--preset", "tiny", "--config", str(base), "--yes", *common])
    _wait_for_report(proc, sweep / "runs")
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130 and "Traceback" not in err, err
    interrupted = _summary(out)
    assert interrupted["stopped"] == "interrupted" and "--resume --name s" in err
    done = [t for t in interrupted["trials"] if t["status"] == "completed"]
    assert len(done) >= 1 and interrupted["best"]["model"] is None  # nothing kept before the sweep ends
    first = Path(done[0]["run_dir"])
    stamp = (first / "report.json").stat().st_mtime_ns

    resumed = subprocess.run([sys.executable, "jobs/sweep.py", str(folder), "--resume", "--name", "s", *common],
                             cwd=ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    summary = _summary(resumed.stdout)
    assert {"best", "trials", "results_csv", "plot", "best_config"} <= set(summary)
    trials = summary["trials"]
    assert summary["stopped"] == "completed" and [t["number"] for t in trials] == [1, 2, 3]
    assert all(t["status"] == "completed" and t["epochs"] == 1 for t in trials)
    # The finished trial was not trained again; the others ran once each.
    assert (first / "report.json").stat().st_mtime_ns == stamp
    for trial in trials:
        assert len((Path(trial["run_dir"]) / "metrics.csv").read_text().splitlines()) == 2  # header + 1 epoch
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == 3

    best = summary["best"]
    assert set(best) >= {"params", "val_mrstft", "model"}
    assert best["val_mrstft"] == min(t["val_mrstft"] for t in trials)
    assert set(best["params"]) == {"loss.mrstft_weight", "loss.if_weight", "loss.kl_beta", "loss.free_bits"}
    assert best["model"]["name"] == "s"
    kept = Library.open(str(library)).info(best["model"]["id"])
    assert kept["name"] == "s"
    # only the kept model is analysed (its sliders computed when it joins the library), not every trial
    assert kept["meta"]["analysis"] and kept["sliders"]
    for trial in trials:
        assert model_file.read_meta(str(Path(trial["run_dir"]) / "model.distill")).get("analysis") is None
    with open(summary["results_csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["trial"] for r in rows] == ["1", "2", "3"] and all(r["status"] == "completed" for r in rows)
    assert {float(r["val_mrstft"]) for r in rows} == {t["val_mrstft"] for t in trials}
    assert Path(summary["plot"]).read_bytes().startswith(b"\x89PNG")
    assert json.loads((sweep / "sweep.json").read_text())["status"] == "completed"

    # The best configuration trains as it is, with the weights the best trial had.
    assert main(["train", str(folder), "--config", summary["best_config"], "--name", "from-sweep",
                 "--library", str(library), "--num-cpus", "2", "--yes", "--json"]) == 0
    run = json.loads((folder / ".distill/runs/from-sweep/run.json").read_text())
    trained = json.loads((Path(best["run_dir"]) / "run.json").read_text())
    assert run["config"]["loss"] == trained["config"]["loss"]
    assert {k: run["config"]["loss"][k.split(".")[1]] for k in best["params"]} == best["params"]
    assert run["config"]["train"] == trained["config"]["train"] and run["preset"] == "tiny"
