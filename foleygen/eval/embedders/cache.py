"""On-disk cache of per-clip embeddings, keyed by the file's content hash and the model.

Key = sha256(file bytes) + embedder name + weights fingerprint + sample rate + clip length, so renaming
a file keeps its cache entry, and changing the audio, the weights or the clip length never reuses one.
Entries are small ``.npz`` files written atomically.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from foleygen.atomic import atomic_write
from foleygen.eval.embedders.base import AudioEmbedder, EmbedderOutput

__all__ = ["EmbeddingCache", "content_hash"]


def content_hash(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EmbeddingCache:
    """``get``/``put`` embedder outputs under ``directory`` (None: a no-op cache)."""

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self.directory = Path(directory) if directory else None
        self.hits = 0
        self.misses = 0
        self._hashes: dict[Path, str] = {}

    def key(self, path: str | os.PathLike[str], embedder: AudioEmbedder, duration: float, variant: str = "") -> str:
        """Cache key of one clip; ``variant`` names a way of reading it (a protocol) other than the default."""
        path = Path(path).resolve()
        if path not in self._hashes:
            self._hashes[path] = content_hash(path)
        model = f"{embedder.name}-{embedder.fingerprint}-{embedder.sample_rate}-{duration:g}"
        if variant and variant != "foleygen":  # the default keeps the keys written before protocols existed
            model += f"-{variant}"
        return f"{model}/{self._hashes[path]}"

    def get(self, key: str) -> EmbedderOutput | None:
        if self.directory is None:
            return None
        file = self.directory / f"{key}.npz"
        if not file.is_file():
            self.misses += 1
            return None
        try:
            with np.load(file) as data:
                out = EmbedderOutput(data["embeddings"], data["logits"] if "logits" in data else None)
        except (OSError, ValueError, KeyError):  # a damaged entry is recomputed, not fatal
            self.misses += 1
            return None
        self.hits += 1
        return out

    def put(self, key: str, output: EmbedderOutput) -> None:
        if self.directory is None:
            return
        file = self.directory / f"{key}.npz"
        file.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"embeddings": output.embeddings}
        if output.logits is not None:
            arrays["logits"] = output.logits
        atomic_write(file, lambda fh: np.savez(fh, **arrays))
