"""Training on a real local Ray (Train V2): checkpoints and metrics, exact resume, a worker failure
recovered by FailureConfig, two DDP workers on two CPUs, and a collection of five very short files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from distill.checkpoint import LATEST, load_checkpoint
from distill.ray_layer.train import TrainError, train_model
from distill.run_folder import RunFolder

pytestmark = pytest.mark.usefixtures("local_ray")


def setup_module(module):
    # The failure hooks below travel to Ray workers, which cannot import this test file: pickle
    # them by value instead of by reference.
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(module)

# Small and fast, but every part runs: two epochs, previews every epoch, the waveform metric.
OVERRIDES = {"train": {"epochs": 2, "batch_size": 4},
             "run": {"eval_chunks": 2, "report_chunks": 2, "num_previews": 1, "preview_every": 1}}


@pytest.fixture(scope="module")
def small_dir(example_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    for name in ("kick.wav", "snare.wav", "pluck_a2.wav", "bell_c5.wav"):
        shutil.copy(example_dir / name, folder / name)
    return folder


def _train(data_dir, storage, name, **options):
    options.setdefault("overrides", OVERRIDES)
    return train_model(str(data_dir), preset="tiny", name=name, storage=str(storage), num_cpus=2, yes=True,
                       **options)


def _rows(result) -> list[dict]:
    return RunFolder.open(result.run_dir).read_metrics()


def _weights(run_dir: str, epoch: int) -> dict:
    folder = RunFolder.open(run_dir)
    return load_checkpoint(folder.store, f"checkpoints/epoch-{epoch:04d}.pt")["model"]


@pytest.fixture(scope="module")
def uninterrupted(small_dir, tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    return _train(small_dir, storage, "straight")


def test_a_ray_train_run_writes_checkpoints_metrics_previews_and_a_report(uninterrupted):
    run = Path(uninterrupted.run_dir)
    assert uninterrupted.stopped == "completed" and uninterrupted.epochs == 2
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"epoch-0001.pt", "epoch-0002.pt", "best.pt",
                                                                 "latest.json"}
    assert json.loads((run / LATEST).read_text())["epoch"] == 2
    rows = _rows(uninterrupted)
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        for key in ("train_loss_total", "train_loss_mrstft", "train_loss_magnitude", "train_loss_if",
                    "train_loss_kl", "val_loss_total", "val_mrstft", "lr", "seconds"):
            assert np.isfinite(row[key]), key
    assert (run / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for kind in ("original", "recon", "prior"):
        audio, rate = sf.read(run / "previews" / "epoch-0001" / f"{kind}-1.wav")
        assert rate == 48000 and len(audio) == 96000 and np.isfinite(audio).all()
    report = json.loads((run / "report.json").read_text())
    assert report["eval_split"] == "val" and report["eval_chunks"] >= 1
    assert report["val_mrstft"] > report["ceiling_mrstft"] > 0  # a model cannot beat its representation
    assert uninterrupted.val_mrstft == report["val_mrstft"]
    # The checkpoint rebuilds its model from what it holds (config + weights), nothing else.
    from distill.model import ModelConfig, SpectrogramVAE

    payload = load_checkpoint(RunFolder.open(uninterrupted.run_dir).store, "checkpoints/best.pt")
    model = SpectrogramVAE(ModelConfig.from_dict(payload["config"]["model"]))
    model.load_state_dict(payload["model"])
    assert payload["stats"]["mean"].shape == (2, 128)


def test_the_finished_run_is_a_model_file_in_the_library(uninterrupted):
    """The run's best weights, config, statistics, sliders and report, kept in the user's library."""
    from distill.library import Library
    from distill.loaded_model import LoadedModel
    from distill.model_file import load

    run = Path(uninterrupted.run_dir)
    report = json.loads((run / "report.json").read_text())
    assert report["model_file"].endswith("model.distill")
    kept = uninterrupted.model
    assert kept["name"] == "straight" and kept["library"] == str(Library.open().display)
    entry = Library.open().resolve(kept["id"])
    mf = Library.open().load(entry.id)
    assert mf.meta["report"]["val_mrstft"] == report["val_mrstft"]
    assert mf.meta["training"]["epochs"] == 2 and mf.meta["training"]["stopped"] == "completed"
    assert mf.lineage == json.loads((run / "run.json").read_text())["lineage"]
    best = load_checkpoint(RunFolder.open(uninterrupted.run_dir).store, "checkpoints/best.pt")["model"]
    assert all(torch.equal(mf.weights[k], best[k]) for k in best)
    assert mf.analysis is not None and len(mf.analysis["sliders"]) >= 1
    assert load(run / "model.distill").weights.keys() == mf.weights.keys()
    take = LoadedModel.load(kept["id"], device="cpu").generate(1.0, seed=1)
    assert take.audio.shape == (48000,) and np.isfinite(take.audio).all()


def test_resume_continues_from_the_latest_checkpoint_exactly(small_dir, tmp_path, uninterrupted):
    # The first attempt dies after epoch 1 (as a crash or kill -9 would; no retries allowed) ...
    with pytest.raises(TrainError, match="interrupted on purpose"):
        _train(small_dir, tmp_path, "split", after_epoch=FailOnce(tmp_path / "marker", 1, "interrupted on purpose"),
               max_failures=0)
    assert json.loads((tmp_path / "split" / LATEST).read_text())["epoch"] == 1
    # ... and --resume continues from that checkpoint to the same numbers as the run that never stopped.
    resumed = train_model(str(small_dir), resume="split", storage=str(tmp_path), num_cpus=2, yes=True)
    assert resumed.stopped == "completed" and resumed.epochs == 2
    straight, split = _rows(uninterrupted), _rows(resumed)
    assert [r["epoch"] for r in split] == [1, 2]
    for key in ("train_loss_total", "val_loss_total", "val_mrstft"):
        assert split[1][key] == pytest.approx(straight[1][key], rel=1e-5, abs=1e-6), key
    a, b = _weights(uninterrupted.run_dir, 2), _weights(resumed.run_dir, 2)
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)
    assert json.loads((Path(resumed.run_dir) / "run.json").read_text())["resumes"] == 1


class FailOnce:
    """Raise on rank 0 after epoch ``epoch`` the first time only (a marker file remembers)."""

    def __init__(self, marker: Path, epoch: int, message: str = "injected worker failure"):
        self.marker, self.epoch, self.message = marker, epoch, message

    def __call__(self, epoch: int, rank: int) -> None:
        if epoch == self.epoch and rank == 0 and not self.marker.exists():
            self.marker.touch()
            raise RuntimeError(self.message)


def test_a_worker_that_fails_is_restarted_and_continues_from_the_last_checkpoint(small_dir, tmp_path,
                                                                                 uninterrupted):
    marker = tmp_path / "failed-once"
    result = _train(small_dir, tmp_path / "runs", "flaky", after_epoch=FailOnce(marker, 1), max_failures=1)
    assert marker.exists()  # it did fail
    assert result.stopped == "completed" and result.epochs == 2
    rows = _rows(result)
    assert [r["epoch"] for r in rows] == [1, 2]  # epoch 1 was not trained twice
    # Recovery lost nothing: the same numbers as the run that never failed.
    assert rows[1]["train_loss_total"] == pytest.approx(_rows(uninterrupted)[1]["train_loss_total"], rel=1e-5)


def test_a_failure_beyond_max_failures_is_a_readable_error(small_dir, tmp_path):
    class AlwaysFail:
        def __call__(self, epoch, rank):
            raise RuntimeError("broken on purpose")

    with pytest.raises(TrainError, match="broken on purpose"):
        _train(small_dir, tmp_path, "doomed", after_epoch=AlwaysFail(), max_failures=0)
    assert json.loads((tmp_path / "doomed" / "run.json").read_text())["status"] == "failed"


def test_two_ddp_workers_share_two_cpus_with_ray_data(small_dir, tmp_path):
    result = _train(small_dir, tmp_path, "ddp", workers=2,
                    overrides={**OVERRIDES, "train": {"epochs": 1, "batch_size": 4}})
    assert result.stopped == "completed" and result.epochs == 1
    assert np.isfinite(_rows(result)[0]["train_loss_total"])


def test_five_very_short_files_train(tmp_path):
    data = tmp_path / "short"
    data.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(2 * 48000) / 48000
    for i, seconds in enumerate((0.3, 0.5, 0.8, 1.0, 1.2)):
        n = int(seconds * 48000)
        tone = 0.3 * np.sin(2 * np.pi * (220 * (i + 1)) * t[:n]) + 0.01 * rng.standard_normal(n)
        sf.write(data / f"clip{i}.wav", tone.astype(np.float32), 48000)
    # A time budget shorter than one epoch: training stops after the first, and the model is kept.
    result = _train(data, tmp_path / "runs", "short",
                    overrides={**OVERRIDES, "train": {"epochs": 3, "batch_size": 4, "max_minutes": 0.001}})
    assert result.stopped == "time_budget" and result.epochs == 1 and np.isfinite(result.val_mrstft)
    from distill.library import Library

    mf = Library.open().load(result.model["id"])
    assert mf.meta["training"]["stopped"] == "time_budget"
    analysis = mf.analysis  # five clips of under 2 s: one chunk each, fewer in training
    assert 1 <= len(analysis["sliders"]) <= analysis["chunks"] - 1
