"""Checkpoints: atomic, plain data only, newest pointer, pruning, clear errors."""

import pytest
import torch
from test_model_and_loss import SMALL, _loss_setup

from distill.checkpoint import BEST, CheckpointError, epoch_path, latest_checkpoint, load_checkpoint, save_checkpoint
from distill.model import ModelConfig, SpectrogramVAE
from distill.storage import Store
from distill.train_loop import LoopState, TrainConfig, train_loop


def test_save_resume_prune_and_rebuild(tmp_path):
    store = Store.open(tmp_path / "run")
    assert latest_checkpoint(store) is None
    _, x, loss = _loss_setup(frames=32)
    model = SpectrogramVAE(SMALL)

    def on_epoch(report, state):
        save_checkpoint(store, {"model": model.state_dict(), "model_config": SMALL.to_dict(),
                                "loop": state.to_dict(), "stats": {"mean": [[0.0]], "std": [[1.0]]},
                                "metrics": {"train": report.train}},
                        epoch=report.epoch, best=report.epoch == 2, keep_last=2)

    train_loop(model, loss, lambda epoch: [x], None, TrainConfig(epochs=4, patience=0), 1, on_epoch=on_epoch)
    assert latest_checkpoint(store) == epoch_path(4)
    names = sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir())
    assert names == ["best.pt", "epoch-0003.pt", "epoch-0004.pt", "latest.json"]
    data = load_checkpoint(store, epoch_path(4))
    rebuilt = SpectrogramVAE(ModelConfig.from_dict(data["model_config"])).eval()
    rebuilt.load_state_dict(data["model"])
    assert torch.equal(rebuilt(x)[0], model.eval()(x)[0])
    assert load_checkpoint(store, BEST)["epoch"] == 2
    state = LoopState(**data["loop"])
    assert state.epoch == 4 and state.step == 4
    # resuming from the loaded state continues the schedule where it stopped
    state, reason = train_loop(rebuilt.train(), loss, lambda epoch: [x], None, TrainConfig(epochs=5, patience=0), 1,
                               state=state)
    assert reason == "completed" and state.epoch == 5 and state.step == 5


def test_damaged_and_foreign_checkpoints_are_refused(tmp_path):
    store = Store.open(tmp_path / "run")
    save_checkpoint(store, {"model": {"w": torch.ones(3)}}, epoch=1, best=False)
    raw = (tmp_path / "run" / epoch_path(1)).read_bytes()
    (tmp_path / "run" / epoch_path(1)).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(store, epoch_path(1))
    torch.save({"anything": 1}, tmp_path / "run/foreign.pt")
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(store, "foreign.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    torch.save({"format_version": 1, "x": Evil()}, tmp_path / "run/evil.pt")
    with pytest.raises(CheckpointError, match="damaged or not"):
        load_checkpoint(store, "evil.pt")  # weights_only refuses to run pickled code
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(store, "missing.pt")
    (tmp_path / "run/checkpoints/latest.json").write_text('{"path": "checkpoints/epoch-0009.pt"}')
    with pytest.raises(CheckpointError, match="missing"):
        latest_checkpoint(store)
