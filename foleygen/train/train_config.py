"""The ``train:`` section every task shares: :class:`TrainConfig`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from foleygen.errors import ConfigError


@dataclass
class TrainConfig:
    """The ``train:`` section of a training YAML (every task shares it).

    Attributes:
        steps: optimiser steps in total.
        batch_size: clips per process per micro-batch (global batch = batch_size * grad_accum * world).
        grad_accum: micro-batches accumulated per optimiser step.
        lr: peak learning rate.
        min_lr_ratio: the cosine ends at ``lr * min_lr_ratio``.
        warmup_steps: linear warm-up steps.
        schedule: ``cosine`` or ``constant`` after warm-up.
        weight_decay: AdamW decay for weight matrices (norms, biases, embeddings get none).
        betas: AdamW betas.
        eps: AdamW epsilon.
        grad_clip: max global gradient norm (0 = no clipping; the norm is logged anyway).
        precision: ``fp32``, ``bf16`` (autocast; weights and optimiser stay fp32) or ``auto``: bf16 where
            the device computes it natively (:func:`foleygen.utils.native_bf16`), fp32 elsewhere. An
            explicit ``bf16`` on a device without native bf16 is honoured with a warning: it is emulated
            there, and many times slower than fp32.
        ema_decay: EMA of the weights when > 0; exported checkpoints then carry the EMA weights.
        log_every: steps between logged training metrics.
        val_every: steps between validations (0 = only at the end).
        val_batches: validation batches per process (0 = the whole validation set).
        save_every: steps between checkpoints (0 = only at the end).
        keep_checkpoints: most recent checkpoints kept (older ones deleted).
        sample_every: steps between generated samples in TensorBoard, for tasks with ``log_samples``
            (0 = only at the end; -1 = never).
        num_workers: DataLoader worker processes.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda``.
        num_threads: torch intra-op threads per process (0 = leave torch's default).
        deterministic: ``torch.use_deterministic_algorithms`` (slower on GPU; CPU is deterministic).
        tensorboard: write TensorBoard event files under ``OUT/tb``.
        compile: run the training step's forward (and its backward) through ``torch.compile``
            (Inductor). What it gains depends on the model and the machine (docs/training.md has the
            measurements); the first step pays for the compilation (seconds to a minute).
            Checkpoints are the same either way. Random draws (dropout, condition dropout) come from
            Inductor's own generator, so a compiled run is reproducible but not bit-identical to an
            uncompiled one. If the first compiled step fails (no C++ compiler, an op it cannot handle),
            the run says so once and goes on uncompiled.
        init_from: fine-tuning: start from the weights of this checkpoint directory (the task's
            ``load_pretrained`` if it has one, else its ``model.safetensors`` with matching names).
            Ignored when ``--resume`` finds a checkpoint of the run itself.
    """

    steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    ema_decay: float = 0.0
    log_every: int = 10
    val_every: int = 0
    val_batches: int = 0
    save_every: int = 0
    keep_checkpoints: int = 2
    sample_every: int = 0
    num_workers: int = 0
    device: str = "auto"
    num_threads: int = 0
    deterministic: bool = False
    tensorboard: bool = True
    compile: bool = False
    init_from: str | None = None

    def __post_init__(self) -> None:
        positive = {"steps": self.steps, "batch_size": self.batch_size, "grad_accum": self.grad_accum}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {value}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"train.lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")


__all__ = ["TrainConfig"]
