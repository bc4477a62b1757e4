"""Batches for the trainer: the data order of an epoch (a pure function of seed and epoch) and moving
batches to the device.

Resuming mid-epoch skips the batches already consumed, so the order must not depend on anything but
``(seed, epoch)``: a ``DistributedSampler`` permutation, cut into batches of ``batch_size`` per rank.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from foleygen.train.distributed import DistInfo


def epoch_loader(
    dataset: Dataset,
    info: DistInfo,
    *,
    seed: int,
    epoch: int,
    start_batch: int,
    batch_size: int,
    collate: Callable[[list[Any]], Any],
    num_workers: int,
) -> DataLoader:
    """This rank's batches of ``epoch`` from batch ``start_batch`` on (drop-last; shuffled by seed+epoch)."""
    sampler = DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    indices = list(sampler)
    bs = batch_size
    batches = [indices[i * bs : (i + 1) * bs] for i in range(start_batch, len(indices) // bs)]
    # Its own generator: creating a DataLoader iterator otherwise draws from the global RNG, which
    # would shift dropout after a mid-epoch resume.
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch * 1009 + info.rank)
    return DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=num_workers,
        generator=gen,
        pin_memory=info.device.type == "cuda",
        persistent_workers=False,
    )


def move_to(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor inside (dicts, lists, tuples, dataclasses) moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple) and not hasattr(obj, "_fields"):
        return type(obj)(move_to(v, device) for v in obj)
    if hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(move_to(v, device) for v in obj))
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, type):
        return dataclasses.replace(
            obj, **{f.name: move_to(getattr(obj, f.name), device) for f in dataclasses.fields(obj) if f.init}
        )
    return obj


__all__ = ["epoch_loader", "move_to"]
