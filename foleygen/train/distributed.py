"""Process-group plumbing for data-parallel training (one process, or many under ``torchrun``).

The trainer averages gradients itself (:func:`all_reduce_gradients`) instead of wrapping the model in
``DistributedDataParallel``: DDP only synchronises what flows through ``model.forward``, while tasks call
whatever methods they need (``compute_logits``, ``encode``...). One flat all-reduce per optimiser step
after the (possibly accumulated) backward passes gives the same update as DDP, for any task.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, ``local_rank`` on its node, its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when there is more than one process."""
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when ``torchrun`` (or any launcher setting ``WORLD_SIZE``/``RANK``) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group when launched by ``torchrun``, else describe a single process.

    Backend: NCCL when the device is CUDA, gloo otherwise. Each process takes GPU ``LOCAL_RANK``.
    """
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device in ("auto", None):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        index = local if dev.index is None else dev.index
        dev = torch.device("cuda", index)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op alone)."""
    if info.distributed and dist.is_initialized():
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group cleanly: barrier, destroy the group, flush output.

    Gloo sometimes aborts in its destructors at interpreter exit after a successful run; the CLI
    therefore also ends distributed runs with ``os._exit(0)`` after this (see ``cli/commands/train``).
    """
    if info.distributed and dist.is_initialized():
        barrier(info)
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()


@torch.no_grad()
def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every process (identical start, whatever the seeds)."""
    if not info.distributed:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


@torch.no_grad()
def all_reduce_gradients(module: nn.Module, info: DistInfo) -> None:
    """Average ``.grad`` over processes, in one flat buffer per dtype.

    A parameter without a gradient on this rank (unused this step) contributes zeros, and gets a zero
    gradient everywhere, so every process applies the same update.
    """
    if not info.distributed:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[torch.dtype, list[nn.Parameter]] = {}
    for p in params:
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(info.world_size)
        offset = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n


@torch.no_grad()
def sync_buffers(module: nn.Module, info: DistInfo) -> None:
    """Make buffers (running statistics, EMA codebooks) identical: rank 0's win, as in DDP."""
    if not info.distributed:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=0)


def all_reduce_mean(values: dict[str, float], info: DistInfo, weight: float = 1.0) -> dict[str, float]:
    """Weighted mean over processes of named floats (keys must match on every process)."""
    if not info.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([values[k] * weight for k in keys] + [weight], dtype=torch.float64)
    if info.device.type == "cuda":
        t = t.to(info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t = t.cpu()
    total = float(t[-1]) or 1.0
    return {k: float(t[i]) / total for i, k in enumerate(keys)}


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, in rank order (a one-element list alone)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
