"""``distill train`` and ``jobs/train.py`` as users run them: errors without tracebacks, and a run
killed with SIGKILL mid-training that ``--resume`` finishes without losing more than one epoch."""

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

from distill.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _error(capsys, *argv) -> str:
    assert main(list(map(str, argv))) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("distill: error: ")
    return err


def test_bad_input_is_one_line_naming_the_problem(tmp_path, capsys, example_dir):
    folder = _copy(example_dir, tmp_path / "data", ("kick.wav",))
    assert "does not exist" in _error(capsys, "train", tmp_path / "missing")
    config = tmp_path / "bad.toml"
    config.write_text("[train]\nepochs = 3\nlearning_rate = 0.1\n")
    err = _error(capsys, "train", folder, "--config", config)
    assert "bad.toml" in err and "learning_rate" in err
    config.write_text("[train\n")
    assert "not valid TOML" in _error(capsys, "train", folder, "--config", config)
    config.write_text("[loss]\nkl_beta = -1\n")
    assert "loss.kl_beta" in _error(capsys, "train", folder, "--config", config)
    assert "train.epochs" in _error(capsys, "train", folder, "--epochs", "0")
    assert "no run here to resume" in _error(capsys, "train", folder, "--resume", "nope")
    assert "leave out --preset" in _error(capsys, "train", folder, "--resume", "nope", "--preset", "tiny")
    run = folder / ".distill/runs/taken"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    assert "--resume taken" in _error(capsys, "train", folder, "--name", "taken")
    assert "run name" in _error(capsys, "train", folder, "--name", "../escape")
    assert not (folder / ".distill/cache").exists()  # nothing was prepared for a call that cannot run


def test_config_file_overrides_the_preset(tmp_path, example_dir):
    from distill.training_run import resolve_config

    folder = _copy(example_dir, tmp_path / "data", ("kick.wav",))
    config = tmp_path / "c.toml"
    config.write_text('preset = "aggressive"\n[train]\nepochs = 7\n[prepare.augment]\nexpansion = 2\n')
    cfg = resolve_config(folder, None, str(config), {"train": {"max_minutes": 5}})
    assert cfg.preset == "aggressive" and cfg.train.epochs == 7 and cfg.train.max_minutes == 5
    assert cfg.prepare.augment.expansion == 2 and cfg.train.lr == 2e-3  # the rest from the preset
    assert resolve_config(folder).preset == "auto:conservative"  # one short file: the most regularised


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=default_sigint)


def _wait_for_epoch(proc: subprocess.Popen, latest: Path, after: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if latest.exists() and json.loads(latest.read_text())["epoch"] > after:
            return
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    raise AssertionError("no new checkpoint in 5 minutes")


@pytest.mark.slow
def test_interrupted_and_killed_training_resumes_from_the_last_checkpoint(tmp_path, example_dir):
    folder = _copy(example_dir, tmp_path / "data", ("kick.wav", "snare.wav", "pluck_e4.wav"))
    latest = folder / ".distill/runs/k/checkpoints/latest.json"
    common = ["--num-cpus", "2", "--json"]
    # Ctrl-C in a terminal signals the whole process group, the embedded Ray included.
    proc = _start(["-m", "distill.cli", "train", str(folder), "--preset", "tiny", "--epochs", "4", "--name", "k",
                   "--yes", *common])
    _wait_for_epoch(proc, latest, 0)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stopped"] == "interrupted" and summary["epochs"] >= 1 and "--resume k" in err
    assert json.loads((folder / ".distill/runs/k/run.json").read_text())["status"] == "interrupted"
    # Resumed, then killed outright (the CLI and the Ray it started) after one more epoch ...
    first = json.loads(latest.read_text())["epoch"]
    proc = _start(["-m", "distill.cli", "train", str(folder), "--resume", "k", *common])
    _wait_for_epoch(proc, latest, first)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert json.loads(latest.read_text())["epoch"] < 4
    # ... and finished through jobs/train.py, which is the same command.
    resumed = subprocess.run([sys.executable, "jobs/train.py", str(folder), "--resume", "k", *common], cwd=ROOT,
                             capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["stopped"] == "completed" and summary["epochs"] == 4
    assert set(summary) == {"run_dir", "checkpoint", "epochs", "val_mrstft", "ceiling_mrstft", "stopped", "model"}
    assert summary["model"]["name"] == "k" and len(summary["model"]["id"]) == 12  # kept in the library
    assert summary["val_mrstft"] > summary["ceiling_mrstft"] > 0
    epochs = [int(line.split(",")[0]) for line in
              (folder / ".distill/runs/k/metrics.csv").read_text().splitlines()[1:]]
    assert epochs == [1, 2, 3, 4]  # each resume continued after the last checkpoint: nothing repeated or lost
    assert "resuming run" in resumed.stderr
