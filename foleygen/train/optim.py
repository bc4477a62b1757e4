"""Optimiser and learning-rate schedule: AdamW with decay/no-decay groups, linear warm-up + cosine."""

from __future__ import annotations

import math
from collections.abc import Collection

import torch
from torch import nn

# Modules whose own parameters are scales/offsets or lookup tables: weight decay would only pull them
# towards zero (a norm's gain of 0 kills its input; an unused embedding row would decay away).
_NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    nn.Embedding,
    nn.EmbeddingBag,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
# Weight-carrying layers: their parameters decay even when their name mentions "emb" ("emb_proj").
_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.MultiheadAttention,
)
_NO_DECAY_NAME_HINTS = ("emb", "null", "pos", "norm", "scale", "gain")


def split_decay_params(
    model: nn.Module, exclude: Collection[nn.Parameter] = ()
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(decay, no_decay)`` trainable parameters of ``model``, but those in ``exclude`` (another optimiser's).

    No decay for: 1-d tensors (biases, norm gains), parameters of embedding and normalisation modules,
    names listed by an optional ``model.no_weight_decay()`` (timm's convention), and free-standing
    parameters (owned by a non-Linear/Conv module) whose name suggests an embedding, null condition,
    positional table or scale. Everything else (Linear/Conv/attention weights) decays.
    """
    explicit = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = {id(p) for p in exclude}
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue  # shared (tied) parameters go into one group only
            seen.add(id(param))
            full = f"{module_name}.{param_name}" if module_name else param_name
            lowered = param_name.lower()
            if (
                param.ndim < 2
                or isinstance(module, _NO_DECAY_MODULES)
                or full in explicit
                or "norm" in type(module).__name__.lower()
                or (not isinstance(module, _DECAY_MODULES) and any(h in lowered for h in _NO_DECAY_NAME_HINTS))
            ):
                no_decay.append(param)
            else:
                decay.append(param)
    return decay, no_decay


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    exclude: Collection[nn.Parameter] = (),
) -> torch.optim.AdamW:
    """AdamW over two parameter groups: ``weight_decay`` for weights, 0 for norms/biases/embeddings.

    Parameters in ``exclude`` (moved by a task's extra optimiser) are left out.
    """
    decay, no_decay = split_decay_params(model, exclude)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
    groups = [g for g in groups if g["params"]]
    # foreach=False: the per-tensor kernel is bit-for-bit the same on every run; resuming compares exactly.
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=False)


def lr_factor(
    step: int, total_steps: int, warmup_steps: int, schedule: str = "cosine", min_lr_ratio: float = 0.0
) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based).

    Linear warm-up from ``1/warmup`` to 1 over ``warmup_steps`` steps, then ``cosine`` decay to
    ``min_lr_ratio`` at ``total_steps`` (or ``constant``).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps  # never exactly 0: the first step already moves the weights
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int,
    schedule: str = "cosine",
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor`; its ``state_dict`` is the step count (resumable)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, schedule, min_lr_ratio)
    )
