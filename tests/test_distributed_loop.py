"""The plain loop under real DDP (two gloo processes): a non-finite loss on one rank is skipped by both
ranks together, so no rank hangs and the replicas stay identical."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from distill.distributed import SingleProcess, TorchDistributed
from distill.train_loop import TrainConfig, train_loop


class _Loss(torch.nn.Module):
    """Mean squared error; rank ``bad_rank`` returns NaN on its ``bad_call``-th call (0-based)."""

    def __init__(self, bad_rank: int, bad_call: int):
        super().__init__()
        self.bad_rank, self.bad_call, self.calls = bad_rank, bad_call, 0

    def forward(self, recon, target, mean, logvar, step):
        total = (recon - target).square().mean()
        if dist.get_rank() == self.bad_rank and self.calls == self.bad_call:
            total = total * float("nan")
        self.calls += 1
        return {"total": total}


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.layer(x), x, x


def _worker(rank: int, port: int, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(_Model())
        generator = torch.Generator().manual_seed(rank)
        data = [torch.randn(3, 4, generator=generator) for _ in range(4)]
        cfg = TrainConfig(epochs=2, batch_size=3, patience=0)
        state, reason = train_loop(model, _Loss(bad_rank=1, bad_call=2), lambda epoch: data, None, cfg, 4,
                                   collective=TorchDistributed(torch.device("cpu")))
        results[rank] = (state.step, state.skipped_steps, reason,
                         [p.detach().clone() for p in model.module.parameters()])
    finally:
        dist.destroy_process_group()


def test_ranks_skip_a_bad_step_together_and_stay_identical():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    results = manager.dict()
    mp.start_processes(_worker, args=(port, results), nprocs=2, join=True, start_method="spawn")
    (steps0, skipped0, reason0, params0), (steps1, skipped1, reason1, params1) = results[0], results[1]
    assert (skipped0, skipped1) == (1, 1)  # rank 0's loss was fine, it skipped with rank 1
    assert steps0 == steps1 == 7 and reason0 == reason1 == "completed"
    assert all(torch.equal(a, b) for a, b in zip(params0, params1, strict=True))


def test_single_process_collective_is_the_identity():
    one = SingleProcess()
    assert one.any([True, False]) == [True, False] and one.sum([1.0, 2.5]) == [1.0, 2.5]


@pytest.mark.parametrize("flags", [[False, False], [True, False]])
def test_single_process_collective_keeps_flag_order(flags):
    assert SingleProcess().any(flags) == flags
