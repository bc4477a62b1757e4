"""VGGish (Hershey et al. 2017) in pure torch, loading the torchvggish port's checkpoints.

Layout of ``vggish-10086976.pth`` (harritaylor/torchvggish): ``features.{0,3,6,8,11,13}.{weight,bias}``
(3x3 convs 1->64->128->256->256->512->512 with 2x2 max-pools after 64, 128, the 2nd 256 and the 2nd
512) and ``embeddings.{0,2,4}`` (Linear 512*4*6 -> 4096 -> 4096 -> 128, each followed by ReLU). The PCA
file ``vggish_pca_params-970ea276.pth`` holds ``pca_eigen_vectors [128, 128]`` and ``pca_means [128]``.

Input: log-mel examples ``[W, 1, 96, 64]`` (see :func:`frontends.vggish_examples`). The conv output
``[W, 512, 6, 4]`` is flattened in (time, freq, channel) order, as the TF original (NHWC) did.

Like av-benchmark (``VGGish(postprocess=False)``) FAD uses the raw 128-d embeddings by default; with the
PCA file the TF release's postprocessing (PCA, clip to [-2, 2], quantise to 0..255) is applied instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from foleygen.checkpoint import safe_torch_load
from foleygen.errors import CheckpointError
from foleygen.eval.embedders.base import (
    AudioEmbedder,
    EmbedderOutput,
    as_numpy,
    check_keys,
    file_fingerprint,
    strip_prefix,
)
from foleygen.eval.embedders.frontends import htk_mel_matrix, vggish_examples

__all__ = ["VGGish", "VGGishEmbedder", "load_vggish"]

_POOL_AFTER = (0, 1, 3, 5)  # conv indices followed by a 2x2 max-pool


class VGGish(nn.Module):
    """VGGish network: ``[W, 1, 96, 64]`` log-mel -> ``[W, fc[-1]]`` embeddings.

    Args:
        widths: the six conv widths (published: 64, 128, 256, 256, 512, 512).
        fc: the three fully-connected widths (published: 4096, 4096, 128).
    """

    def __init__(
        self, widths: tuple[int, ...] = (64, 128, 256, 256, 512, 512), fc: tuple[int, int, int] = (4096, 4096, 128)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU(inplace=True)]
            if i in _POOL_AFTER:
                layers.append(nn.MaxPool2d(2, 2))
            in_ch = width
        # Sequential indices then match the published keys features.0, .3, .6, .8, .11, .13.
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(in_ch * 6 * 4, fc[0]),
            nn.ReLU(True),
            nn.Linear(fc[0], fc[1]),
            nn.ReLU(True),
            nn.Linear(fc[1], fc[2]),
            nn.ReLU(True),
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """``[W, 1, 96, 64]`` -> ``[W, D]``."""
        x = self.features(examples)  # [W, C, 6, 4]
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF flattened NHWC: (time, freq, channel)
        return self.embeddings(x)


class VGGishEmbedder(AudioEmbedder):
    """VGGish at 16 kHz: one 128-d embedding per 0.96 s window."""

    name = "vggish"
    sample_rate = 16000
    num_classes = 0

    def __init__(
        self, model: VGGish, pca: tuple[torch.Tensor, torch.Tensor] | None = None, fingerprint: str = ""
    ) -> None:
        self.model = model.eval()
        self.pca = pca
        self.dim = model.embeddings[4].out_features
        self.fingerprint = fingerprint + ("+pca" if pca is not None else "")
        self.mel = torch.from_numpy(htk_mel_matrix())

    @torch.inference_mode()
    def embed(self, wav: torch.Tensor) -> EmbedderOutput:
        """``wav [S]`` at 16 kHz -> embeddings ``[W, 128]`` (W = number of whole 0.96 s windows)."""
        # The frontend runs in float64 on the CPU (as the numpy original); only the network moves.
        emb = self.model(vggish_examples(wav.reshape(-1).cpu(), self.mel).to(self.device))
        if self.pca is not None:
            vectors, means = (t.to(emb.device) for t in self.pca)
            emb = (emb - means) @ vectors.T
            emb = torch.round((emb.clamp(-2.0, 2.0) + 2.0) * (255.0 / 4.0))
        return EmbedderOutput(as_numpy(emb))


def _load_pca(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        data = safe_torch_load(path)
    except CheckpointError:
        # The published PCA file stores numpy arrays; allow exactly numpy's array reconstruction in the
        # weights-only unpickler (still no arbitrary objects).
        data = _load_with_numpy_globals(path)
    if not isinstance(data, dict) or "pca_eigen_vectors" not in data or "pca_means" not in data:
        raise CheckpointError("not a VGGish PCA file (needs pca_eigen_vectors and pca_means)", path)
    vectors = torch.as_tensor(np.asarray(data["pca_eigen_vectors"]), dtype=torch.float32)
    means = torch.as_tensor(np.asarray(data["pca_means"]), dtype=torch.float32).reshape(-1)
    if vectors.ndim != 2 or vectors.shape[1] != means.numel():
        raise CheckpointError(f"PCA shapes {tuple(vectors.shape)} and {tuple(means.shape)} do not fit", path)
    return vectors, means


def _load_with_numpy_globals(path: Path) -> object:
    allowed = [np.ndarray, np.dtype, type(np.dtype(np.float32)), type(np.dtype(np.float64))]
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    allowed.append(_reconstruct)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"cannot be loaded safely with weights_only=True: {first}", path) from None


def load_vggish(path: str | os.PathLike[str], pca_path: str | os.PathLike[str] | None = None) -> VGGishEmbedder:
    """Load ``vggish-10086976.pth`` (architecture widths read from the weights) and optional PCA params."""
    path = Path(path)
    state = safe_torch_load(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError("not a VGGish state dict", path)
    state = strip_prefix(state, ("module.",))
    conv_keys = sorted(
        (k for k in state if k.startswith("features.") and k.endswith(".weight")), key=lambda k: int(k.split(".")[1])
    )
    if len(conv_keys) != 6 or not all(f"embeddings.{i}.weight" in state for i in (0, 2, 4)):
        raise CheckpointError("not a VGGish checkpoint (expects features.* six convs and embeddings.{0,2,4})", path)
    widths = tuple(int(state[k].shape[0]) for k in conv_keys)
    fc = tuple(int(state[f"embeddings.{i}.weight"].shape[0]) for i in (0, 2, 4))
    model = VGGish(widths, fc)  # type: ignore[arg-type]
    model.load_state_dict(check_keys(model, state, path, "VGGish"))
    pca = _load_pca(Path(pca_path)) if pca_path else None
    if pca is not None and pca[0].shape[1] != fc[2]:
        raise CheckpointError(f"PCA is for {pca[0].shape[1]}-d embeddings, VGGish gives {fc[2]}", pca_path)
    return VGGishEmbedder(model, pca, fingerprint=file_fingerprint(path))
