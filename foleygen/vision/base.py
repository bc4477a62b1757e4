"""The contract every visual encoder fulfils, and the shared machinery of the frozen ones."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from foleygen.errors import ConfigError


class VisualEncoder(nn.Module, abc.ABC):
    """Video frames -> features at a declared rate.

    Attributes:
        fps: feature frames per second of the output ``[B, F', D]``. For per-frame encoders it is also
            the rate frames must be sampled at; encoders that merge frames (VideoMAE: 2 frames per
            feature) read frames at :attr:`input_fps` instead.
        image_size: side S of the square input the backbone sees.
        dim: D, the feature size.
        trainable: False for frozen pretrained encoders (their features can be cached); True for
            encoders that train jointly with the LM (``compact``), whose weights live in the FoleyGen
            checkpoint.
        chunk_multiple: a video may be cut into pieces of any multiple of this many input frames and
            encoded piece by piece with the same result (1 for per-frame encoders); ``None`` when
            features depend on neighbouring frames across any cut (``compact`` with its temporal
            difference, VideoMAE with overlapping windows). :mod:`foleygen.vision.features` uses it to
            bound memory on long videos.
    """

    fps: float
    image_size: int
    dim: int
    trainable: bool = False
    chunk_multiple: int | None = None
    #: previous input frames a feature depends on, when that is a fixed number (``compact``: 1 with its
    #: temporal difference): a stream is then encoded piece by piece after that many carried frames
    #: (:mod:`foleygen.stream`). ``None``: use ``chunk_multiple``, or the encoder cannot stream.
    stream_context: int | None = None

    @property
    def input_fps(self) -> float:
        """Frames per second the input frames must be sampled at (``fps`` for per-frame encoders)."""
        return float(self.fps)

    def num_features(self, num_frames: int) -> int:
        """F', the number of features ``forward`` returns for ``num_frames`` input frames."""
        return num_frames

    @abc.abstractmethod
    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, F, H, W, 3]`` -> normalised ``float [B, F, 3, image_size, image_size]``."""

    @abc.abstractmethod
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``[B, F, 3, S, S]`` -> features ``[B, F', D]`` at ``self.fps``."""

    @torch.inference_mode()
    def encode(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """Convenience: ``preprocess`` then ``forward`` under inference mode -> ``[B, F', D]``."""
        return self.forward(self.preprocess(frames_uint8))


def _as_normal_tensor(x: torch.Tensor) -> torch.Tensor:
    """Inference-mode tensors cannot be saved for backward; a caller training a model on top of frozen
    features (outside inference mode) gets an ordinary tensor instead (one copy of [B, F', D])."""
    if x.is_inference() and not torch.is_inference_mode_enabled():
        return x.clone()
    return x


class FrozenVisualEncoder(VisualEncoder):
    """Shared behaviour of pretrained backends: frozen, eval-only, chunked, optional bf16 autocast.

    Subclasses set ``transform`` (an :class:`~foleygen.vision.preprocessing.ImageTransform`), ``fps``,
    ``image_size``, ``dim`` and implement :meth:`_encode_chunk` (per-frame encoders) or override
    :meth:`forward`.

    Args:
        chunk_size: frames per backbone call; bounds activation memory (a ViT-B/16 holds ~0.2 GB of
            activations per 64 frames in fp32) whatever the video length.
        bf16: run the backbone under CPU/CUDA ``torch.autocast(dtype=bfloat16)``; outputs are float32.
    """

    trainable = False
    chunk_multiple = 1  # per-frame by default; VideoMAE overrides

    def __init__(self, chunk_size: int = 64, bf16: bool = False) -> None:
        super().__init__()
        if int(chunk_size) < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = int(chunk_size)
        self.bf16 = bool(bf16)

    def freeze(self) -> None:
        """Turn off gradients and put every submodule in eval mode (dropout / drop-path off)."""
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenVisualEncoder:
        """Frozen encoders stay in eval mode: a parent ``model.train()`` must not enable their dropout."""
        return super().train(False)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, F, H, W, 3]`` -> ``float32 [B, F, 3, S, S]`` with the publisher's transform."""
        return self.transform(frames, chunk_size=self.chunk_size)

    @contextlib.contextmanager
    def _autocast(self, device: torch.device) -> Iterator[None]:
        if self.bf16:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                yield
        else:
            yield

    def _check_input(self, frames: torch.Tensor) -> None:
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ConfigError(f"{type(self).__name__}.forward expects [B, F, 3, S, S], got {tuple(frames.shape)}")
        if frames.shape[-1] != self.image_size or frames.shape[-2] != self.image_size:
            raise ConfigError(
                f"{type(self).__name__} expects {self.image_size}x{self.image_size} frames, "
                f"got {frames.shape[-2]}x{frames.shape[-1]} (call preprocess first)"
            )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``[B, F, 3, S, S]`` -> ``float32 [B, F, D]``, ``chunk_size`` frames per call."""
        self._check_input(frames)
        b, f = frames.shape[:2]
        flat = frames.reshape(b * f, *frames.shape[2:])
        param = next(self.parameters())
        outs = []
        with torch.inference_mode(), self._autocast(param.device):
            for i in range(0, flat.shape[0], self.chunk_size):
                chunk = flat[i : i + self.chunk_size].to(device=param.device, dtype=param.dtype)
                outs.append(self._encode_chunk(chunk).float())
        if not outs:
            return flat.new_zeros((b, f, self.dim), dtype=torch.float32)
        return _as_normal_tensor(torch.cat(outs).reshape(b, f, -1))

    def _encode_chunk(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, S, S]`` -> ``[N, D]`` (per-frame encoders)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _encode_chunk or forward")
