"""Small helpers shared across the package: seeding, progress bars, devices, paths, temporary files."""

from __future__ import annotations

import contextlib
import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for reproducible runs."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def progress(
    iterable: Iterable[T],
    *,
    desc: str = "",
    total: int | None = None,
    quiet: bool = False,
    unit: str = "it",
    **kwargs: Any,
) -> Iterator[T]:
    """A tqdm progress bar on stderr, or the bare iterable when ``quiet``."""
    if quiet:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, **kwargs)


def resolve_device(device: str | None = None) -> Any:
    """``None``/"auto" -> cuda if available else cpu; otherwise ``torch.device(device)``."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def native_bf16(device: Any) -> bool:
    """Whether ``device`` (a ``torch.device``) computes bfloat16 matrix products natively.

    A CUDA GPU that supports bf16; a CPU where oneDNN has bf16 kernels (AVX-512 BF16 or AMX). Elsewhere
    (an AVX2-only CPU, for one) bf16 is emulated: a training step of the demo LM under autocast took about a
    minute (~18x fp32's 3.6 s) on a 2-core AMD EPYC without AVX-512, and a bf16 matrix product 7x as long.
    """
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def user_path(raw: str | os.PathLike[str]) -> Path:
    """A path the user typed, with ``~`` and ``~name`` expanded as a shell would: a ``~name`` of no known
    user (or ``~`` with no home) stays as written, so it ends as "no such file" rather than as the
    RuntimeError that ``Path.expanduser`` raises."""
    return Path(os.path.expanduser(os.fspath(raw)))


def current_umask() -> int:
    """The process umask, read without changing it where Linux reports it (``/proc/self/status``).

    Elsewhere it is read by setting and restoring it, which is not atomic but only ever briefly
    applies the common default (022) to a file another thread creates at that instant.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _noted_as_ours() -> Iterator[Callable[[str | os.PathLike[str]], None]]:
    """Create a temporary and note it (:func:`foleygen.staging.note_temporary`) with no Ctrl-C in between.

    A ``KeyboardInterrupt`` raised between the two would leave a temporary that nothing removes until
    the next run's grace period is over; a SIGINT arriving in the block is held and raised at its end,
    once the name is noted (``foleygen``'s Ctrl-C handler then removes it). Only the main thread ever
    gets ``KeyboardInterrupt``, and only the default handler is held: an application's own is left alone.
    """
    import signal
    import threading

    from foleygen.staging import note_temporary

    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield note_temporary
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield note_temporary
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if held:
        raise KeyboardInterrupt


def temp_file_beside(path: str | os.PathLike[str], suffix: str = ".tmp") -> Path:
    """Create an empty temporary file in ``path``'s directory, to be renamed over ``path`` later.

    :func:`tempfile.mkstemp` makes the file readable by its owner only (0600); after the rename that
    would be the output's mode, so the file gets the mode a plain ``open(path, "w")`` would give
    (0666 less the umask): results, checkpoints and caches stay readable by a group or a web server.
    """
    target = Path(path)
    with _noted_as_ours() as note:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        note(name)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    os.close(fd)
    return Path(name)


def temp_dir_beside(path: str | os.PathLike[str]) -> Path:
    """Create an empty temporary directory beside ``path`` with the mode ``mkdir`` would give (0777 less
    the umask, not :func:`tempfile.mkdtemp`'s 0700), to be renamed over ``path`` when complete."""
    target = Path(path)
    with _noted_as_ours() as note:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        note(tmp)
    try:
        tmp.chmod(0o777 & ~current_umask())
    except BaseException:
        tmp.rmdir()
        raise
    return tmp
