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

Checkpoints (``OUT/checkpoints/step_N/``, written atomically): :mod:`foleygen.train.checkpoints`.
``OUT/final/`` is the pretrained export at the end of training.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from foleygen.config import parse_config, to_dict
from foleygen.errors import ConfigError, DataError
from foleygen.staging import remove_stale_temporaries
from foleygen.train import distributed as fdist
from foleygen.train.batches import epoch_loader, move_to
from foleygen.train.checkpoints import (
    CHECKPOINT_DIRNAME,
    copy_atomic,
    find_latest_checkpoint,
    load_weights,
    optimizer_checksum,
    param_checksum,
    read_checkpoint,
    step_dir_name,
    write_checkpoint,
)
from foleygen.train.ema import EMA
from foleygen.train.optim import build_optimizer, build_scheduler
from foleygen.train.rng import preserved_rng, rng_state, seed_all, set_rng_state
from foleygen.train.run_config import RunConfig
from foleygen.train.run_log import JsonlLog, tensorboard_writer, trim_jsonl
from foleygen.train.task import ExtraOptimizer, TrainTask, build_task, parse_run_config
from foleygen.train.train_config import TrainConfig
from foleygen.utils import native_bf16


# ------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Trains ``task`` as configured; :meth:`fit` runs to ``train.steps``.

    Args:
        config: the whole run config (``task``, ``seed``, ``out``, ``train`` and the task's sections), as
            read from YAML; parsed into the task's run-config dataclass (unknown names fail).
        task: the task (default: built from ``config["task"]``).
        out_dir: where checkpoints and logs go (default ``config["out"]``, else ``runs/<task>``).
        resume: continue from the newest checkpoint in ``out_dir`` (fresh start if there is none).
        quiet: no progress bar or messages.
        source: where ``config`` came from (its YAML's path), named in configuration errors.
    """

    def __init__(
        self,
        config: dict[str, Any],
        task: TrainTask | None = None,
        *,
        out_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        quiet: bool = False,
        source: str | None = None,
    ) -> None:
        self.config = config
        # The whole config, parsed once into the task's dataclass: an unknown section or key stops here.
        if task is None:
            self.run = parse_run_config(config, source)
        else:  # a task built beforehand: its own config class, or the common sections alone
            given = getattr(task, "run", None)
            self.run = parse_config(type(given) if isinstance(given, RunConfig) else RunConfig, config, source)
        self.cfg: TrainConfig = self.run.train
        self.seed = self.run.seed
        self.out_dir = Path(out_dir or self.run.out or Path("runs") / (self.run.task or "run"))
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
        self.task = task if task is not None else build_task(self.run)

        self.train_set, self.val_set = self.task.build_datasets()
        if len(self.train_set) < self.cfg.batch_size * self.info.world_size:  # type: ignore[arg-type]
            raise DataError(
                f"training set has {len(self.train_set)} items, fewer than one global batch "  # type: ignore[arg-type]
                f"({self.cfg.batch_size} x {self.info.world_size} processes)"
            )
        seed_all(self.seed)
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
        self.extra_optimizers = self._extra_optimizers()
        extra_params = [p for extra in self.extra_optimizers for p in extra.params]
        self._extra_ids = {id(p) for p in extra_params}
        self.optimizer = build_optimizer(
            self.model, self.cfg.lr, self.cfg.weight_decay, tuple(self.cfg.betas), self.cfg.eps, extra_params
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
        seed_all(self.seed + 1_000_003 * self.info.rank)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.resumed_from: Path | None = None
        self.resume = resume
        if resume:
            if resume_from is not None:
                self._load_checkpoint(resume_from)
            else:
                self._say(f"--resume: no checkpoint in {self.out_dir / CHECKPOINT_DIRNAME}, starting fresh")
        self.writer: Any = None
        self.log: JsonlLog | None = None

    # ------------------------------------------------------------------------------------ utilities
    def _say(self, message: str) -> None:
        if self.info.is_main and not self.quiet:
            print(f"[foleygen train] {message}", file=sys.stderr, flush=True)

    def _warn(self, message: str) -> None:
        # warnings are not chatter: shown with -q too
        if self.info.is_main:
            print(f"[foleygen train] warning: {message}", file=sys.stderr, flush=True)

    def _extra_optimizers(self) -> list[ExtraOptimizer]:
        """The task's extra optimisers (``extra_optimizers(model)``, optional), checked."""
        hook = getattr(self.task, "extra_optimizers", None)
        extras = list(hook(self.model)) if hook is not None else []
        owned = {id(p) for p in self.model.parameters()}
        names: set[str] = set()
        claimed: set[int] = set()
        for extra in extras:
            if extra.name in names or extra.name == "main":
                raise ConfigError(f"task declares two optimisers named {extra.name!r}")
            ids = {id(p) for p in extra.params}
            if not ids <= owned:
                raise ConfigError(f"optimiser {extra.name!r} moves parameters that are not the model's")
            if ids & claimed:
                raise ConfigError(f"optimiser {extra.name!r} shares parameters with another extra optimiser")
            names.add(extra.name)
            claimed |= ids
        return extras

    def _zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        for extra in self.extra_optimizers:
            extra.optimizer.zero_grad(set_to_none=True)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(device_type=self.info.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _train_batches(self) -> Iterator[Any]:
        """Batches forever, epoch after epoch, starting at ``(self.epoch, self.batch_in_epoch)``."""
        while True:
            loader = epoch_loader(
                self.train_set,
                self.info,
                seed=self.seed,
                epoch=self.epoch,
                start_batch=self.batch_in_epoch,
                batch_size=self.cfg.batch_size,
                collate=self.task.collate,
                num_workers=self.cfg.num_workers,
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
            # A killed run's leftovers: half-written checkpoints (and `final/` copies) nobody holds any more.
            remove_stale_temporaries(self.out_dir / CHECKPOINT_DIRNAME)
            remove_stale_temporaries(self.out_dir)
            (self.out_dir / "config.json").write_text(json.dumps(to_dict(self.config), indent=2) + "\n")
            if self.resume:
                # Records the killed run wrote past its checkpoint would otherwise appear twice.
                trim_jsonl(self.out_dir / "metrics.jsonl", self.step)
            self.log = JsonlLog(self.out_dir / "metrics.jsonl")
            if cfg.tensorboard:
                self.writer = tensorboard_writer(self.out_dir / "tb")
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
                copy_atomic(self.out_dir / CHECKPOINT_DIRNAME / step_dir_name(self.step) / "pretrained", final)
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
            # the task's own "loss" metric, when it has one, leaves out terms that train extra optimisers only
            logged = float(metrics["loss"]) if "loss" in metrics else float(loss.detach())
            summed["loss"] = summed.get("loss", 0.0) + logged
            for k, v in metrics.items():
                if k != "loss":
                    summed[k] = summed.get(k, 0.0) + float(v)
        fdist.all_reduce_gradients(self.model, self.info)
        params = [p for p in self.model.parameters() if p.grad is not None and id(p) not in self._extra_ids]
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
        for extra in self.extra_optimizers:
            extra_metrics = extra.step(self.step)
            if extra_metrics.get(f"{extra.name}/skipped"):
                self._warn(f"step {self.step}: non-finite gradient norm of {extra.name}, its update skipped")
            out.update(extra_metrics)
        self.scheduler.step()
        self._zero_grad()
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
            self._zero_grad()
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
        sums = fdist.gather_objects(param_checksum(self.model), self.info)
        if len(set(sums)) > 1:
            self._warn(f"step {self.step}: weights differ between processes (checksums {sums})")
        opt_sums = fdist.gather_objects(
            optimizer_checksum([self.optimizer, *(e.optimizer for e in self.extra_optimizers)]), self.info
        )
        if len(set(opt_sums)) > 1:
            self._warn(f"step {self.step}: optimiser states differ between processes (checksums {opt_sums})")
        path = None
        if self.info.is_main:
            state = {
                "step": self.step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "seed": self.seed,
                "world_size": self.info.world_size,
                "optimizer": self.optimizer.state_dict(),
                "extra_optimizers": {e.name: e.optimizer.state_dict() for e in self.extra_optimizers},
                "scheduler": self.scheduler.state_dict(),
                "ema": None if self.ema is None else {"decay": self.ema.decay, "num_updates": self.ema.num_updates},
                "rng": rngs,
                "param_checksums": sums,
                "optimizer_checksums": opt_sums,
                "config_json": json.dumps(to_dict(self.config)),
            }

            def export(directory: Path) -> None:
                with self._export_weights():
                    self.task.save_pretrained(self.model, directory)

            with preserved_rng(self.info.device):
                path = write_checkpoint(
                    self.out_dir,
                    self.step,
                    self.model.state_dict(),
                    None if self.ema is None else self.ema.shadow,
                    state,
                    export,
                    self.cfg.keep_checkpoints,
                )
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
            load_weights(self.model, state, directory)
        self._say(f"initialised from {directory}")

    def _load_checkpoint(self, path: Path) -> None:
        state, weights, ema_weights = read_checkpoint(path)
        load_weights(self.model, weights, path / "model.safetensors")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        saved_extras = state.get("extra_optimizers") or {}
        for extra in self.extra_optimizers:
            if extra.name in saved_extras:
                extra.optimizer.load_state_dict(saved_extras[extra.name])
            else:  # a checkpoint from before the task declared it: still a valid continuation, not exact
                self._warn(f"checkpoint has no state for optimiser {extra.name!r}: it starts afresh")
        if self.ema is not None:
            shadow = ema_weights if ema_weights is not None else weights
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


def train(
    config: dict[str, Any],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    quiet: bool = False,
    task: TrainTask | None = None,
    source: str | None = None,
) -> Trainer:
    """Build a :class:`Trainer` for ``config`` and run it to the end; returns the trainer.

    Works alone and under ``torchrun`` (the process group is joined here and left in
    :func:`foleygen.train.distributed.shutdown`). A config with an unknown section or key raises
    :class:`~foleygen.config.UnknownKeyError` (a ``ConfigError``) before anything starts.
    """
    trainer = Trainer(config, task, out_dir=out_dir, resume=resume, quiet=quiet, source=source)
    try:
        trainer.fit()
    finally:
        fdist.shutdown(trainer.info)
    return trainer


__all__ = ["Trainer", "TrainConfig", "build_task", "find_latest_checkpoint", "train"]
