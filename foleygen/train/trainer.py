"""The one training loop: any :class:`~foleygen.train.task.TrainTask`, one process or many (torchrun).

What it does for every task: AdamW with decay/no-decay groups, warm-up + cosine schedule, gradient
clipping and accumulation, optional bf16 autocast and EMA weights, data-parallel training (gradients
averaged across processes, see :mod:`foleygen.train.distributed`), validation, TensorBoard + JSONL logs,
a progress bar, and atomic checkpoints that resume *exactly*.

Exact resume. A run killed at any point (even SIGKILL) and resumed ends with bit-identical weights to
an uninterrupted run with the same seed, because everything random is either restored or a pure
function of the run's position:

* data order: a ``DistributedSampler`` permutation that depends only on ``(seed, epoch)``; the
  checkpoint stores ``(epoch, batch_in_epoch)`` and resuming skips the consumed batches;
* in-dataset randomness (random crops): datasets with ``set_epoch(epoch)`` derive it from
  ``(seed, epoch, index)``; with ``num_workers=0`` the global RNG (restored) also works;
* dropout / condition dropout: the python, numpy and torch (CPU + CUDA) RNG states of every rank are
  saved and restored; the DataLoader gets its own generator so that creating one never consumes the
  global RNG; validation, sampling and checkpointing run inside :func:`preserved_rng`;
* the optimiser uses the per-tensor (non-foreach) AdamW kernel.

Checkpoint layout (``OUT/checkpoints/step_00001000/``, assembled in a temp dir and renamed)::

    model.safetensors     raw training weights (what resuming loads)
    ema.safetensors       EMA weights (if enabled)
    trainer_state.pt      optimiser, scheduler, EMA count, RNG states per rank, data position, config
    pretrained/           task.save_pretrained(...) -- a loadable model (EMA weights when enabled)

``OUT/final/`` is the pretrained export at the end of training.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from foleygen.config import from_dict, to_dict
from foleygen.errors import CheckpointError, ConfigError, DataError
from foleygen.train import distributed as fdist
from foleygen.train.ema import EMA
from foleygen.train.optim import build_optimizer, build_scheduler
from foleygen.train.task import TASKS, TrainTask
from foleygen.utils import native_bf16, temp_dir_beside

#: Modules that register the built-in tasks, imported on demand (``task: lm`` needs the LM stack only).
BUILTIN_TASK_MODULES = {"lm": "foleygen.train.lm_task", "codec": "foleygen.codecs.training"}

CHECKPOINT_DIRNAME = "checkpoints"
_STEP_DIR = re.compile(r"^step_(\d{8,})$")


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


# ----------------------------------------------------------------------------------------------- RNG
def rng_state(device: torch.device) -> dict[str, Any]:
    """Python, numpy and torch (+ CUDA ``device``) RNG states, as tensors/ints (``weights_only``-safe)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@contextlib.contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """Run a block (validation, sampling, saving) without disturbing the training RNG streams."""
    saved = rng_state(device)
    try:
        yield
    finally:
        set_rng_state(saved, device)


# ------------------------------------------------------------------------------------------- helpers
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
        import dataclasses

        return dataclasses.replace(
            obj, **{f.name: move_to(getattr(obj, f.name), device) for f in dataclasses.fields(obj) if f.init}
        )
    return obj


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


