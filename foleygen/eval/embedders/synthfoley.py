"""The SynthFoley event classifier's embedding as a built-in, offline FAD embedder.

The classifier (``foleygen.eval.event_classifier``, weights in ``foleygen/assets/event_classifier/``)
is trained on SynthFoley's sound families; its penultimate-layer ``embedding`` says how SynthFoley-like
and which-class-like a sound is. Unlike VGGish/PANNs/PaSST it needs no download, so a FAD is always
available (meaningful on SynthFoley-like audio; not comparable with published FADs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foleygen.errors import CheckpointError
from foleygen.eval.embedders.base import AudioEmbedder, EmbedderOutput, as_numpy

__all__ = ["SynthFoleyEmbedder", "load_synthfoley_embedder"]


class SynthFoleyEmbedder(AudioEmbedder):
    """Wraps a classifier with ``embedding(wav, sample_rate)`` and ``sample_rate``: ``[W, D]`` per clip."""

    name = "synthfoley"

    def __init__(self, classifier: Any, fingerprint: str = "") -> None:
        self.classifier = classifier
        self.sample_rate = int(getattr(classifier, "sample_rate", 16000))
        self.dim = int(getattr(classifier, "embedding_dim", 0) or getattr(classifier, "dim", 0) or 0)
        self.num_classes = 0
        self.fingerprint = fingerprint

    @torch.inference_mode()
    def embed(self, wav: torch.Tensor) -> EmbedderOutput:
        """``wav [S]`` at ``sample_rate`` -> embeddings ``[W, D]`` (W = 1 for a clip-level embedding)."""
        emb = self.classifier.embedding(wav.reshape(-1), self.sample_rate)
        emb = torch.as_tensor(emb)
        if emb.ndim == 1:
            emb = emb[None]
        elif emb.ndim == 3 and emb.shape[0] == 1:
            emb = emb[0]
        if emb.ndim != 2:
            raise CheckpointError(f"event classifier embedding has shape {tuple(emb.shape)}, expected [D] or [W, D]")
        out = as_numpy(emb)
        self.dim = self.dim or int(out.shape[1])
        return EmbedderOutput(np.ascontiguousarray(out))


def load_synthfoley_embedder(path: str | os.PathLike[str] | None = None) -> SynthFoleyEmbedder:
    """The built-in classifier (or one saved at ``path``) as an embedder."""
    from foleygen.eval.embedders import ModelUnavailable

    try:
        from foleygen.eval import event_classifier
    except ImportError as err:
        raise ModelUnavailable(f"the SynthFoley event classifier is not available in this install ({err})") from None
    loader = getattr(event_classifier, "load_event_classifier", None)
    if loader is None:
        raise ModelUnavailable("foleygen.eval.event_classifier has no load_event_classifier()")
    try:
        classifier = loader(path) if path is not None else loader()
    except FileNotFoundError as err:
        raise ModelUnavailable(f"SynthFoley event classifier weights missing ({err})") from None
    return SynthFoleyEmbedder(classifier, fingerprint=_weights_fingerprint(path))


def _weights_fingerprint(path: str | os.PathLike[str] | None) -> str:
    """Fingerprint of the classifier's weights (so a retrained built-in never reuses cached embeddings)."""
    from foleygen.eval.embedders.base import file_fingerprint

    if path is None:
        from foleygen.eval.event_classifier import DEFAULT_DIR

        path = DEFAULT_DIR
    where = Path(path)
    if where.is_file():
        return file_fingerprint(where)
    files = sorted(p for p in where.glob("*") if p.is_file()) if where.is_dir() else []
    weights = [p for p in files if p.suffix in (".safetensors", ".pt", ".pth")] or files
    return "-".join(file_fingerprint(p)[:8] for p in weights) or "unknown"
