"""aisfx: a CNN embedding trained on sound-effects libraries, as the ``aisfx`` FD embedder ("FD-aisfx").

The PyPI package ``aisfx`` 0.1.2 (CC-BY-4.0 weights, ISMIR 2022 "X-Sequential-CE" model, trained across
nine commercial sound-effects libraries) ships ``models/checkpoint.pth``. Its code pins numpy 1.23 and
librosa 0.9.2, so we install it bare, never import it, and reimplement both halves here:

**Frontend** (the package's librosa path, ``spectrogram_librosa.compute_spectrogram``): mono audio at
44.1 kHz, divided by its peak magnitude; centred STFT (2048-sample periodic Hann window and FFT, hop
1024 = 23 ms, zero padding at both ends as librosa >= 0.9 does); power spectrum; 96 HTK-mel triangles
over 0-22050 Hz (built in Hz between mel-spaced points, each band's weights summing to 1);
``log10(1e4 * mel + 1)`` scaled by ``1 / 9.4578`` (the maximum over the paper's training spectrograms,
``spec_norm="original"``). The paper computed its spectrograms with Essentia (ReplayGain-normalised
loading, weights triangular on the mel axis); the package offers the librosa path as the portable
equivalent, and that is the one reproduced here.

**Windows**: blocks of 100 frames (2.3 s) every 50 frames; a trailing partial block is dropped, and a
clip shorter than one block gives one zero-padded block (zero = silence after the log compression).

**Network** (``EmbeddingNet("max", 3, 1, 64)`` of ``models/cnn2d.py``, the DCASE 2018 cross-task
baseline's 9-layer CNN): input ``[W, 1, 100, 96]``; four blocks of two ``3x3 conv (no bias) -> BN ->
ReLU`` with widths 64, 128, 256, 512 and 2x2 max-pooling after the first three; mean over frequency,
max over time -> ``[W, 512]``. The checkpoint also holds nine classifier heads (``fc.*``, one per
training library, without label names); they are not used.

**Checkpoint**: a pickled tuple ``(state_dict, {library: (np.int64 index, classes)})``. Plain
``weights_only=True`` refuses it because of the numpy scalars; inspecting the pickle (``pickletools``)
shows exactly three non-torch globals — ``numpy.core.multiarray.scalar``, ``numpy.dtype`` and the
int64 dtype class — and only those are allowed (:func:`read_checkpoint`), never a full unpickle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from foleygen import dsp
from foleygen.errors import CheckpointError
from foleygen.eval.embedders.base import AudioEmbedder, EmbedderOutput, as_numpy
from foleygen.packaged import PackagedFile, check_sha256, find_weight_file, load_exact

__all__ = [
    "AisfxEmbedder",
    "AisfxNet",
    "aisfx_blocks",
    "aisfx_logmel",
    "aisfx_mel_matrix",
    "load_aisfx",
    "read_checkpoint",
]

SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 1024
N_MELS = 96
BLOCK = 100
BLOCK_HOP = 50
SPEC_MAX = 9.457798957824707  # aisfx.preprocessing.spectrogram_normalize(spec_norm="original")

PACKAGED = PackagedFile(
    package="aisfx",
    module="aisfx",
    relpath="models/checkpoint.pth",
    sha256="499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5",
)


# ---------------------------------------------------------------------------------------------------
# Frontend


def aisfx_mel_matrix(
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """HTK-mel filterbank ``[n_fft // 2 + 1, n_mels]`` (float64), each band's weights summing to 1.

    Triangles are linear in Hz between ``n_mels + 2`` points equally spaced on the HTK mel scale
    (``2595 log10(1 + f / 700)``), as ``librosa.filters.mel(htk=True, norm=1)`` builds them.
    """
    return dsp.mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, norm="sum").T


def aisfx_logmel(wav: torch.Tensor, mel_matrix: torch.Tensor | None = None) -> torch.Tensor:
    """Mono 44.1 kHz ``wav [S]`` -> normalised log-mel ``[T, 96]`` float32, ``T = 1 + S // 1024``.

    Computed in float64 on the CPU (the reference is numpy); silence stays all-zero.
    """
    mel = torch.from_numpy(aisfx_mel_matrix()) if mel_matrix is None else mel_matrix.to(torch.float64)
    x = wav.detach().reshape(-1).to("cpu", torch.float64)
    peak = x.abs().max() if x.numel() else torch.tensor(0.0, dtype=torch.float64)
    x = x / (peak if peak > 0 else 1.0)
    if x.numel() <= N_FFT // 2:  # too short to pad-and-frame: one centred frame of zeros around it
        x = F.pad(x, (0, N_FFT // 2 + 1 - x.numel()))
    spec = torch.stft(
        x,
        N_FFT,
        hop_length=HOP,
        win_length=N_FFT,
        window=torch.hann_window(N_FFT, periodic=True, dtype=torch.float64),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )  # [F, T]
    power = spec.real.square() + spec.imag.square()
    mel_power = power.T @ mel  # [T, M]
    return (torch.log10(mel_power * 1e4 + 1.0) / SPEC_MAX).to(torch.float32)


def aisfx_blocks(spec: torch.Tensor) -> torch.Tensor:
    """Log-mel ``[T, M]`` -> blocks ``[W, 100, M]`` every 50 frames, as the package's ``blocking``
    with ``drop_partial_block=True``: ``W = 1 + (T - 100) // 50`` (at least 1, zero-padded)."""
    t = spec.shape[0]
    if t < BLOCK:
        return F.pad(spec, (0, 0, 0, BLOCK - t))[None]
    return spec.unfold(0, BLOCK, BLOCK_HOP).transpose(1, 2).contiguous()


# ---------------------------------------------------------------------------------------------------
# Network


class _ConvBlock(nn.Module):
    """``[N, cin, T, M]`` -> ``[N, cout, T / pool, M / pool]``: two 3x3 conv-BN-ReLU, then max-pool."""

    def __init__(self, cin: int, cout: int, pool: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, self.pool) if self.pool > 1 else x


class AisfxNet(nn.Module):
    """The aisfx embedding CNN: blocks ``[W, 100, 96]`` -> embeddings ``[W, 8 * width]`` (512).

    Args:
        width: channels of the first block (64 in the published model; doubled per block).
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        widths = (width, 2 * width, 4 * width, 8 * width)
        self.conv_block1 = _ConvBlock(1, widths[0], 2)
        self.conv_block2 = _ConvBlock(widths[0], widths[1], 2)
        self.conv_block3 = _ConvBlock(widths[1], widths[2], 2)
        self.conv_block4 = _ConvBlock(widths[2], widths[3], 1)
        self.dim = widths[3]

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        """``[W, T, M]`` (time, mel) -> ``[W, D]``: mean over mel, then max over time."""
        x = blocks.unsqueeze(1)
        for block in (self.conv_block1, self.conv_block2, self.conv_block3, self.conv_block4):
            x = block(x)
        return x.mean(dim=3).amax(dim=2)


# ---------------------------------------------------------------------------------------------------
# Checkpoint


def _allowed_globals() -> list[Any]:
    """The non-torch classes the published checkpoint's pickle holds (found with ``pickletools``):
    numpy's scalar reconstructor (pickled under its numpy 1 path), ``np.dtype`` and the int64 dtype class."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    return [(scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype("int64"))]


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, tuple[int, int]]]:
    """``(state_dict, {library: (index, num_classes)})`` of an aisfx ``checkpoint.pth``.

    Loaded with ``torch.load(weights_only=True)`` under ``torch.serialization.safe_globals`` listing
    only :func:`_allowed_globals`; any other object in the pickle is refused.

    Raises:
        CheckpointError: unreadable or unsafe file, or not the ``(state_dict, dict)`` layout.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("aisfx checkpoint not found", path)
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:
        raise CheckpointError("loading the aisfx checkpoint safely needs torch >= 2.5 (safe_globals)", path)
    try:
        with safe_globals(_allowed_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(
            f"cannot be loaded with weights_only=True and the numpy allow-list: {first}", path
        ) from None
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], dict):
        state, heads = obj
    elif isinstance(obj, dict):  # a re-saved bare state dict
        state, heads = obj, {}
    else:
        raise CheckpointError(f"not an aisfx checkpoint (a {type(obj).__name__}, expected (state_dict, dict))", path)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("not an aisfx checkpoint: the state dict holds non-tensors", path)
    heads = {str(k): (int(v[0]), int(v[1])) for k, v in dict(heads).items()}
    return dict(state), heads


class AisfxEmbedder(AudioEmbedder):
    """aisfx embeddings of mono 44.1 kHz audio: ``[W, 512]`` per clip, one row per 2.3 s window."""

    name = "aisfx"
    sample_rate = SAMPLE_RATE
    num_classes = 0  # the heads have no label names: no KL / IS

    def __init__(self, model: AisfxNet, fingerprint: str = "", *, batch: int = 64) -> None:
        self.model = model.eval()
        self.dim = model.dim
        self.fingerprint = fingerprint
        self.batch = int(batch)
        self.mel = torch.from_numpy(aisfx_mel_matrix())

    @torch.inference_mode()
    def embed(self, wav: torch.Tensor) -> EmbedderOutput:
        """``wav [S]`` at 44.1 kHz -> embeddings ``[W, 512]`` (W >= 1)."""
        blocks = aisfx_blocks(aisfx_logmel(wav, self.mel))
        outs = [self.model(blocks[i : i + self.batch].to(self.device)) for i in range(0, len(blocks), self.batch)]
        return EmbedderOutput(as_numpy(torch.cat(outs)))


def load_aisfx(path: str | os.PathLike[str] | None = None) -> AisfxEmbedder:
    """The aisfx embedder from ``path`` (``checkpoint.pth`` or its directory) or, for ``None``, from the
    installed ``aisfx`` package (sha256-checked).

    Raises:
        ModelUnavailable: no path and the package is not installed.
        CheckpointError: unsafe or malformed file, wrong hash of the packaged file, wrong keys/shapes.
    """
    if path is None:
        from foleygen.eval.embedders import ModelUnavailable

        file = PACKAGED.locate()
        if file is None:
            raise ModelUnavailable("aisfx weights not installed: pip install --no-deps aisfx==0.1.2")
        check_sha256(file, PACKAGED.sha256)
    else:
        file = find_weight_file(path, "checkpoint.pth", "aisfx")
    state, _heads = read_checkpoint(file)
    prefix = "embedding_net."
    body = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    others = sorted(k for k in state if not k.startswith(prefix) and not k.startswith("fc."))
    if others:
        raise CheckpointError(f"not an aisfx checkpoint: unexpected key(s) {others[:3]}", file)
    first = body.get("conv_block1.conv1.weight")
    if first is None:
        raise CheckpointError("not an aisfx checkpoint: no embedding_net.conv_block1.conv1.weight", file)
    model = AisfxNet(width=int(first.shape[0]))
    load_exact(model, body, file, "aisfx embedding_net")
    for p in model.parameters():
        p.requires_grad_(False)
    from foleygen.eval.embedders.base import file_fingerprint

    return AisfxEmbedder(model, fingerprint=file_fingerprint(file))
