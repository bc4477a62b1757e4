"""Streamed generation: frames in as they come, audio out as soon as it is final.

One machinery serves live sources (:meth:`foleygen.FoleyGen.stream`, ``foleygen live``) and long videos
(generated window by window with memory independent of their length). A :class:`StreamSession` chains
four incremental stages, each the streaming form of an offline one:

1. :class:`FrameSampler` picks, from source frames at their own rate, the frames the visual encoder
   reads (frame ``i`` is the source frame on screen at ``i / input_fps``, as for a frame tensor given to
   :meth:`FoleyGen.generate`);
2. :class:`IncrementalEncoder` turns them into features, carrying the previous frames a feature needs
   (``compact``: one, for its temporal difference; per-frame encoders: none);
3. :class:`foleygen.lm.streaming.StreamingDecoder` runs the sliding-window decoding steps whose inputs
   are there and hands back final codes;
4. :class:`foleygen.codecs.streaming.StreamingAudioDecoder` decodes them with the context the codec needs.

A stage hands a frame on only once it is certain the offline computation has it too: the clip's length
is fixed only at its end, and offline lengths are rounded (frames ``round(duration * input_fps)``,
features ``SequenceConfig.num_visual_frames``, audio ``num_audio_frames``), so each stage releases
what the length so far already guarantees and the rest at :meth:`StreamSession.end`.

Algorithmic latency (what no machine can remove): the delay pattern (``K - 1`` codec frames), the
visual lookahead of the model's mask (``visual_lookahead`` frames), the codec's right context
(:func:`~foleygen.codecs.streaming.decode_context`) and one source frame period. See
:meth:`StreamSession.latency_seconds`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from foleygen.codecs.streaming import StreamingAudioDecoder
from foleygen.errors import ConfigError, MediaError
from foleygen.lm.streaming import StreamingDecoder

if TYPE_CHECKING:
    from foleygen.api import FoleyGen, GenerationParams


class FrameSampler:
    """Source frames at ``src_fps`` -> frames at ``dst_fps``: frame ``i`` is source frame
    ``floor(i * src_fps / dst_fps)``, ``round(n_source / src_fps * dst_fps)`` of them (at least one)."""

    def __init__(self, src_fps: float, dst_fps: float) -> None:
        if not (src_fps > 0 and math.isfinite(src_fps)):
            raise ConfigError(f"the source frame rate must be a positive number, got {src_fps}")
        self.src, self.dst = float(src_fps), float(dst_fps)
        self.seen = 0  # source frames pushed
        self.out = 0  # frames handed out
        self.last: torch.Tensor | None = None
        self.recent: dict[int, torch.Tensor] = {}

    def _index(self, i: int) -> int:
        return math.floor(i * self.src / self.dst + 1e-9)

    def _count(self, n_source: int) -> int:
        return max(1, round(n_source / self.src * self.dst))

    def push(self, frame: torch.Tensor) -> list[torch.Tensor]:
        """One source frame ``uint8 [H, W, 3]`` -> the output frames it completes (0 or more)."""
        j = self.seen
        self.seen += 1
        self.last = frame
        self.recent[j] = frame  # an output frame may be released only after later source frames came
        out = []
        sure = self._count(self.seen)  # frames that exist whatever comes next (the count only grows)
        while self.out < sure and self._index(self.out) <= j:
            out.append(self.recent[self._index(self.out)])
            self.out += 1
        first = self._index(self.out)  # source frames before the next output frame's are not needed
        for old in [k for k in self.recent if k < min(first, j)]:
            del self.recent[old]
        return out

    def end(self) -> list[torch.Tensor]:
        """No more source frames: the remaining output frames (the last frame repeated if needed)."""
        if self.last is None:
            return []
        n = self._count(self.seen)
        out = []
        while self.out < n:  # source frame index(i), clamped to the last one
            out.append(self.recent.get(min(self._index(self.out), self.seen - 1), self.last))
            self.out += 1
        return out

    @property
    def duration(self) -> float:
        """Seconds of video pushed so far (``n_source / src_fps``)."""
        return self.seen / self.src


class IncrementalEncoder:
    """Frames ``uint8 [n, H, W, 3]`` at ``encoder.input_fps`` -> features ``[n', D]`` as they are final.

    Per-frame encoders (``chunk_multiple == 1``) encode each piece as it comes. Encoders whose features
    depend on neighbouring frames either declare ``stream_context`` (previous frames a feature needs:
    each piece is encoded after that many carried frames, whose features are dropped) or a
    ``chunk_multiple`` (pieces of that many frames: VideoMAE's windows); others cannot stream.
    """

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.context = getattr(encoder, "stream_context", None)
        self.multiple = encoder.chunk_multiple
        if self.context is None and self.multiple is None:
            raise ConfigError(f"{type(encoder).__name__} cannot encode a stream piece by piece")
        self.carry: torch.Tensor | None = None  # context frames, or frames waiting for a whole chunk
        p = next(encoder.parameters(), None)
        self.device = p.device if p is not None else torch.device("cpu")

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(frames[None].to(self.device))[0].float()

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[0] == 0:
            return torch.zeros(0, self.encoder.dim)
        if self.context is not None and (self.multiple is None or self.multiple == 1):
            held = 0 if self.carry is None else self.carry.shape[0]
            x = frames if self.carry is None else torch.cat([self.carry, frames])
            feats = self._encode(x)[held:]
            self.carry = x[-self.context :] if self.context else None
            return feats
        x = frames if self.carry is None else torch.cat([self.carry, frames])
        whole = (x.shape[0] // self.multiple) * self.multiple
        self.carry = x[whole:]
        return self._encode(x[:whole]) if whole else torch.zeros(0, self.encoder.dim)

    def flush(self) -> torch.Tensor:
        """The features of frames still waiting for a whole chunk (none for per-frame encoders)."""
        if self.context is not None or self.carry is None or self.carry.shape[0] == 0:
            return torch.zeros(0, self.encoder.dim)
        feats = self._encode(self.carry)
        self.carry = None
        return feats


class StreamSession:
    """One streamed generation: ``push(frame)`` source frames, get audio ``[C, n]`` back, ``end()``.

    Args:
        model: the :class:`FoleyGen` (cross-attention, ``causal`` or ``frame_specific`` mask).
        fps: the source's frame rate.
        seed: seeds the sampling (the same seed and frames give the codes ``generate_codes`` gives).
        params: decoding settings (default: the model's).
        known_duration: seconds of the video when known up front (a file), else fixed by :meth:`end`.
    """

    def __init__(
        self,
        model: FoleyGen,
        *,
        fps: float,
        seed: int = 0,
        params: GenerationParams | None = None,
        known_duration: float | None = None,
        allow_full_mask: bool = False,
    ) -> None:
        lm = model.lm
        if lm.config.visual_attention == "full" and not allow_full_mask:
            raise ConfigError(
                "this model's visual attention is 'full': every audio frame may look at its whole window "
                f"of video ({model.duration:g} s), so it cannot run live; generate offline instead"
            )
        self.model = model
        self.params = params if params is not None else model.generation
        self.sampler = FrameSampler(fps, float(model.visual_encoder.input_fps))
        self.encoder = IncrementalEncoder(model.visual_encoder)
        self.features_out = 0  # features handed to the decoder
        self.pending = torch.zeros(0, model.visual_encoder.dim)  # features the clip's length may still cut
        self.last_feature: torch.Tensor | None = None
        seq = model.sequence
        self.known_duration = known_duration
        generator = torch.Generator(device=model.device).manual_seed(seed)
        p = self.params
        self.codes = StreamingDecoder(
            lm,
            window_frames=seq.num_audio_frames,
            stride_frames=model._stride_frames(self.params),
            num_audio_frames_for=lambda _n: self._audio_frames_lower_bound(),
            temperature=p.temperature,
            top_k=p.top_k,
            top_p=p.top_p,
            cfg_coef=p.cfg_coef,
            generator=generator,
            num_audio_frames=None if known_duration is None else seq.with_duration(known_duration).num_audio_frames,
        )
        self.audio = StreamingAudioDecoder(model.codec)
        self.samples_out = 0
        self.held = torch.zeros(model.channels, 0)  # decoded samples the clip's length may still cut
        self.ended = False

    # ---------------------------------------------------------------------------- lengths
    def _duration_so_far(self) -> float:
        return self.known_duration if self.known_duration is not None else self.sampler.duration

    def _audio_frames_lower_bound(self) -> int:
        if self.sampler.seen == 0:
            return 0
        return self.model.sequence.with_duration(self._duration_so_far()).num_audio_frames

    def _features_needed(self) -> int:
        return self.model.sequence.with_duration(self._duration_so_far()).num_visual_frames

    def latency_seconds(self) -> dict[str, float]:
        """The algorithmic latency of this model, by cause, in seconds (and ``total``)."""
        lm, seq = self.model.lm, self.model.sequence
        out = {
            "delay_pattern": (lm.num_codebooks - 1) / seq.frame_rate,
            "visual_lookahead": lm.config.visual_lookahead / seq.fps,
            "codec_context": self.audio.latency_frames / seq.frame_rate,
            "frame_period": 1.0 / self.sampler.src,
        }
        out["total"] = sum(out.values())
        return out

    # ---------------------------------------------------------------------------- stream
    def push(self, frame: torch.Tensor | np.ndarray) -> torch.Tensor:
        """One source frame ``uint8 [H, W, 3]`` -> the audio ``[C, n]`` that became final (n >= 0)."""
        if self.ended:
            raise ConfigError("push after end()")
        frame = _as_frame(frame)
        frames = self.sampler.push(frame)
        if frames:
            self._features(self.encoder.push(torch.stack(frames)), final=False)
        return self._advance()

    def end(self) -> torch.Tensor:
        """The source has ended: the rest of the audio ``[C, n]``."""
        if self.sampler.seen == 0:
            raise MediaError("the video ended before its first frame")
        self.ended = True
        rest = self.sampler.end()
        feats = self.encoder.push(torch.stack(rest)) if rest else torch.zeros(0, self.model.visual_encoder.dim)
        feats = torch.cat([feats, self.encoder.flush()])
        self._features(feats, final=True)
        duration = self._duration_so_far()
        self.codes.end(self.model.sequence.with_duration(duration).num_audio_frames)
        wav = self._advance()
        tail = self._trim(self.audio.flush()[0], final=True)
        return torch.cat([wav, tail], dim=-1)

    def _features(self, feats: torch.Tensor, *, final: bool) -> None:
        """Push features on to the decoder, holding back any that the clip's length may still cut."""
        if feats.shape[0]:
            self.last_feature = feats[-1:]
        self.pending = torch.cat([self.pending, feats])
        need = self._features_needed()
        if final and self.pending.shape[0] + self.features_out < need and self.last_feature is not None:
            # more audio than video (a clip shorter than a feature period): the last frame stays on
            pad = need - self.features_out - self.pending.shape[0]
            self.pending = torch.cat([self.pending, self.last_feature.expand(pad, -1)])
        take = max(0, min(self.pending.shape[0], need - self.features_out))
        if take:
            self.codes.push(self.pending[None, :take].to(self.model.device))
            self.features_out += take
        self.pending = self.pending[take:]

    def _advance(self) -> torch.Tensor:
        codes = self.codes.advance()
        if codes.shape[-1] == 0:
            return self._trim(torch.zeros(self.model.channels, 0), final=False)
        return self._trim(self.audio.push(codes)[0], final=False)

    def _trim(self, wav: torch.Tensor, *, final: bool) -> torch.Tensor:
        """Hand out samples up to ``round(duration * sample_rate)`` of the length known so far (the
        offline length at the end); later samples wait, since the last codec frame overhangs the clip."""
        self.held = torch.cat([self.held, wav.to(self.held.dtype)], dim=-1)
        limit = self.model.sequence.with_duration(self._duration_so_far()).num_samples
        keep = max(0, min(self.held.shape[-1], limit - self.samples_out))
        out, self.held = self.held[:, :keep], self.held[:, keep:]
        self.samples_out += keep
        if final:
            self.held = self.held[:, :0]
        return out


def _as_frame(frame: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(frame)) if not isinstance(frame, torch.Tensor) else frame
    if t.dim() != 3 or t.shape[-1] != 3 or t.dtype != torch.uint8:
        raise MediaError(f"frames must be uint8 [H, W, 3], got {t.dtype} {tuple(t.shape)}")
    return t


def stream(
    model: FoleyGen,
    frames: Iterable[torch.Tensor | np.ndarray],
    *,
    fps: float,
    seed: int = 0,
    params: GenerationParams | None = None,
) -> Iterator[torch.Tensor]:
    """:meth:`FoleyGen.stream`: yields audio chunks ``[C, n]`` (n > 0) as they become final."""
    session = StreamSession(model, fps=fps, seed=seed, params=params)
    for frame in frames:
        with model._eval_mode():  # per call: the caller's code between chunks runs in its own mode
            wav = session.push(frame)
        if wav.shape[-1]:
            yield wav
    with model._eval_mode():
        wav = session.end()
    if wav.shape[-1]:
        yield wav
