"""Where training metrics go: an append-only ``metrics.jsonl`` and (optionally) TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from foleygen.atomic import atomic_write_bytes


class JsonlLog:
    """Append-only ``metrics.jsonl`` (one JSON object per line, flushed: readable while training)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a")  # noqa: SIM115 -- lives as long as the trainer

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()

    def close(self) -> None:
        """Close the file."""
        self.fh.close()


def trim_jsonl(path: Path, last_step: int) -> int:
    """Keep only the records of ``path`` a resumed run has not redone; return how many were dropped.

    A run killed after its last checkpoint logged steps that the resumed run logs again, and may have
    died in the middle of a line. So before resuming at ``last_step`` the file is rewritten (atomically:
    a temporary beside it, renamed over it) with only the complete, parseable records whose ``step`` is
    at most ``last_step``. A missing file is left missing.
    """
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return 0
    kept: list[bytes] = []
    dropped = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            step = record["step"]
            fits = isinstance(step, int) and step <= last_step
        except (ValueError, TypeError, KeyError):
            fits = False  # a half-written last line, or something that is not one of our records
        if fits:
            kept.append(line)
        else:
            dropped += 1
    if not dropped:
        return 0
    atomic_write_bytes(path, b"".join(line + b"\n" for line in kept))
    return dropped


def tensorboard_writer(path: Path) -> Any:
    """A ``SummaryWriter`` writing under ``path``, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra (`pip install foleygen[train]`)
        return None
    return SummaryWriter(str(path))


__all__ = ["JsonlLog", "tensorboard_writer", "trim_jsonl"]
