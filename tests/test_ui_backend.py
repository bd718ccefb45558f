"""The UI's actions without a browser (distill.ui_backend) and its background jobs (distill.ui_jobs):
refusals name the field, jobs are real ``distill`` processes, one at a time, cancellable, found again
by a new UI process."""

from __future__ import annotations

import os
import socket

import pytest
from ports import free_port
from tiny_models import tiny_model_file

from distill.library import Library
from distill.ui_backend import UiBackend, UiError
from distill.ui_jobs import JobError, JobRunner


@pytest.fixture
def backend(tmp_path):
    library = Library.open(tmp_path / "library")
    library.add(tiny_model_file("solo"))
    return UiBackend(library=str(tmp_path / "library"), history=str(tmp_path / "history"),
                     workspace=tmp_path / "workspace", device="cpu")


@pytest.mark.parametrize(("call", "field"), [
    (lambda b: b.scan(""), "folder:"),
    (lambda b: b.scan("/no/such/folder"), "folder:"),
    (lambda b: b.start_training("  "), "folder:"),
    (lambda b: b.start_prepare("/tmp", expansion=0), "expansion:"),
    (lambda b: b.export(None, "wav", 48000, "24"), "export:"),
    (lambda b: b.sliders("nonexistent"), "model:"),
    (lambda b: b.load(""), "model:"),
    (lambda b: b.request(duration=1, seed=-4, sliders={}, evolution=0.3), "seed"),
    (lambda b: b.request(duration="long", seed=1, sliders={}, evolution=0.3), "duration:"),
    (lambda b: b.save_preset("solo", " ", None), "preset name:"),
    (lambda b: b.delete("solo", confirmed=False), "delete:"),
    (lambda b: b.import_model(None), "import:"),
    (lambda b: b.resume_training(), "resume:"),
    (lambda b: b.compare("", "x"), "compare:"),
])
def test_refusals_name_the_field(backend, call, field):
    with pytest.raises(ValueError, match=field):
        call(backend)


def test_generate_refuses_a_slider_the_model_lacks(backend):
    request = backend.request(duration=0.5, seed=1, sliders={"sparkle": 2.0}, evolution=0.3)
    with pytest.raises(ValueError, match="sparkle"):
        backend.generate("solo", request)


def test_export_refuses_what_the_format_cannot_hold(backend):
    made = backend.generate("solo", backend.request(duration=0.5, seed=1, sliders={}, evolution=0.3))
    with pytest.raises(ValueError, match="mp3 supports 44100, 48000"):
        backend.export(made.take, "mp3", 96000, None)
    assert backend.export(made.take, "ogg", 48000, "24").endswith("solo-seed1.ogg")  # lossy: bit depth ignored


def test_upload_keeps_files_of_the_same_name(backend, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "kick.wav").write_bytes(folder.encode())
    target = backend.save_uploads([str(tmp_path / "a" / "kick.wav"), str(tmp_path / "b" / "kick.wav")])
    names = sorted(p.name for p in __import__("pathlib").Path(target).iterdir())
    assert names == ["kick-2.wav", "kick.wav"]
    with pytest.raises(UiError, match="upload:"):
        backend.save_uploads([])


def test_a_failed_job_says_why(tmp_path):
    runner = JobRunner(tmp_path / "jobs")
    record = runner.start("prepare", ["prepare", str(tmp_path / "missing"), "--json", "--yes"], str(tmp_path))
    ended = runner.wait(120)
    assert ended.id == record.id and ended.exit_code == 1 and not runner.running()
    assert "missing" in runner.error(ended)


def test_one_job_at_a_time_cancel_and_a_new_ui_finds_it(tmp_path):
    runner = JobRunner(tmp_path / "jobs")
    port = free_port()
    # `distill ui` runs until interrupted: a stand-in for a long training job
    record = runner.start("train", ["ui", "--port", str(port), "--library", str(tmp_path / "lib"),
                                    "--workspace", str(tmp_path / "ws")], str(tmp_path), run_name="long")
    assert runner.running()
    with pytest.raises(JobError, match="a train job is running"):
        runner.start("prepare", ["scan", str(tmp_path)], str(tmp_path))
    again = JobRunner(tmp_path / "jobs")  # a second UI process (or a restarted one) sees the same job
    assert again.current().id == record.id and again.running()
    runner.cancel()
    ended = runner.wait(60)
    assert ended.cancelled and ended.ended and not runner.running()
    assert runner.error(ended) is None  # cancelled on request: not an error
    with pytest.raises(JobError, match="no job is running"):
        runner.cancel()
    assert JobRunner(tmp_path / "jobs").current().cancelled


def test_a_take_is_kept_even_when_the_history_cannot_record_it(tmp_path):
    Library.open(tmp_path / "library").add(tiny_model_file("solo"))
    blocked = tmp_path / "history"
    blocked.write_text("a file where the history folder should be")
    backend = UiBackend(library=str(tmp_path / "library"), history=str(blocked), workspace=tmp_path / "ws",
                        device="cpu")
    made = backend.generate("solo", backend.request(duration=0.5, seed=3, sliders={}, evolution=0.3))
    assert made.history_id is None and "Not recorded in the history" in made.summary
    assert made.take.duration == 0.5 and os.path.getsize(made.audio_path) > 0


def test_workspace_defaults_next_to_the_history(tmp_path):
    from distill.ui_backend import default_workspace

    assert default_workspace(str(tmp_path / "history")) == tmp_path / "ui"
    assert default_workspace("s3://bucket/history").name == "ui"  # a local folder, not one in the bucket


def test_ui_refuses_a_taken_port_or_a_bad_one_in_one_line(tmp_path):
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for value, message in ((str(port), "is in use"), ("0", "--port must be from 1 to 65535")):
            proc = subprocess.run([sys.executable, "-m", "distill.cli", "ui", "--port", value, "--workspace",
                                   str(tmp_path / "ws")], capture_output=True, text=True, timeout=60)
            assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_bare_distill_opens_the_ui(monkeypatch):
    import distill.cli_ui
    from distill.cli import main

    seen = {}
    monkeypatch.setattr(distill.cli_ui, "_ui", lambda args: seen.update(vars(args)) or 0)
    assert main([]) == 0
    assert seen["command"] == "ui" and seen["open"] and (seen["host"], seen["port"]) == ("127.0.0.1", 7860)


def test_a_finished_run_is_not_resumed(backend, tmp_path):
    from distill.run_folder import RunFolder
    from distill.ui_jobs import JobRecord

    location = str(tmp_path / "runs" / "done")
    run = RunFolder.open(location)
    run.write_run({"name": "done", "status": "completed"})
    run.write_report({"stopped": "completed", "epochs": 2})
    backend.jobs._write(JobRecord("train-20260101-000000", "train", ["train"], 2**22 + 12345,
                                  "2026-01-01T00:00:00+00:00", str(tmp_path), run=location, run_name="done",
                                  ended="2026-01-01T00:01:00+00:00", exit_code=0))
    with pytest.raises(UiError, match="resume: run done has finished"):
        backend.resume_training()
