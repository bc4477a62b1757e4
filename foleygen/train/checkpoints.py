"""Training checkpoints on disk: one ``OUT/checkpoints/step_N/`` directory per save, written atomically.

Layout (assembled in a temp dir beside it, fsynced, then renamed, so that a run killed at any moment
leaves only complete checkpoints under their final names)::

    model.safetensors     raw training weights (what resuming loads)
    ema.safetensors       EMA weights (if enabled)
    trainer_state.pt      optimisers, scheduler, EMA count, RNG states per rank, data position, config
    pretrained/           task.save_pretrained(...) -- a loadable model (EMA weights when enabled)

What goes into ``trainer_state.pt`` is the trainer's business (:mod:`foleygen.train.trainer`); this
module only writes, finds, prunes and reads the directories.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from foleygen.atomic import atomic_dir
from foleygen.errors import CheckpointError

CHECKPOINT_DIRNAME = "checkpoints"
STATE_FILE = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step_(\d{8,})$")


def step_dir_name(step: int) -> str:
    """``step_00001000``: the directory name of the checkpoint at optimiser step ``step``."""
    return f"step_{step:08d}"


def find_latest_checkpoint(out_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete ``OUT/checkpoints/step_*`` directory (temp dirs never match), or None."""
    root = Path(out_dir) / CHECKPOINT_DIRNAME
    if not root.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _STEP_DIR.match(p.name)) and p.is_dir() and (p / STATE_FILE).is_file()
    ]
    return max(found)[1] if found else None


def write_checkpoint(
    out_dir: Path,
    step: int,
    weights: dict[str, torch.Tensor],
    ema_weights: dict[str, torch.Tensor] | None,
    state: dict[str, Any],
    export: Callable[[Path], None],
    keep: int,
) -> Path:
    """Write ``OUT/checkpoints/step_N`` atomically and delete all but the ``keep`` newest checkpoints.

    Args:
        out_dir: the run's output directory.
        step: the optimiser step saved.
        weights: the raw training weights (``model.state_dict()``).
        ema_weights: the EMA shadow weights, or None.
        state: what goes into ``trainer_state.pt`` (tensors, numbers, strings: ``weights_only``-loadable).
        export: writes the loadable ``pretrained/`` directory into the path it is given.
        keep: most recent checkpoints kept, this one included.
    """
    from safetensors.torch import save_file

    root = out_dir / CHECKPOINT_DIRNAME
    root.mkdir(parents=True, exist_ok=True)
    path = root / step_dir_name(step)
    # Re-saving the same step (e.g. final == periodic) replaces the folder.
    with atomic_dir(path) as tmp:
        save_file(cpu_state(weights), str(tmp / "model.safetensors"))
        if ema_weights is not None:
            save_file(cpu_state(ema_weights), str(tmp / "ema.safetensors"))
        torch.save(state, tmp / STATE_FILE)
        export(tmp / "pretrained")
    old = sorted(p for p in root.iterdir() if _STEP_DIR.match(p.name) and p != path)
    for stale in old[: max(0, len(old) - max(0, keep - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    return path


def read_checkpoint(
    path: Path,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """``(trainer state, weights, EMA weights or None)`` of a checkpoint directory."""
    from safetensors.torch import load_file

    from foleygen.checkpoint import safe_torch_load

    state = safe_torch_load(path / STATE_FILE)
    weights = load_file(str(path / "model.safetensors"))
    ema_file = path / "ema.safetensors"
    return state, weights, (load_file(str(ema_file)) if ema_file.is_file() else None)


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], source: Path) -> None:
    """``model.load_state_dict(weights)``, a mismatch said in one line naming ``source``."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"weights do not fit this model ({str(err).splitlines()[0]})", source) from None


@torch.no_grad()
def param_checksum(model: nn.Module) -> float:
    """Sum and sum of squares of every parameter (float64), one number: equal weights, equal checksum."""
    total = torch.zeros((), dtype=torch.float64)
    for p in model.parameters():
        q = p.detach().double()
        total += (q.sum() + (q * q).sum()).cpu()
    return float(total)


@torch.no_grad()
def optimizer_checksum(optimizers: list[torch.optim.Optimizer]) -> float:
    """One number over every tensor in the optimisers' states (moments, step counts): equal states, equal
    checksum. Processes of a data-parallel run must agree on it as on the weights."""
    total = torch.zeros((), dtype=torch.float64)
    for optimizer in optimizers:
        for per_param in optimizer.state.values():
            for value in per_param.values():
                if isinstance(value, torch.Tensor):
                    q = value.detach().double()
                    total += (q.sum() + (q * q).sum()).cpu()
                elif isinstance(value, int | float):
                    total += float(value)
    return float(total)


def cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors on the CPU, each with memory of its own (safetensors refuses shared, i.e. tied, ones)."""
    return {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}


def copy_atomic(source: Path, directory: Path) -> None:
    """Copy the directory ``source`` to ``directory`` via a temp copy and a rename."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(directory, fsync=False) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)


__all__ = [
    "CHECKPOINT_DIRNAME",
    "copy_atomic",
    "find_latest_checkpoint",
    "load_weights",
    "optimizer_checksum",
    "param_checksum",
    "read_checkpoint",
    "step_dir_name",
    "write_checkpoint",
]
