"""The seam between the one training loop and the things it trains.

The trainer (:mod:`foleygen.train.trainer`) knows nothing about codecs or language models: it trains a
:class:`TrainTask`. The compact codec and the audio LM (with its trainable visual encoder, if any) are
each one task, so the project has a single loop with DDP, checkpoints, resume, EMA and logging.
Tasks register themselves by name in :data:`TASKS`, each with the dataclass of its whole config
(:data:`TASK_CONFIGS`); a YAML config selects one with ``task: <name>`` and is parsed into that dataclass
once (:func:`parse_run_config`), so that no section or key is silently ignored. A task that trains part
of its model with an optimiser of its own declares it as an :class:`ExtraOptimizer`.
"""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from foleygen.config import parse_config
from foleygen.errors import ConfigError
from foleygen.train.run_config import RunConfig


class TrainTask(Protocol):
    """What the trainer needs from the thing it trains."""

    def build_model(self) -> nn.Module:
        """A fresh model (random init, deterministic under the trainer's seed)."""

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        """``(train, validation)``; items are collated by :meth:`collate`."""

    def collate(self, items: list[Any]) -> Any:
        """A batch from dataset items (tensors on CPU; the trainer moves them)."""

    def loss(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss to minimise and named metrics to log (plain floats).

        The trainer backpropagates the loss once per micro-batch; the gradients of the parameters of an
        :class:`ExtraOptimizer` come from the same backward. A ``loss`` metric, when given, is what is
        logged as ``loss`` (e.g. the generator's objective without the discriminator's term).
        """

    @torch.no_grad()
    def validate(self, model: nn.Module, batch: Any) -> dict[str, float]:
        """Metrics on one validation batch (averaged by the trainer)."""

    def save_pretrained(self, model: nn.Module, directory: Path) -> None:
        """Write a loadable checkpoint directory (``config.json`` + ``model.safetensors``)."""


@dataclass
class ExtraOptimizer:
    """An optimiser a task runs beside the trainer's AdamW over parameters of its own (a discriminator).

    Declared by the optional task method ``extra_optimizers(model) -> list[ExtraOptimizer]``, called once
    after the model is built, moved to its device and made identical on every process. The trainer then
    keeps ``params`` out of its own optimiser and out of its gradient clipping, averages their gradients
    over processes with the rest of the model's, calls :meth:`step` once per optimiser step, saves and
    restores the optimiser's state in ``trainer_state.pt`` (under ``name``), and zeroes the gradients.

    Their gradients come from the trainer's one backward pass over the task's loss, so the loss must
    route them there (and only there): e.g. a GAN adds the discriminator's loss on *detached* fakes to
    the total, and computes the generator's adversarial terms through detached copies of the
    discriminator's parameters. Accumulated micro-batches are averaged as for the main optimiser.

    Attributes:
        name: key of the state in the checkpoint (unique within the task).
        params: the parameters it moves; all must be parameters of the model.
        optimizer: the optimiser over ``params`` (for exact resume, a deterministic one, e.g.
            ``foreach=False``).
        start_step: first optimiser step at which it steps; before, its gradients are discarded.
        grad_clip: max norm of its gradients (0 = no clipping).
    """

    name: str
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    start_step: int = 0
    grad_clip: float = 0.0

    def step(self, step: int) -> dict[str, float]:
        """Apply the synchronised gradients at optimiser step ``step``; returns metrics to log.

        A non-finite gradient norm skips the update (every process sees the same averaged gradients, so
        every process skips). Override to step differently (several updates, a schedule).
        """
        if step < self.start_step:
            return {}
        grads = [p for p in self.params if p.grad is not None]
        if not grads:
            return {}
        norm = float(torch.nn.utils.clip_grad_norm_(grads, self.grad_clip if self.grad_clip > 0 else float("inf")))
        if not math.isfinite(norm):
            return {f"{self.name}/grad_norm": norm, f"{self.name}/skipped": 1.0}
        self.optimizer.step()
        return {f"{self.name}/grad_norm": norm}


#: name -> factory(typed run config) -> TrainTask. Filled by the modules that define tasks.
TaskFactory = Callable[[Any], TrainTask]
TASKS: dict[str, TaskFactory] = {}
#: name -> the dataclass of the task's whole run config (a :class:`RunConfig` subclass)
TASK_CONFIGS: dict[str, type[RunConfig]] = {}


def register_task(name: str, config: type[RunConfig]) -> Callable[[TaskFactory], TaskFactory]:
    """Decorator: ``@register_task("codec", config=CodecRunConfig)`` on a factory taking the parsed config.

    ``config`` is the dataclass of the whole YAML (the common sections of :class:`RunConfig` plus the
    task's own): :func:`parse_run_config` parses every run into it, unknown names failing.
    """

    def wrap(factory: TaskFactory) -> TaskFactory:
        TASKS[name] = factory
        TASK_CONFIGS[name] = config
        return factory

    return wrap


#: Modules that register the built-in tasks, imported on demand (``task: lm`` needs the LM stack only).
BUILTIN_TASK_MODULES = {"lm": "foleygen.train.lm_task", "codec": "foleygen.train.codec_task"}


def task_config_class(config: dict[str, Any]) -> type[RunConfig]:
    """The run-config dataclass of the task that ``config["task"]`` names (importing its module: built-in,
    or ``task_module: package.module`` for tasks defined elsewhere)."""
    name = config.get("task")
    known = sorted(set(TASKS) | set(BUILTIN_TASK_MODULES))
    if not isinstance(name, str) or not name:
        raise ConfigError(f"config needs `task: <name>` (one of {known})")
    modules = config.get("task_module") or []
    modules = [modules] if isinstance(modules, str) else list(modules)
    if name not in TASKS and name in BUILTIN_TASK_MODULES:
        modules.append(BUILTIN_TASK_MODULES[name])
    for module in modules:
        try:
            importlib.import_module(str(module))
        except ModuleNotFoundError as err:
            raise ConfigError(f"task {name!r}: cannot import {module} ({err})") from None
    if name not in TASKS:
        close = difflib.get_close_matches(name, sorted(set(TASKS) | set(BUILTIN_TASK_MODULES)), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown task {name!r}{hint}; known: {sorted(set(TASKS) | set(BUILTIN_TASK_MODULES))}")
    return TASK_CONFIGS[name]


def parse_run_config(config: dict[str, Any], source: str | None = None) -> RunConfig:
    """``config`` (a whole YAML, overrides applied) parsed into its task's run-config dataclass.

    Unknown sections and keys raise :class:`~foleygen.config.UnknownKeyError` with the nearest valid
    name; ``source`` (the YAML's path) is named in the messages.
    """
    return parse_config(task_config_class(config), config, source)


def build_task(config: dict[str, Any] | RunConfig, source: str | None = None) -> TrainTask:
    """The :class:`TrainTask` of a run config (a dict is parsed first, see :func:`parse_run_config`)."""
    run = parse_run_config(config, source) if isinstance(config, dict) else config
    return TASKS[run.task](run)
