"""The one small contract every audio codec fulfils, so that codecs are interchangeable."""

from __future__ import annotations

import abc
import operator
from collections.abc import Callable

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
                f"codes out of range [0, {self.cardinality}): min {int(codes.min())}, max {int(codes.max())}"
            )

    # ------------------------------------------------------------------ bitrate
    def set_num_codebooks(self, num_codebooks: int) -> None:
        """Use only the first ``num_codebooks`` codebooks (RVQ: fewer codebooks = lower bitrate)."""
        limit = int(getattr(self, "max_num_codebooks", self.num_codebooks))
        try:
            num_codebooks = operator.index(num_codebooks)  # an int (numpy's too); never a float or text
        except TypeError:
            raise CodecError(f"num_codebooks must be an integer, got {num_codebooks!r}") from None
        if not 1 <= num_codebooks <= limit:
            raise CodecError(f"num_codebooks must be in 1..{limit}, got {num_codebooks}")
        self.num_codebooks = int(num_codebooks)

    def codebooks_for_bandwidth(self, bandwidth_kbps: float) -> int:
        """Codebooks that fit ``bandwidth_kbps`` (each costs ``frame_rate * log2(cardinality)`` bit/s), >= 1."""
        import math

        per_codebook = self.frame_rate * math.log2(self.cardinality) / 1000
        return max(1, math.floor(bandwidth_kbps / per_codebook + 1e-9))

    # ------------------------------------------------------------------ input preparation
    def prepare_audio(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Bring audio to this codec's sample rate and channel count.

        ``wav [C, S]`` or ``[B, C, S]`` at ``sample_rate`` -> the same rank at ``self.sample_rate`` with
        ``self.channels`` channels. Resampling uses :func:`foleygen.dsp.sinc_resample` (windowed-sinc
        polyphase, no torchaudio) with a long filter (16 zero crossings, roll-off 0.95: the codec hears
        the whole band with little ripple). A channel mismatch is fixed by averaging (down-mix) or repeating (up-mix)
        and announced with a warning, because it changes what the user hears.
        """
        import warnings

        from foleygen.dsp import sinc_resample

        if wav.dim() not in (2, 3):
            raise CodecError(f"audio must be [C, S] or [B, C, S], got shape {tuple(wav.shape)}")
        if not wav.dtype.is_floating_point:
            raise CodecError(f"audio must be floating point in [-1, 1], got {wav.dtype}")
        squeeze = wav.dim() == 2
        x = wav.unsqueeze(0) if squeeze else wav
        channels = x.shape[1]
        if channels != self.channels:
            if channels == 0:
                raise CodecError("audio has no channels")
            if self.channels == 1:
                warnings.warn(f"down-mixing {channels} channels to mono for the codec", stacklevel=2)
                x = x.mean(dim=1, keepdim=True)
            elif channels == 1:
                warnings.warn(f"up-mixing mono to {self.channels} channels for the codec", stacklevel=2)
                x = x.expand(-1, self.channels, -1)
            else:
                raise CodecError(f"cannot map {channels} audio channels onto a {self.channels}-channel codec")
        if int(sample_rate) != int(self.sample_rate):
            x = sinc_resample(x, int(sample_rate), int(self.sample_rate), zero_crossings=16, rolloff=0.95)
        return x[0] if squeeze else x

    def check_audio(self, wav: torch.Tensor) -> None:
        """Raise :class:`CodecError` unless ``wav`` is float ``[B, self.channels, S]``."""
        if wav.dim() != 3:
            raise CodecError(f"audio must be [B, C, S], got shape {tuple(wav.shape)}")
        if not wav.dtype.is_floating_point:
            raise CodecError(f"audio must be floating point, got {wav.dtype}")
        if wav.shape[1] != self.channels:
            raise CodecError(
                f"audio has {wav.shape[1]} channels, the codec expects {self.channels} (use prepare_audio)"
            )

    # ------------------------------------------------------------------ long inputs
    def chunked_encode(
        self,
        wav: torch.Tensor,
        encode_fn: Callable[[torch.Tensor], torch.Tensor],
        chunk_frames: int,
        context_frames: int,
    ) -> torch.Tensor:
        """Encode ``wav [B, C, S]`` -> ``codes [B, K, ceil(S / hop)]`` piece by piece, bounding memory.

        The signal is padded to whole frames and cut into chunks of ``chunk_frames`` code frames. Each
        chunk is encoded together with ``context_frames`` frames of real audio on both sides, and only the
        chunk's own frames are kept. For a convolutional codec whose receptive field fits in the context,
        the result equals encoding the whole signal at once (the edge padding only touches discarded
        frames); for recurrent parts (EnCodec's LSTM) codes near chunk borders may differ slightly.
        """
        hop = self.hop_length
        total = -(-wav.shape[-1] // hop)
        if total <= chunk_frames:
            return encode_fn(wav)
        wav = nn.functional.pad(wav, (0, total * hop - wav.shape[-1]))
        pieces = []
        for f0 in range(0, total, chunk_frames):
            f1 = min(total, f0 + chunk_frames)
            a, b = max(0, f0 - context_frames), min(total, f1 + context_frames)
            codes = encode_fn(wav[..., a * hop : b * hop])
            pieces.append(codes[..., f0 - a : f1 - a])
        return torch.cat(pieces, dim=-1)

    def chunked_decode(
        self,
        codes: torch.Tensor,
        decode_fn: Callable[[torch.Tensor], torch.Tensor],
        chunk_frames: int,
        context_frames: int,
    ) -> torch.Tensor:
        """Decode ``codes [B, K, T]`` -> ``wav [B, C, T * hop]`` piece by piece (see :meth:`chunked_encode`)."""
        hop = self.hop_length
        total = codes.shape[-1]
        if total <= chunk_frames:
            return decode_fn(codes)
        pieces = []
        for f0 in range(0, total, chunk_frames):
            f1 = min(total, f0 + chunk_frames)
            a, b = max(0, f0 - context_frames), min(total, f1 + context_frames)
            wav = decode_fn(codes[..., a:b])
            pieces.append(wav[..., (f0 - a) * hop : (f1 - a) * hop])
        return torch.cat(pieces, dim=-1)
