"""The one small contract every audio codec fulfils, so that codecs are interchangeable."""

from __future__ import annotations

import abc

import torch
from torch import nn

from foleygen.errors import CodecError


class AudioCodec(nn.Module, abc.ABC):
    """Waveforms <-> discrete codes.

    Attributes:
        sample_rate: audio samples per second the codec works at.
        channels: audio channels (1 = mono).
        frame_rate: code frames per second (``sample_rate / hop_length``).
        num_codebooks: K, the number of parallel code streams in use.
        cardinality: entries per codebook; codes are in ``[0, cardinality)``.
    """

    sample_rate: int
    channels: int
    frame_rate: float
    num_codebooks: int
    cardinality: int

    @abc.abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav [B, C, S]`` float in [-1, 1] -> ``codes [B, K, T]`` int64, ``T = ceil(S / hop)``."""

    @abc.abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [B, K, T]`` int64 -> ``wav [B, C, T * hop]`` float."""

    @property
    def hop_length(self) -> int:
        """Audio samples per code frame."""
        return round(self.sample_rate / self.frame_rate)

    def check_codes(self, codes: torch.Tensor) -> None:
        """Raise :class:`CodecError` unless ``codes`` is ``[B, K, T]`` integer in range."""
        if codes.dim() != 3:
            raise CodecError(f"codes must be [B, K, T], got shape {tuple(codes.shape)}")
        if codes.shape[1] != self.num_codebooks:
            raise CodecError(f"codes have {codes.shape[1]} codebooks, this codec uses {self.num_codebooks}")
        if codes.dtype.is_floating_point:
            raise CodecError(f"codes must be integers, got {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.cardinality):
            raise CodecError(
                f"codes out of range [0, {self.cardinality}): min {int(codes.min())}, max {int(codes.max())}")
