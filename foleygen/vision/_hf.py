"""Loading Hugging Face ``save_pretrained`` directories for the transformers backends."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from foleygen.errors import CheckpointError, ConfigError


def require_transformers() -> Any:
    """Import transformers or raise a one-line hint."""
    try:
        import transformers
    except ImportError:
        raise ConfigError("this visual encoder needs transformers: pip install 'foleygen[hf]'") from None
    return transformers


def read_hf_config(path_or_dir: str | os.PathLike[str] | None, kind: str) -> tuple[Path, dict[str, Any]]:
    """``(directory, config.json as dict)``; raises :class:`CheckpointError` naming what is missing.

    No weights can be downloaded here, so ``path_or_dir`` must be a local ``save_pretrained`` directory.
    """
    if path_or_dir is None:
        raise CheckpointError(
            f"{kind}: needs a local checkpoint directory (save_pretrained output); "
            "see docs/vision.md for where to put real checkpoints"
        )
    directory = Path(path_or_dir)
    if not directory.is_dir():
        raise CheckpointError(f"{kind}: checkpoint directory not found", directory)
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{kind}: no config.json (not a Hugging Face save_pretrained directory)", directory)
    try:
        return directory, json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"not valid JSON ({err})", cfg_path) from None


def load_hf_model(model_cls: Any, directory: Path, kind: str, **kwargs: Any) -> tuple[Any, dict[str, list[str]]]:
    """``model_cls.from_pretrained(directory, **kwargs)`` in float32 with loading info; errors are one line."""
    import torch

    from foleygen.checkpoint import load_refusal

    try:
        model, info = model_cls.from_pretrained(str(directory), output_loading_info=True, dtype=torch.float32, **kwargs)
    except Exception as err:  # transformers raises many types (UnpicklingError, OSError, ValueError...)
        reason = load_refusal(err, "re-save the model with save_pretrained (it writes model.safetensors)")
        if reason.startswith("cannot be read"):
            reason = f"cannot load {model_cls.__name__} ({reason.removeprefix('cannot be read (')}"
        else:  # a pickled weights file: say which one, not only the folder
            name = "pytorch_model.bin" if (directory / "pytorch_model.bin").is_file() else "its weights file"
            reason = f"{name} {reason}"
        raise CheckpointError(f"{kind}: {reason}", directory) from None
    return model, info
