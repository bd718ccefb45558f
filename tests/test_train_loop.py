"""The plain training loop, driven directly with lists of tensors (no Ray)."""

import copy
import math

import pytest
import torch
from test_model_and_loss import SMALL, _loss_setup

from distill.model import SpectrogramVAE
from distill.train_loop import TrainConfig, train_loop


def _data():
    _, x, loss = _loss_setup(frames=32)
    return x, loss


def _batches(x):
    def per_epoch(epoch):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        return [x[order[:1]], x[order[1:]]]
    return per_epoch


def test_the_loop_lowers_the_loss_and_reports_every_epoch():
    x, loss = _data()
    torch.manual_seed(0)
    model, reports = SpectrogramVAE(SMALL), []
    state, reason = train_loop(model, loss, _batches(x), lambda: [x], TrainConfig(epochs=20, lr=3e-3, patience=0),
                               steps_per_epoch=2, on_epoch=lambda report, st: reports.append(report))
    assert reason == "completed" and state.epoch == 20 and state.step == 40 and len(reports) == 20
    assert reports[-1].train["total"] < 0.8 * reports[0].train["total"]
    assert set(reports[0].val) >= {"total", "mrstft", "magnitude", "if", "kl"}
    assert reports[-1].lr < reports[0].lr  # cosine schedule
    assert any(r.best for r in reports[1:])


def test_non_finite_steps_are_skipped_and_counted():
    x, loss = _data()
    poisoned = x.clone()
    poisoned[0, 0, 0, 0] = math.nan
    model = SpectrogramVAE(SMALL)
    state, _ = train_loop(model, loss, lambda epoch: [x, poisoned[:1], x], None, TrainConfig(epochs=3, patience=0),
                          steps_per_epoch=3)
    assert state.skipped_steps == 3 and state.step == 6
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_early_stop_time_budget_and_interruption():
    x, loss = _data()
    frozen = TrainConfig(epochs=10, lr=0.0, patience=2)  # nothing improves after the first epoch
    _, reason = train_loop(SpectrogramVAE(SMALL), loss, _batches(x), lambda: [x], frozen, steps_per_epoch=2)
    assert reason == "early_stop"
    state, reason = train_loop(SpectrogramVAE(SMALL), loss, _batches(x), None,
                               TrainConfig(epochs=10, max_minutes=1e-6), steps_per_epoch=2)
    assert reason == "time_budget" and state.epoch == 1 and state.step == 1
    state, reason = train_loop(SpectrogramVAE(SMALL), loss, _batches(x), None, TrainConfig(epochs=10),
                               steps_per_epoch=2, on_epoch=lambda report, st: report.epoch == 3)
    assert reason == "interrupted" and state.epoch == 3
    with pytest.raises(ValueError, match="train.epochs"):
        TrainConfig(epochs=0)


def test_resuming_gives_the_same_result_as_an_uninterrupted_run():
    x, loss = _data()
    cfg = TrainConfig(epochs=4, lr=3e-3, patience=0)
    torch.manual_seed(1)
    straight = SpectrogramVAE(SMALL)
    start = copy.deepcopy(straight.state_dict())
    train_loop(straight, loss, _batches(x), None, cfg, steps_per_epoch=2)

    torch.manual_seed(1)
    first = SpectrogramVAE(SMALL)
    first.load_state_dict(start)
    saved = {}

    def checkpoint(report, state):
        if report.epoch == 2:
            saved.update(model=copy.deepcopy(first.state_dict()), state=copy.deepcopy(state))
            return True  # "killed" after epoch 2
    train_loop(first, loss, _batches(x), None, cfg, steps_per_epoch=2, on_epoch=checkpoint)
    resumed = SpectrogramVAE(SMALL)
    resumed.load_state_dict(saved["model"])
    state, reason = train_loop(resumed, loss, _batches(x), None, cfg, steps_per_epoch=2, state=saved["state"])
    assert reason == "completed" and state.epoch == 4
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_loop_trains_on_cuda_with_mixed_precision():
    x, loss = _data()
    torch.manual_seed(0)
    model, reports = SpectrogramVAE(SMALL), []
    state, reason = train_loop(model, loss, _batches(x), lambda: [x], TrainConfig(epochs=10, lr=3e-3, patience=0),
                               steps_per_epoch=2, device="cuda", on_epoch=lambda report, st: reports.append(report))
    assert reason == "completed" and state.skipped_steps == 0
    assert next(model.parameters()).is_cuda
    assert reports[-1].train["total"] < reports[0].train["total"]
