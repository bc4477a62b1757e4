"""Training: one loop (:mod:`foleygen.train.trainer`) over :class:`~foleygen.train.task.TrainTask` s.

Tasks: ``lm`` (:mod:`foleygen.train.lm_task`) and ``codec`` (:mod:`foleygen.train.codec_task`), chosen
by ``task:`` in a YAML config; ``foleygen train CONFIG.yaml`` runs it alone or under ``torchrun``. Each
task declares the dataclass of its whole config (a :class:`~foleygen.train.run_config.RunConfig`), and
optionally :class:`~foleygen.train.task.ExtraOptimizer` s for parts it trains with optimisers of its own.
See docs/training.md.
"""

from __future__ import annotations

from typing import Any

from foleygen.train.run_config import RunConfig
from foleygen.train.task import TASKS, ExtraOptimizer, TrainTask, register_task

__all__ = ["TASKS", "ExtraOptimizer", "RunConfig", "TrainConfig", "TrainTask", "Trainer", "register_task", "train"]


def __getattr__(name: str) -> Any:
    # the trainer pulls in the optimiser/DDP plumbing: load it when asked for
    if name in ("Trainer", "TrainConfig", "train"):
        from foleygen.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'foleygen.train' has no attribute {name!r}")
