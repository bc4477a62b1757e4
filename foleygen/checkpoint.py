"""Checkpoint directories: ``config.json`` (versioned) + ``model.safetensors``.

The same layout the Hugging Face Hub serves, so a directory can be published as-is. Weights are read
with ``safetensors`` only; third-party ``.pt/.pth/.th`` files go through :func:`safe_torch_load`, which
never unpickles arbitrary objects.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from foleygen.atomic import atomic_dir
from foleygen.config import load_json, save_json
from foleygen.errors import CheckpointError
from foleygen.staging import remove_stale_temporaries

T = TypeVar("T")

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_checkpoint_dir(
    directory: str | os.PathLike[str],
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Atomically write ``directory`` with config.json and model.safetensors (+ optional files).

    The directory is assembled next to its final place and renamed over it, so a crash never leaves a
    half-written checkpoint under the final name. Temporaries that a killed earlier save left in the
    same folder are removed first (see :mod:`foleygen.staging`).
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(directory.parent)  # what a killed earlier save left beside it
    with atomic_dir(directory, fsync=False) as tmp:
        write_checkpoint_files(tmp, config, state_dict, extra_files)
    return directory


def write_checkpoint_files(
    directory: Path,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    extra_files: dict[str, bytes] | None = None,
) -> None:
    """Write a checkpoint's files into the existing folder ``directory`` (not atomic by itself: write into
    a :func:`foleygen.atomic.atomic_dir`, as :func:`save_checkpoint_dir` does)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    save_file(tensors, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    save_json(directory / CONFIG_NAME, config)
    for name, data in (extra_files or {}).items():
        (directory / name).write_bytes(data)


def load_checkpoint_dir(directory: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read ``(config, state_dict)`` from a checkpoint directory."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError("checkpoint directory not found", directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"no {WEIGHTS_NAME} in checkpoint directory", directory)
    config = load_json(directory / CONFIG_NAME)
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"cannot read weights ({err})", weights) from None
    return config, state


def _memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _size_on_meta(build: Callable[[], Any]) -> int | None:
    """Bytes of the parameters and buffers ``build()`` would allocate, found by building it on the
    ``meta`` device (no memory); None when the build cannot run there (the real build then decides)."""
    try:
        with torch.device("meta"):
            module = build()
    except Exception:  # noqa: BLE001 - any failure here is the real build's to report
        return None
    if not isinstance(module, torch.nn.Module):
        return None
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def build_from_config(build: Callable[[], T], what: str, where: str | os.PathLike[str]) -> T:
    """``build()`` (a module made from a checkpoint's config), with the failures that values of the
    right type but an impossible size cause (a negative or infinite dimension, a zero codebook size: torch
    and Python raise ValueError, RuntimeError, OverflowError...) said as one :class:`CheckpointError`.

    Sizes that are possible but absurd (a config asking for more memory than the machine has, which
    would otherwise be allocated and initialised until the process is killed) are refused before any
    memory is taken: the module is first built on the ``meta`` device and its bytes counted.
    """
    need, have = _size_on_meta(build), _memory_bytes()
    if need is not None and have is not None and need > have:
        raise CheckpointError(
            f"config.json {what}: these values make a model of {need / 2**30:.1f} GiB, more than this "
            f"machine's {have / 2**30:.1f} GiB of memory",
            where,
        )
    try:
        return build()
    except (ValueError, RuntimeError, OverflowError, ZeroDivisionError, TypeError, MemoryError) as err:
        detail = " ".join(str(err).split())[:200] or "no message"
        raise CheckpointError(
            f"config.json {what}: these values do not make a model ({type(err).__name__}: {detail})", where
        ) from None


_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_refusal(
    err: BaseException, fix: str = "re-save its tensors (state_dict) as safetensors or a plain tensor file"
) -> str:
    """Why a weights-only load failed, in one line, for any loader (ours, transformers', ImageBind's).

    torch's own message spans a dozen lines and advises retrying with ``weights_only=False``, which
    would run whatever code the file carries; that advice is never repeated. A refused pickle names
    the Python object it needed (``omegaconf.dictconfig.DictConfig``), which tells where it came from.
    """
    text = " ".join(_ANSI.sub("", str(err)).split())
    found = _REFUSED_GLOBAL.search(text)
    if found or isinstance(err, pickle.UnpicklingError) or "weights only load failed" in text.lower():
        what = f" ({found.group(1)})" if found else ""
        return f"holds pickled Python objects{what}, which foleygen never unpickles (they could run code); {fix}"
    first = _ANSI.sub("", str(err)).strip().splitlines()[0].strip() if str(err).strip() else type(err).__name__
    return f"cannot be read ({first})"


def safe_torch_load(path: str | os.PathLike[str]) -> Any:
    """``torch.load(weights_only=True)`` with a one-line error for files that need full unpickling."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # `from None` hides torch's traceback; its message stays reachable as __context__ for callers
        # that recognise a known refused object (the AudioCraft loader does).
        raise CheckpointError(load_refusal(err), path) from None


def load_part(module: torch.nn.Module, state: dict[str, torch.Tensor], prefix: str, where: Path) -> None:
    """Load the ``prefix``-ed tensors of ``state`` into ``module``, strictly: any mismatch is one
    :class:`CheckpointError` naming the part and the file (``where``)."""
    part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        missing, unexpected = module.load_state_dict(part, strict=False)
    except RuntimeError as err:  # a tensor of another shape than the config builds: torch lists them all
        sizes = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
        detail = sizes[0] if sizes else " ".join(str(err).split())[:200]
        raise CheckpointError(f"{prefix.rstrip('.')} weights do not match the config ({detail})", where) from None
    if missing or unexpected:
        raise CheckpointError(
            f"{prefix.rstrip('.')} weights do not match the config (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})",
            where,
        )


def section_types(section: Any, where: str, directory: Path, **expected: type | tuple[type, ...]) -> dict[str, Any]:
    """``section`` (a part of config.json) as a dict whose keys in ``expected`` hold values of those types
    (a missing key is fine: its default applies). One :class:`CheckpointError` otherwise."""
    if not isinstance(section, dict):
        raise CheckpointError(f"config.json {where} must be a mapping, got {type(section).__name__}", directory)
    for key, types in expected.items():
        if key in section and not isinstance(section[key], types):
            got = type(section[key]).__name__
            raise CheckpointError(f"config.json {where}.{key} has the wrong type ({got})", directory)
    return section
