"""Decode codes into audio as they arrive, with the context the decoder needs: streamed generation.

A convolutional decoder's samples for code frame ``t`` depend on a finite range of frames around it,
``[t - left, t + right]``: its receptive field. :func:`decode_context` measures that range on the codec
itself (decoding random codes with one frame changed and seeing which output frames move), so it is
exact for any stack of convolutions and transposed convolutions, and a bound within ``tolerance`` for
recurrent parts (EnCodec's LSTM remembers the past for ever, fading). :class:`StreamingAudioDecoder`
then hands out the samples of frame ``t`` once frames up to ``t + right`` are known, decoding each new
piece together with ``left`` frames before it and ``right`` after: the same samples as decoding the
whole sequence at once, up to float rounding. ``right`` frames are the codec's algorithmic latency.
"""

from __future__ import annotations

import torch

from foleygen.codecs.base import AudioCodec
from foleygen.errors import CodecError

_PROBE_FRAMES = 256


@torch.inference_mode()
def decode_context(codec: AudioCodec, *, tolerance: float = 0.0, max_frames: int = 96) -> tuple[int, int]:
    """``(left, right)``: code frames before and after frame ``t`` that its decoded samples depend on.

    Measured once per codec instance (cached on it): random codes of ``256`` frames are decoded, the
    middle frame's codes replaced, and the output frames whose samples change by more than
    ``tolerance`` times the signal's peak mark the range (0: any change, the exact receptive field of a
    convolutional decoder, since samples outside it are computed from identical inputs). Capped at
    ``max_frames`` each way (a recurrent decoder's memory never ends; past that cap it has faded).
    The shipped compact codec: (12, 12) frames, 240 ms each way at 50 Hz.
    """
    cached = getattr(codec, "_decode_context", None)
    if cached is not None:
        return cached
    g = torch.Generator().manual_seed(0)
    K, n, hop = codec.num_codebooks, _PROBE_FRAMES, codec.hop_length
    codes = torch.randint(0, codec.cardinality, (1, K, n), generator=g)
    other = codes.clone()
    mid = n // 2
    other[:, :, mid] = (
        codes[:, :, mid] + 1 + torch.randint(0, codec.cardinality - 1, (K,), generator=g)
    ) % codec.cardinality
    device = next((p.device for p in codec.parameters()), torch.device("cpu"))
    a = codec.decode(codes.to(device)).float().cpu()
    b = codec.decode(other.to(device)).float().cpu()
    change = (a - b).abs().amax(dim=(0, 1))[: n * hop].reshape(n, hop).amax(1)  # [n] per output frame
    moved = (change > tolerance * a.abs().max().clamp_min(1e-12)).nonzero().flatten().tolist()
    if not moved:
        result = (0, 0)
    else:
        result = (min(max_frames, max(0, mid - moved[0])), min(max_frames, max(0, moved[-1] - mid)))
    codec._decode_context = result  # type: ignore[attr-defined]
    return result


class StreamingAudioDecoder:
    """Codes in, final audio out: ``push(codes [B, K, n]) -> wav [B, C, m]`` and ``flush()`` at the end.

    The samples handed out lag the codes by ``right`` frames (:func:`decode_context`); each call decodes
    ``left + new + right`` frames. Samples equal ``codec.decode`` of the whole sequence up to float
    rounding.
    """

    def __init__(self, codec: AudioCodec, *, batch: int = 1) -> None:
        self.codec = codec
        self.left, self.right = decode_context(codec)
        self.batch = batch
        self.codes = torch.zeros(batch, codec.num_codebooks, 0, dtype=torch.long)  # frames kept for context
        self.first = 0  # global index of self.codes[..., 0]
        self.total = 0  # frames pushed
        self.emitted = 0  # frames whose samples were handed out

    @property
    def latency_frames(self) -> int:
        """Code frames that must follow a frame before its samples are final."""
        return self.right

    def push(self, codes: torch.Tensor) -> torch.Tensor:
        """Append ``codes [B, K, n]`` -> the samples that became final, ``[B, C, m * hop]``."""
        if codes.dim() != 3 or codes.shape[0] != self.batch or codes.shape[1] != self.codec.num_codebooks:
            raise CodecError(f"codes must be [{self.batch}, {self.codec.num_codebooks}, n], got {tuple(codes.shape)}")
        self.codes = torch.cat([self.codes, codes.cpu().long()], dim=-1)
        self.total += codes.shape[-1]
        return self._emit(self.total - self.right)

    def flush(self) -> torch.Tensor:
        """No more codes: the samples of the remaining frames."""
        return self._emit(self.total)

    def _emit(self, upto: int) -> torch.Tensor:
        hop, C = self.codec.hop_length, self.codec.channels
        if upto <= self.emitted:
            return torch.zeros(self.batch, C, 0)
        a = max(self.first, self.emitted - self.left)
        b = min(self.total, upto + self.right)
        device = next((p.device for p in self.codec.parameters()), torch.device("cpu"))
        wav = self.codec.decode(self.codes[..., a - self.first : b - self.first].to(device)).float().cpu()
        out = wav[..., (self.emitted - a) * hop : (upto - a) * hop]
        self.emitted = upto
        keep = max(self.first, self.emitted - self.left)  # frames before this are never needed again
        self.codes = self.codes[..., keep - self.first :]
        self.first = keep
        return out