def find_latest_checkpoint(out_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete ``OUT/checkpoints/step_*`` directory (temp dirs never match), or None."""
    root = Path(out_dir) / CHECKPOINT_DIRNAME
    if not root.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _STEP_DIR.match(p.name)) and p.is_dir() and (p / "trainer_state.pt").is_file()
    ]
    return max(found)[1] if found else None


class _JsonlLog:
    """Append-only ``metrics.jsonl`` (one JSON object per line, flushed: readable while training)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a")  # noqa: SIM115 -- lives as long as the trainer

    def write(self, record: dict[str, Any]) -> None:
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


# ------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Trains ``task`` as configured; :meth:`fit` runs to ``train.steps``.

    Args:
        config: the whole run config (``task``, ``seed``, ``out``, ``train`` and the task's sections).
        task: the task (default: built from ``config["task"]``).
        out_dir: where checkpoints and logs go (default ``config["out"]``, else ``runs/<task>``).
        resume: continue from the newest checkpoint in ``out_dir`` (fresh start if there is none).
        quiet: no progress bar or messages.
    """

    def __init__(
        self,
        config: dict[str, Any],
        task: TrainTask | None = None,
        *,
        out_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        quiet: bool = False,
    ) -> None:
        self.config = config
        self.cfg = from_dict(TrainConfig, dict(config.get("train") or {}), "train")
        self.seed = int(config.get("seed", 0))
        self.out_dir = Path(out_dir or config.get("out") or Path("runs") / str(config.get("task", "run")))
        self.quiet = quiet
        self.info = fdist.init_distributed(self.cfg.device)
        if self.cfg.num_threads > 0:
            torch.set_num_threads(self.cfg.num_threads)
        if self.cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        native = native_bf16(self.info.device)
        self.bf16 = self.cfg.precision == "bf16" or (self.cfg.precision == "auto" and native)
        if self.cfg.precision == "bf16" and not native:
            self._warn(
                f"precision bf16 on {self.info.device.type}, which has no native bf16: it is emulated and many "
                "times slower than fp32 (train.precision=auto picks bf16 only where it is native)"
            )
        self.task = task if task is not None else build_task(config)

        self.train_set, self.val_set = self.task.build_datasets()
        if len(self.train_set) < self.cfg.batch_size * self.info.world_size:  # type: ignore[arg-type]
            raise DataError(
                f"training set has {len(self.train_set)} items, fewer than one global batch "  # type: ignore[arg-type]
                f"({self.cfg.batch_size} x {self.info.world_size} processes)"
            )
        _seed_all(self.seed)
        self.model: nn.Module = self.task.build_model()
        resume_from = find_latest_checkpoint(self.out_dir) if resume else None
        seen = fdist.gather_objects(None if resume_from is None else resume_from.name, self.info)
        if len(set(seen)) > 1:
            raise ConfigError(
                f"processes see different checkpoints {sorted(set(map(str, seen)))}: on several nodes "
                "the output directory must be on a filesystem they all share",
                self.out_dir,
            )
        if self.cfg.init_from and resume_from is None:
            self._init_weights(Path(self.cfg.init_from))
        self.model.to(self.info.device)
        fdist.broadcast_module(self.model, self.info)
        self.optimizer = build_optimizer(
            self.model, self.cfg.lr, self.cfg.weight_decay, tuple(self.cfg.betas), self.cfg.eps
        )
        self.scheduler = build_scheduler(
            self.optimizer, self.cfg.steps, self.cfg.warmup_steps, self.cfg.schedule, self.cfg.min_lr_ratio
        )
        self.ema = EMA(self.model, self.cfg.ema_decay) if self.cfg.ema_decay > 0 else None
        # What training steps call: the model itself, or its compiled wrapper (same parameters). Every other
        # use (validation, samples, checkpoints, EMA) goes through ``self.model``, so saved names never
        # carry the wrapper's prefix and evaluation never triggers a recompilation.
        self._step_model: nn.Module = torch.compile(self.model) if self.cfg.compile else self.model
        self._compile_proven = not self.cfg.compile
        # Per-rank training RNG (dropout, condition dropout): ranks must differ, and rank 0 of a
        # multi-process run matches a single-process run.
        _seed_all(self.seed + 1_000_003 * self.info.rank)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.resumed_from: Path | None = None
        if resume:
            if resume_from is not None:
                self._load_checkpoint(resume_from)
            else:
                self._say(f"--resume: no checkpoint in {self.out_dir / CHECKPOINT_DIRNAME}, starting fresh")
        self.writer: Any = None
        self.log: _JsonlLog | None = None

    # ------------------------------------------------------------------------------------ utilities
    def _say(self, message: str) -> None:
        if self.info.is_main and not self.quiet:
            print(f"[foleygen train] {message}", file=sys.stderr, flush=True)

    def _warn(self, message: str) -> None:
        # warnings are not chatter: shown with -q too
        if self.info.is_main:
            print(f"[foleygen train] warning: {message}", file=sys.stderr, flush=True)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(device_type=self.info.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _train_batches(self) -> Iterator[Any]:
        """Batches forever, epoch after epoch, starting at ``(self.epoch, self.batch_in_epoch)``."""
        bs = self.cfg.batch_size
        while True:
            sampler = DistributedSampler(
                self.train_set,
                num_replicas=self.info.world_size,
                rank=self.info.rank,
                shuffle=True,
                seed=self.seed,
                drop_last=True,
            )
            sampler.set_epoch(self.epoch)
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(self.epoch)
            indices = list(sampler)
            batches = [indices[i * bs : (i + 1) * bs] for i in range(self.batch_in_epoch, len(indices) // bs)]
            # Its own generator: creating a DataLoader iterator otherwise draws from the global RNG,
            # which would shift dropout after a mid-epoch resume.
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch * 1009 + self.info.rank)
            loader = DataLoader(
                self.train_set,
                batch_sampler=batches,
                collate_fn=self.task.collate,
                num_workers=self.cfg.num_workers,
                generator=gen,
                pin_memory=self.info.device.type == "cuda",
                persistent_workers=False,
            )
            for batch in loader:
                self.batch_in_epoch += 1
                yield batch
            self.epoch += 1
            self.batch_in_epoch = 0

    # ----------------------------------------------------------------------------------- main loop
    def fit(self) -> dict[str, float]:
        """Train to ``train.steps``; returns the last validation metrics (empty without a val set)."""
        cfg, info = self.cfg, self.info
        if info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(to_dict(self.config), indent=2) + "\n")
            self.log = _JsonlLog(self.out_dir / "metrics.jsonl")
            if cfg.tensorboard:
                self.writer = _tensorboard_writer(self.out_dir / "tb")
        n_params = sum(p.numel() for p in self.model.parameters())
        self._say(
            f"task {self.config.get('task')}: {n_params / 1e6:.2f}M parameters, {len(self.train_set)} "  # type: ignore[arg-type]
            f"training items, {info.world_size} process(es) on {info.device} in {'bf16' if self.bf16 else 'fp32'}, "
            f"out {self.out_dir}" + (f", resumed at step {self.step}" if self.resumed_from else "")
        )
        bar = None
        if info.is_main and not self.quiet:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=cfg.steps, initial=self.step, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True
            )
        batches = self._train_batches()
        last_val: dict[str, float] = {}
        window: dict[str, float] = {}
        window_n = 0
        tokens_t0 = time.perf_counter()
        try:
            while self.step < cfg.steps:
                metrics = self._train_step(batches)
                for k, v in metrics.items():
                    window[k] = window.get(k, 0.0) + v
                window_n += 1
                self.step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}", refresh=False)
                done = self.step >= cfg.steps
                if self.step % max(1, cfg.log_every) == 0 or done:
                    mean = fdist.all_reduce_mean({k: v / window_n for k, v in window.items()}, info)
                    elapsed = time.perf_counter() - tokens_t0
                    mean["steps_per_s"] = window_n / max(elapsed, 1e-9)
                    self._log("train", mean)
                    window, window_n, tokens_t0 = {}, 0, time.perf_counter()
                if (cfg.val_every and self.step % cfg.val_every == 0) or done:
                    last_val = self.validate()
                    if last_val:
                        self._log("val", last_val)
                        if bar is not None:
                            bar.write(
                                f"step {self.step}: "
                                + ", ".join(f"{k} {v:.4f}" for k, v in sorted(last_val.items()) if "/" not in k)
                            )
                if cfg.sample_every >= 0 and ((cfg.sample_every and self.step % cfg.sample_every == 0) or done):
                    self._log_samples()
                if (cfg.save_every and self.step % cfg.save_every == 0) or done:
                    self.save_checkpoint()
            if info.is_main:
                final = self.out_dir / "final"
                _copy_atomic(self.out_dir / CHECKPOINT_DIRNAME / f"step_{self.step:08d}" / "pretrained", final)
                self._say(f"done: {final}")
        finally:
            if bar is not None:
                bar.close()
            if self.writer is not None:
                self.writer.flush()
                self.writer.close()
            if self.log is not None:
                self.log.close()
        return last_val

    def _train_step(self, batches: Iterator[Any]) -> dict[str, float]:
        """One optimiser step over ``grad_accum`` micro-batches; returns this rank's metrics."""
        cfg = self.cfg
        self.model.train()
        summed: dict[str, float] = {}
        for _ in range(cfg.grad_accum):
            batch = move_to(next(batches), self.info.device)
            loss, metrics = self._forward_backward(batch, cfg.grad_accum)
            summed["loss"] = summed.get("loss", 0.0) + float(loss.detach())
            for k, v in metrics.items():
                if k != "loss":
                    summed[k] = summed.get(k, 0.0) + float(v)
        fdist.all_reduce_gradients(self.model, self.info)
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm)) if params else 0.0
        out = {k: v / cfg.grad_accum for k, v in summed.items()}
        out["lr"] = self.optimizer.param_groups[0]["lr"]
        out["grad_norm"] = grad_norm
        if math.isfinite(grad_norm):
            self.optimizer.step()
        else:
            # A non-finite gradient (every rank sees the same averaged norm) skips the update rather
            # than poisoning the weights; the schedule still advances so steps stay aligned.
            out["skipped"] = 1.0
            self._warn(f"step {self.step}: non-finite gradient norm, update skipped")
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        fdist.sync_buffers(self.model, self.info)
        if self.ema is not None:
            self.ema.update(self.model)
        return out

    def _forward_backward(self, batch: Any, grad_accum: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The task's loss on one micro-batch, and its gradients (divided by ``grad_accum``).

        With ``train.compile`` the first call compiles (forward, then backward). Should that fail, the
        error is reported once and the same micro-batch runs uncompiled, as do all later steps; nothing
        had accumulated yet (it is the first micro-batch of the run), so no gradient is lost.
        """
        model = self._step_model
        try:
            with self._autocast():
                loss, metrics = self.task.loss(model, batch, self.step)
            (loss / grad_accum).backward()
        except Exception as err:
            if self._compile_proven:
                raise
            first_line = (str(err).strip().splitlines() or [""])[0][:300]
            self._warn(
                f"train.compile: the compiled step failed ({type(err).__name__}: {first_line}); training uncompiled"
            )
            self._step_model, self._compile_proven = self.model, True
            self.optimizer.zero_grad(set_to_none=True)
            return self._forward_backward(batch, grad_accum)
        self._compile_proven = True
        return loss, metrics

    # ---------------------------------------------------------------------------------- validation
    def validate(self) -> dict[str, float]:
        """Mean of ``task.validate`` over the validation set (all processes), EMA weights too if any."""
        if self.val_set is None or len(self.val_set) == 0:  # type: ignore[arg-type]
            return {}
        metrics = self._validate_weights()
        if self.ema is not None:
            with self.ema.swapped_in(self.model):
                metrics.update({f"ema_{k}": v for k, v in self._validate_weights().items()})
        return metrics

    def _validate_weights(self) -> dict[str, float]:
        sampler = DistributedSampler(
            self.val_set, num_replicas=self.info.world_size, rank=self.info.rank, shuffle=False, drop_last=False
        )
        loader = DataLoader(
            self.val_set,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            collate_fn=self.task.collate,
            num_workers=self.cfg.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )
        sums: dict[str, float] = {}
        count = 0
        was_training = self.model.training
        self.model.eval()
        with preserved_rng(self.info.device), torch.no_grad(), self._autocast():
            for i, batch in enumerate(loader):
                if self.cfg.val_batches and i >= self.cfg.val_batches:
                    break
                for k, v in self.task.validate(self.model, move_to(batch, self.info.device)).items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                count += 1
        self.model.train(was_training)
        return fdist.all_reduce_mean({k: v / max(count, 1) for k, v in sums.items()}, self.info, weight=count)

    def _log_samples(self) -> None:
        hook = getattr(self.task, "log_samples", None)
        if hook is None or self.writer is None or not self.info.is_main:
            return
        was_training = self.model.training
        self.model.eval()
        try:
            with preserved_rng(self.info.device), torch.no_grad(), self._export_weights():
                hook(self.model, self.writer, self.step)
        except Exception as err:  # a sample is a nicety: never let it kill a long run
            self._warn(f"step {self.step}: sample logging failed ({type(err).__name__}: {err})")
        finally:
            self.model.train(was_training)

    def _log(self, split: str, metrics: dict[str, float]) -> None:
        if not self.info.is_main:
            return
        if self.log is not None:
            self.log.write({"split": split, "step": self.step, "epoch": self.epoch, **metrics})
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(f"{split}/{k}", v, self.step)

    # --------------------------------------------------------------------------------- checkpoints
    def _export_weights(self) -> contextlib.AbstractContextManager[Any]:
        return self.ema.swapped_in(self.model) if self.ema is not None else contextlib.nullcontext()

    def save_checkpoint(self) -> Path | None:
        """Write ``OUT/checkpoints/step_N`` atomically (rank 0; every rank contributes its RNG state)."""
        rngs = fdist.gather_objects(rng_state(self.info.device), self.info)
        # Data parallelism keeps every rank's weights identical; a checksum per rank proves it (or warns).
        sums = fdist.gather_objects(_param_checksum(self.model), self.info)
        if len(set(sums)) > 1:
            self._warn(f"step {self.step}: weights differ between processes (checksums {sums})")
        path = None
        if self.info.is_main:
            from safetensors.torch import save_file

            root = self.out_dir / CHECKPOINT_DIRNAME
            root.mkdir(parents=True, exist_ok=True)
            path = root / f"step_{self.step:08d}"
            tmp = temp_dir_beside(path)
            try:
                with preserved_rng(self.info.device):
                    save_file(_cpu_state(self.model.state_dict()), str(tmp / "model.safetensors"))
                    if self.ema is not None:
                        save_file(_cpu_state(self.ema.shadow), str(tmp / "ema.safetensors"))
                    state = {
                        "step": self.step,
                        "epoch": self.epoch,
                        "batch_in_epoch": self.batch_in_epoch,
                        "seed": self.seed,
                        "world_size": self.info.world_size,
                        "optimizer": self.optimizer.state_dict(),
                        "scheduler": self.scheduler.state_dict(),
                        "ema": None
                        if self.ema is None
                        else {"decay": self.ema.decay, "num_updates": self.ema.num_updates},
                        "rng": rngs,
                        "param_checksums": sums,
                        "config_json": json.dumps(to_dict(self.config)),
                    }
                    torch.save(state, tmp / "trainer_state.pt")
                    with self._export_weights():
                        self.task.save_pretrained(self.model, tmp / "pretrained")
                _fsync_dir(tmp)
                if path.exists():  # re-saving the same step (e.g. final == periodic)
                    shutil.rmtree(path)
                os.replace(tmp, path)
                _fsync_dir(root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            old = sorted(p for p in root.iterdir() if _STEP_DIR.match(p.name) and p != path)
            for stale in old[: max(0, len(old) - max(0, self.cfg.keep_checkpoints - 1))]:
                shutil.rmtree(stale, ignore_errors=True)
        fdist.barrier(self.info)
        return path

    def _init_weights(self, directory: Path) -> None:
        """Fine-tuning start: pretrained weights into the fresh model (names must match exactly)."""
        hook = getattr(self.task, "load_pretrained", None)
        if hook is not None:
            hook(self.model, directory)
        else:
            from foleygen.checkpoint import load_checkpoint_dir

            _, state = load_checkpoint_dir(directory)
            try:
                self.model.load_state_dict(state)
            except RuntimeError as err:
                raise CheckpointError(
                    f"weights do not fit this model ({str(err).splitlines()[0]})", directory
                ) from None
        self._say(f"initialised from {directory}")

    def _load_checkpoint(self, path: Path) -> None:
        from safetensors.torch import load_file

        from foleygen.checkpoint import safe_torch_load

        state = safe_torch_load(path / "trainer_state.pt")
        weights = load_file(str(path / "model.safetensors"))
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as err:
            raise CheckpointError(
                f"weights do not fit this model ({str(err).splitlines()[0]})", path / "model.safetensors"
            ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            ema_file = path / "ema.safetensors"
            shadow = load_file(str(ema_file)) if ema_file.is_file() else weights
            self.ema.load_state_dict(
                {"decay": self.ema.decay, "shadow": shadow, "num_updates": (state["ema"] or {}).get("num_updates", 0)}
            )
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        if int(state["seed"]) != self.seed:
            self._warn(f"checkpoint was trained with seed {state['seed']}, config says {self.seed}")
        rngs = state["rng"]
        if len(rngs) == self.info.world_size:
            set_rng_state(rngs[self.info.rank], self.info.device)
        else:
            # Still a valid continuation, but not bit-identical: the per-rank streams cannot be mapped.
            self._warn(
                f"checkpoint has {len(rngs)} process(es), this run {self.info.world_size}; "
                "data position and RNG are approximate"
            )
            if int(state["world_size"]) != self.info.world_size:
                self.batch_in_epoch = self.batch_in_epoch * int(state["world_size"]) // self.info.world_size
        self.resumed_from = path


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@torch.no_grad()
def _param_checksum(model: nn.Module) -> float:
    """Sum and sum of squares of every parameter (float64), one number: equal weights, equal checksum."""
    total = torch.zeros((), dtype=torch.float64)
    for p in model.parameters():
        q = p.detach().double()
        total += (q.sum() + (q * q).sum()).cpu()
    return float(total)


def _cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors sharing memory (tied weights); clone breaks the sharing.
    return {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _copy_atomic(source: Path, directory: Path) -> None:
    """Copy the directory ``source`` to ``directory`` via a temp copy and a rename."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(directory)
    try:
        shutil.copytree(source, tmp / "out")
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp / "out", directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _tensorboard_writer(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra (`pip install foleygen[train]`)
        return None
    return SummaryWriter(str(path))


def train(
    config: dict[str, Any],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    quiet: bool = False,
    task: TrainTask | None = None,
) -> Trainer:
    """Build a :class:`Trainer` for ``config`` and run it to the end; returns the trainer.

    Works alone and under ``torchrun`` (the process group is joined here and left in
    :func:`foleygen.train.distributed.shutdown`).
    """
    trainer = Trainer(config, task, out_dir=out_dir, resume=resume, quiet=quiet)
    try:
        trainer.fit()
    finally:
        fdist.shutdown(trainer.info)
    return trainer


__all__ = ["Trainer", "TrainConfig", "train", "build_task", "find_latest_checkpoint"]
