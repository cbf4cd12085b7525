"""Distributed plumbing and determinism for the trainer.

Started with torchrun (WORLD_SIZE > 1) every process trains on its shard
(:class:`EpochSampler`: a seeded permutation per epoch, split by rank) through
DistributedDataParallel (nccl on CUDA, gloo on CPU); rank 0 validates, logs and
writes checkpoints. `train(..., rank=, world_size=)` does the same from
torch.multiprocessing (the tests).
"""
from __future__ import annotations

import math
import os
import random
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


def dist_env() -> Tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def init_process_group(device: torch.device, rank: int, world: int, backend: Optional[str] = None) -> None:
    if not dist.is_initialized():
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend, rank=rank, world_size=world)


def wrap_ddp(module: nn.Module, device: torch.device, find_unused_parameters: bool) -> nn.Module:
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids,
                                               find_unused_parameters=bool(find_unused_parameters))


def all_finite(loss: torch.Tensor, distributed: bool) -> bool:
    """Is the loss finite on every rank? (a bad step is skipped on every rank, or on none)"""
    finite = torch.isfinite(loss.detach()).float()
    if distributed:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return finite.item() >= 1


def average_buffers(model: nn.Module, world: int) -> None:
    """BatchNorm running statistics are per rank (DDP only broadcasts them at each
    forward): average them at the end of an epoch so every rank, the checkpoint
    and the validation see the same model."""
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf)
                buf.div_(world)
            elif name.endswith("num_batches_tracked"):
                dist.broadcast(buf, 0)


def average_scalars(means: Dict[str, float], device: torch.device, world: int) -> Dict[str, float]:
    keys = sorted(means)
    t = torch.tensor([means[k] for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / world for k, v in zip(keys, t.tolist())}


def broadcast_int(value: int, device: torch.device) -> int:
    t = torch.tensor([int(value)], device=device)
    dist.broadcast(t, 0)
    return int(t.item())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                       "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                       "gauss": float(np_state["gauss"])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class EpochSampler(torch.utils.data.Sampler):
    """DistributedSampler with an epoch size: a permutation seeded by (seed, epoch),
    cut to `samples` items, split between ranks in equal parts (every rank runs the
    same number of steps, so DDP stays in lockstep)."""

    def __init__(self, n: int, samples: Optional[int] = None, rank: int = 0, world: int = 1,
                 seed: int = 0):
        self.n, self.rank, self.world, self.seed = int(n), rank, world, seed
        total = int(samples) if samples else self.n
        self.per_rank = total // world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        need = self.per_rank * self.world
        reps = max(1, math.ceil(need / max(self.n, 1)))
        order = torch.cat([torch.randperm(self.n, generator=g) for _ in range(reps)])[:need]
        return iter(order[self.rank::self.world].tolist())

    def __len__(self) -> int:
        return self.per_rank
