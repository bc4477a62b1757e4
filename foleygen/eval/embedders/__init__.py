"""Registry of the audio embedders behind FAD, KL and IS.

``load_embedder(name, path=None)`` resolves the weights file from ``path`` (a CLI flag), else the
model's environment variable, and raises :class:`ModelUnavailable` (one line naming the expected file
and where to get it) when neither points at an existing file. ``synthfoley`` needs no download: it is
the SynthFoley event classifier shipped in ``foleygen/assets/event_classifier``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foleygen.errors import CheckpointError, ConfigError
from foleygen.eval.embedders.base import AudioEmbedder, EmbedderOutput
from foleygen.utils import user_path

__all__ = [
    "AudioEmbedder",
    "EmbedderOutput",
    "EmbedderSpec",
    "EMBEDDERS",
    "ModelUnavailable",
    "load_embedder",
    "resolve_weights",
    "register_embedder",
]


class ModelUnavailable(CheckpointError):
    """A metric model's weights file is not there; the metrics that need it are skipped."""


@dataclass(frozen=True)
class EmbedderSpec:
    """How to find and load one metric model.

    Attributes:
        name: registry name.
        env_var: environment variable holding the weights path (None: built in, no file needed).
        filename: the published file name users should point at.
        source: where to download it.
        loader: ``(path or None, **options) -> AudioEmbedder``.
    """

    name: str
    env_var: str | None
    filename: str
    source: str
    loader: Callable[..., AudioEmbedder]


def _load_vggish(path: Path | None, **options: Any) -> AudioEmbedder:
    from foleygen.eval.embedders.vggish import load_vggish

    pca = options.get("vggish_pca") or os.environ.get("FOLEYGEN_VGGISH_PCA") or None
    return load_vggish(path, pca)  # type: ignore[arg-type]


def _load_panns(path: Path | None, **options: Any) -> AudioEmbedder:
    from foleygen.eval.embedders.panns import load_panns

    return load_panns(path)  # type: ignore[arg-type]


def _load_passt(path: Path | None, **options: Any) -> AudioEmbedder:
    from foleygen.eval.embedders.passt import load_passt

    return load_passt(path)  # type: ignore[arg-type]


def _load_synthfoley(path: Path | None, **options: Any) -> AudioEmbedder:
    from foleygen.eval.embedders.synthfoley import load_synthfoley_embedder

    return load_synthfoley_embedder(path)


def _load_aisfx(path: Path | None, **options: Any) -> AudioEmbedder:
    from foleygen.eval.aisfx import load_aisfx

    return load_aisfx(path)


EMBEDDERS: dict[str, EmbedderSpec] = {
    "vggish": EmbedderSpec(
        "vggish",
        "FOLEYGEN_VGGISH",
        "vggish-10086976.pth",
        "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
        _load_vggish,
    ),
    "panns": EmbedderSpec(
        "panns",
        "FOLEYGEN_PANNS",
        "Cnn14_16k_mAP=0.438.pth",
        "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth",
        _load_panns,
    ),
    "passt": EmbedderSpec(
        "passt",
        "FOLEYGEN_PASST",
        "passt-s-f128-p16-s10-ap.476-swa.pt",
        "https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt",
        _load_passt,
    ),
    "synthfoley": EmbedderSpec("synthfoley", None, "foleygen/assets/event_classifier", "built in", _load_synthfoley),
    # No environment variable: without a path the installed package's file is used (sha256-checked).
    "aisfx": EmbedderSpec("aisfx", None, "checkpoint.pth", "pip install --no-deps aisfx==0.1.2", _load_aisfx),
}


def register_embedder(spec: EmbedderSpec) -> None:
    """Add (or replace) an embedder, e.g. for another system's own feature extractor."""
    EMBEDDERS[spec.name] = spec


def resolve_weights(name: str, path: str | os.PathLike[str] | None = None) -> Path | None:
    """The weights file of embedder ``name``: ``path``, else ``$ENV_VAR``; None for built-in models.

    Raises:
        ModelUnavailable: no path given or the file does not exist.
    """
    spec = _spec(name)
    if spec.env_var is None and path is None:
        return None
    chosen = path if path else os.environ.get(spec.env_var or "")
    if not chosen:
        raise ModelUnavailable(
            f"{name} weights not configured: pass --{name} PATH or set {spec.env_var} to "
            f"{spec.filename} (download: {spec.source})"
        )
    chosen = user_path(chosen)
    if not chosen.exists():  # a file, or a checkpoint directory (the event classifier's)
        raise ModelUnavailable(
            f"{name} weights file not found (expected {spec.filename}; download: {spec.source})", chosen
        )
    return chosen


def load_embedder(name: str, path: str | os.PathLike[str] | None = None, **options: Any) -> AudioEmbedder:
    """Load embedder ``name`` (see :data:`EMBEDDERS`) from ``path`` / its environment variable."""
    return _spec(name).loader(resolve_weights(name, path), **options)


def _spec(name: str) -> EmbedderSpec:
    if name not in EMBEDDERS:
        raise ConfigError(f"unknown embedder {name!r}; known: {sorted(EMBEDDERS)}")
    return EMBEDDERS[name]
