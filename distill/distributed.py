"""Agreement between data-parallel training processes, so no rank waits for a collective that never comes.

With DDP every rank must take the same decisions at the same step: skip a step whose loss or
gradients are not finite, stop for the time budget, stop early. A rank that decides alone leaves
the others blocked in the next gradient all-reduce forever. :class:`Collective` is the small
interface the plain training loop uses for those decisions; :class:`SingleProcess` is the
identity (tests, the plain loop, one worker) and :class:`TorchDistributed` uses the process
group that Ray Train (or ``torchrun``) set up. torch.distributed only: no Ray here.
"""

from __future__ import annotations

from typing import Protocol

import torch


class Collective(Protocol):
    world_size: int

    def any(self, flags: list[bool]) -> list[bool]:
        """Element-wise: is each flag set on at least one rank?"""
        ...

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks."""
        ...


class SingleProcess:
    world_size = 1

    def any(self, flags: list[bool]) -> list[bool]:
        return list(flags)

    def sum(self, values: list[float]) -> list[float]:
        return list(values)


class TorchDistributed:
    """Collectives over the default ``torch.distributed`` process group (gloo on CPU, NCCL on CUDA)."""

    def __init__(self, device: torch.device):
        import torch.distributed as dist

        self.dist = dist
        self.device = device  # NCCL reduces only CUDA tensors
        self.world_size = dist.get_world_size()

    def _reduce(self, values: list[float], op) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64 if self.device.type == "cpu" else torch.float32,
                              device=self.device)
        self.dist.all_reduce(tensor, op=op)
        return tensor.tolist()

    def any(self, flags: list[bool]) -> list[bool]:
        return [v > 0 for v in self._reduce([float(f) for f in flags], self.dist.ReduceOp.MAX)]

    def sum(self, values: list[float]) -> list[float]:
        return self._reduce(values, self.dist.ReduceOp.SUM)
