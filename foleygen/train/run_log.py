"""Where training metrics go: an append-only ``metrics.jsonl`` and (optionally) TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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


def tensorboard_writer(path: Path) -> Any:
    """A ``SummaryWriter`` writing under ``path``, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra (`pip install foleygen[train]`)
        return None
    return SummaryWriter(str(path))


__all__ = ["JsonlLog", "tensorboard_writer"]
