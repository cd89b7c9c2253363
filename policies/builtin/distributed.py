"""Data-parallel training across processes (PyTorch DDP), as launched by ``torchrun``.

``torchrun`` (or ``python -m torch.distributed.run``) starts one process per
worker and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`from_env` reads them (no variables, or a world of one:
a plain single process). :func:`started` joins the process group (gloo on the
CPU, nccl on CUDA) and leaves it on exit. Every process trains on its share of
the samples; gradients are averaged by ``DistributedDataParallel``; only rank 0
writes files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """This process writes the checkpoint and reports."""
        return self.rank == 0


def from_env(environ: dict[str, str] | None = None) -> World:
    """The world torchrun described in the environment (a single process without it)."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return World()
    try:
        world = World(int(env.get("RANK", "0")), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    if world.size < 1 or not 0 <= world.rank < world.size:
        raise ValueError(f"rank {world.rank} of a world of {world.size}: not a valid torchrun environment")
    return world


@contextmanager
def started(world: World, device: str) -> Iterator[torch.device]:
    """The device this process trains on, inside the process group of ``world`` (if distributed)."""
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: this torch build sees no CUDA GPU")
        torch.cuda.set_device(world.local_rank)
        where = torch.device("cuda", world.local_rank)
    else:
        where = torch.device("cpu")
    if not world.distributed:
        yield where
        return
    dist.init_process_group("nccl" if device == "cuda" else "gloo", rank=world.rank, world_size=world.size,
                            timeout=timedelta(minutes=10))
    try:
        yield where
    finally:
        dist.destroy_process_group()


def mean(value: float, world: World, device: torch.device) -> float:
    """``value`` averaged over every process (itself when not distributed); ``device`` as :func:`started` gave."""
    if not world.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float32, device=device)
    dist.all_reduce(t)
    return float(t.item()) / world.size
