"""The contract of an audio embedder used by the metrics (FAD, KL, IS)."""

from __future__ import annotations

import abc
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from foleygen.errors import CheckpointError

__all__ = ["AudioEmbedder", "EmbedderOutput", "file_fingerprint", "strip_prefix", "check_keys"]


@dataclass
class EmbedderOutput:
    """What an embedder returns for one clip.

    Attributes:
        embeddings: ``[W, D]`` float32: one row per analysis window (VGGish: one per 0.96 s; clip-level
            models: W = 1). FAD pools the rows of all clips.
        logits: ``[C]`` float32 class logits (pre-sigmoid/softmax) for KL and IS, or None.
    """

    embeddings: np.ndarray
    logits: np.ndarray | None = None


class AudioEmbedder(abc.ABC):
    """Mono audio at ``sample_rate`` -> embeddings (+ class logits).

    Attributes:
        name: registry name (``vggish``, ``panns``, ``passt``, ``synthfoley``).
        sample_rate: the rate ``embed`` expects.
        dim: D, embedding size.
        num_classes: C, size of the logits (0 when the model has no classifier head).
        fingerprint: identifies the weights (the cache key includes it).
    """

    name: str
    sample_rate: int
    dim: int
    num_classes: int = 0
    fingerprint: str = ""

    @abc.abstractmethod
    def embed(self, wav: torch.Tensor) -> EmbedderOutput:
        """``wav [S]`` float mono at ``self.sample_rate`` -> :class:`EmbedderOutput`."""

    def to(self, device: torch.device | str) -> AudioEmbedder:
        """Move the model to ``device`` (inputs follow it); embedders without a torch model ignore this."""
        model = getattr(self, "model", None)
        if isinstance(model, torch.nn.Module):
            model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        model = getattr(self, "model", None)
        if isinstance(model, torch.nn.Module):
            for tensor in (*model.parameters(), *model.buffers()):
                return tensor.device
        return torch.device("cpu")


class ClipClassifierEmbedder(AudioEmbedder):
    """An AudioSet-style network with ``embed_wav(wav [B, S]) -> ([B, D], [B, C])`` over the whole clip.

    ``model.config`` gives ``sample_rate`` and ``num_classes``; ``dim`` is the embedding size.
    """

    def __init__(self, model: torch.nn.Module, dim: int, fingerprint: str = "") -> None:
        self.model = model.eval()
        self.sample_rate = model.config.sample_rate
        self.dim = dim
        self.num_classes = model.config.num_classes
        self.fingerprint = fingerprint

    @torch.inference_mode()
    def embed(self, wav: torch.Tensor) -> EmbedderOutput:
        """``wav [S]`` -> embeddings ``[1, D]`` and logits ``[C]``."""
        emb, logits = self.model.embed_wav(wav.reshape(1, -1).to(self.device))
        return EmbedderOutput(as_numpy(emb), as_numpy(logits[0]))


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """A cheap content fingerprint of a (possibly large) weights file: size + first and last MiB."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:16]


def strip_prefix(state: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix (``module.``, ``net.``) when every key that matters carries it."""
    for prefix in prefixes:
        if state and any(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def check_keys(
    model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike[str], what: str
) -> dict[str, torch.Tensor]:
    """The subset of ``state`` that ``model`` expects, with a one-line error for missing/mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise CheckpointError(f"not a {what} checkpoint: {len(missing)} missing key(s), e.g. {missing[0]!r}", path)
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{what} checkpoint key {key!r} has shape {tuple(state[key].shape)}, expected {tuple(ref.shape)}", path
            )
    return {k: state[k].to(ref.dtype) if state[k].is_floating_point() else state[k] for k, ref in expected.items()}


def as_numpy(x: torch.Tensor) -> np.ndarray:
    """Detached float32 numpy copy."""
    return x.detach().to(torch.float32).cpu().numpy()
