"""Exponential moving average of model weights (the weights exported for inference when enabled)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class EMA:
    """Shadow copy ``s <- d * s + (1 - d) * w`` of every floating-point parameter and buffer.

    The effective decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates so that the
    average is not dominated by the random initialisation early in training. Integer buffers (counters,
    codebook usage) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` into the average (call after each optimiser step)."""
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for name, value in model.state_dict().items():
            shadow = self.shadow[name]
            if value.dtype.is_floating_point:
                shadow.lerp_(value.detach().to(shadow.dtype), 1.0 - d)
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict[str, object]:
        """``{"decay", "num_updates", "shadow"}`` (tensors only: loadable with ``weights_only=True``)."""
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.decay = float(state["decay"])  # type: ignore[arg-type]
        self.num_updates = int(state["num_updates"])  # type: ignore[call-overload]
        shadow = state["shadow"]
        assert isinstance(shadow, dict)
        missing = set(self.shadow) - set(shadow)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:5]}")
        for name, value in shadow.items():
            if name in self.shadow:
                self.shadow[name].copy_(value)

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged weights into ``model`` (for validation or export)."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(backup)
