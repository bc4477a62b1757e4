"""Small helpers shared across the package: seeding, progress bars, devices, threads."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable, Iterator
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
