"""The seam between the one training loop and the things it trains.

The trainer (:mod:`foleygen.train.trainer`) knows nothing about codecs or language models: it trains a
:class:`TrainTask`. The compact codec and the audio LM (with its trainable visual encoder, if any) are
each one task, so the project has a single loop with DDP, checkpoints, resume, EMA and logging.
Tasks register themselves by name in :data:`TASKS`; a YAML config selects one with ``task: <name>``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from foleygen.errors import ConfigError


class TrainTask(Protocol):
    """What the trainer needs from the thing it trains."""

    def build_model(self) -> nn.Module:
        """A fresh model (random init, deterministic under the trainer's seed)."""

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        """``(train, validation)``; items are collated by :meth:`collate`."""

    def collate(self, items: list[Any]) -> Any:
        """A batch from dataset items (tensors on CPU; the trainer moves them)."""

    def loss(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss to minimise and named metrics to log (plain floats)."""

    @torch.no_grad()
    def validate(self, model: nn.Module, batch: Any) -> dict[str, float]:
        """Metrics on one validation batch (averaged by the trainer)."""

    def save_pretrained(self, model: nn.Module, directory: Path) -> None:
        """Write a loadable checkpoint directory (``config.json`` + ``model.safetensors``)."""


#: name -> factory(config dict) -> TrainTask. Filled by the modules that define tasks.
TaskFactory = Callable[[dict[str, Any]], TrainTask]
TASKS: dict[str, TaskFactory] = {}


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Decorator: ``@register_task("codec")`` on a factory taking the task's config dict."""

    def wrap(factory: TaskFactory) -> TaskFactory:
        TASKS[name] = factory
        return factory

    return wrap


#: Modules that register the built-in tasks, imported on demand (``task: lm`` needs the LM stack only).
BUILTIN_TASK_MODULES = {"lm": "foleygen.train.lm_task", "codec": "foleygen.codecs.training"}


def build_task(config: dict[str, Any]) -> TrainTask:
    """The :class:`TrainTask` named by ``config["task"]`` (importing its module: built-in, or
    ``task_module: package.module`` for tasks defined elsewhere)."""
    name = config.get("task")
    if not isinstance(name, str):
        raise ConfigError(f"config needs `task: <name>` (one of {sorted(set(TASKS) | set(BUILTIN_TASK_MODULES))})")
    modules = config.get("task_module") or []
    modules = [modules] if isinstance(modules, str) else list(modules)
    if name not in TASKS and name in BUILTIN_TASK_MODULES:
        modules.append(BUILTIN_TASK_MODULES[name])
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            raise ConfigError(f"task {name!r}: cannot import {module} ({err})") from None
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known: {sorted(set(TASKS) | set(BUILTIN_TASK_MODULES))}")
    return TASKS[name](config)
