"""The whole run config of a training YAML, typed: :class:`RunConfig` and each task's subclass of it.

Every task declares the dataclass of its whole config (``@register_task("lm", config=LMRunConfig)``);
the trainer parses the YAML once into it (:func:`foleygen.train.task.parse_run_config`), so that an
unknown section or key anywhere (``trian:``, ``train.lrr``) stops the run with one line naming the nearest
valid name, instead of being ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from foleygen.train.train_config import TrainConfig


@dataclass
class RunConfig:
    """The sections every run has; a task's config class adds its own.

    Attributes:
        task: the registered task name (``lm``, ``codec``, ...).
        task_module: module(s) to import that register the task (tasks defined outside foleygen).
        seed: seed of everything random (weights, data order, dropout).
        out: output directory (``--out`` wins; default ``runs/<config name>``).
        train: the trainer's settings (:class:`~foleygen.train.train_config.TrainConfig`).
    """

    task: str = ""
    task_module: str | list[str] | None = None
    seed: int = 0
    out: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)


__all__ = ["RunConfig"]
