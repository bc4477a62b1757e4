"""Sliding-window decoding that advances as the video arrives: the one machinery behind long videos and
live generation.

:class:`StreamingDecoder` is :meth:`AudioLM.generate_windowed` turned inside out. Instead of taking
every visual feature up front, it takes them as they come (:meth:`~StreamingDecoder.push`), runs every
decoding step whose inputs are already there (:meth:`~StreamingDecoder.advance`) and hands back the
audio frames whose codes are final. Memory holds one window (its caches and the visual features it
can still see), whatever the length of the video. With the same features and seed it makes the codes
``generate_windowed`` makes: the same windows (window ``i`` covers audio frames ``[i * S, i * S + W)``
and continues from the last ``W - S`` frames of the one before), the same visual span per window, the
same steps in the same order with the same random draws.

When a step can run. Step ``s`` of a window predicts stream ``k`` of audio frame ``s - k``. It needs
(1) the visual frames its mask lets it see (``causal``/``frame_specific``: up to the frame on screen
plus ``visual_lookahead``; ``full``: the window's whole span), and (2) to know whether audio frame
``s`` exists at all, since a frame past the end holds the special token instead of a sample. While
the video is still coming, the audio frames known to exist are those its frames so far already
cover (``num_audio_frames_for``); :meth:`~StreamingDecoder.end` fixes the true length.

Latency, in audio frames: a frame's K codes are final ``K - 1`` steps after its first (the delay
pattern); a step waits for the frame on screen plus ``visual_lookahead`` frames.

Cross-attention models only: a prefix model (FoleyGen-P) mixes the visual frames through its
self-attention before the first audio step, so it cannot start before its window's video is there.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import torch

from foleygen.errors import ConfigError
from foleygen.lm import cpu_decoding
from foleygen.lm.masks import visual_attention_mask
from foleygen.lm.model import AudioLM, _DecodeState
from foleygen.lm.patterns import sequence_length
from foleygen.lm.sampling import guide, sample
from foleygen.lm.transformer import decoding_dtype


class _Window:
    """One window's decoding state: caches, visual keys/values filled as frames arrive, the token grid."""

    def __init__(self, dec: StreamingDecoder, index: int, prompt: torch.Tensor | None) -> None:
        lm = dec.lm
        self.t0 = index * dec.stride  # first audio frame (global)
        self.f0 = int(self.t0 * dec.ratio)  # first visual frame (global)
        self.span = dec.visual_span  # visual frames it may see: shown during it, plus the lookahead
        self.prompt = 0 if prompt is None else prompt.shape[-1]
        rows, K = dec.rows, lm.num_codebooks
        L = sequence_length(dec.window, K)
        device, dtype = dec.device, dec.act_dtype
        self.steps_total = L  # provisional: cut when the end of the audio is known
        self.seq = torch.full((dec.batch, K, L), lm.special_token, dtype=torch.long, device=device)
        if prompt is not None:
            for k in range(K):
                self.seq[:, k, k : k + self.prompt] = prompt[:, k]
        audio_pos = torch.arange(L, device=device, dtype=torch.float64)
        cos, sin = lm.transformer.rope(audio_pos, dtype)
        caches = lm.transformer.new_caches(rows, L, dtype=dec.kv_dtype, device=device)
        blocks = lm.transformer.blocks
        H, hd = lm.transformer.num_heads, lm.transformer.head_dim
        memory_kv = [
            (
                torch.zeros(rows, H, self.span, hd, dtype=dec.kv_dtype, device=device),
                torch.zeros(rows, H, self.span, hd, dtype=dec.kv_dtype, device=device),
            )
            for _ in blocks
        ]
        self.state = _DecodeState(rows, 0, cos, sin, caches, memory_kv, None, None, None)
        self.vis_pos = lm.visual_positions(self.span, device)
        self.filled = 0  # visual frames of the span whose keys/values are in memory_kv
        self.visible = self.span  # frames of the span that exist (fewer in the video's last window)
        self.beyond_video = False  # a window that starts after the video: its last frame stays on screen
        self._masks(dec)
        self.next_step = self.prompt  # the prefill (steps 0..prompt) runs as one call
        self.logits: torch.Tensor | None = None
        self.emitted = self.prompt  # window frames handed out (the prompt was handed out before)

    def _masks(self, dec: StreamingDecoder) -> None:
        """Per step, the range ``[lo, hi)`` of span frames it attends to (``visual_attention_mask`` with
        the frames that exist)."""
        lm = dec.lm
        kind = lm.config.visual_attention
        if kind == "full":
            self.spans = None
            return
        mask = visual_attention_mask(
            kind, self.steps_total, lm.frame_rate, self.visible, lm.fps, device=dec.device,
            lookahead=lm.config.visual_lookahead,
        )  # fmt: skip
        idx = torch.arange(self.visible, device=dec.device)
        lo = torch.where(mask, idx, self.visible).amin(1).tolist()
        hi = (torch.where(mask, idx, -1).amax(1) + 1).tolist()
        self.spans = list(zip(lo, hi, strict=True))  # contiguous for every kind (masks.py)
        # AudioLM._step reads only the frames [lo, hi) of the steps it runs, with the mask inside them
        self.state.cross_mask, self.state.cross_spans = mask, self.spans

    def needs_frames(self, step: int) -> int:
        """Span frames that must be filled before ``step`` (and every step before it) can run."""
        if self.spans is None:
            return self.visible
        return max(hi for _, hi in self.spans[: step + 1])


class StreamingDecoder:
    """Sliding-window generation of ``batch`` code streams as their visual features arrive.

    Args:
        lm: a cross-attention :class:`AudioLM` (in eval mode).
        window_frames / stride_frames: W and S in audio frames, as in :meth:`AudioLM.generate_windowed`
            (S spans a whole number of visual frames).
        num_audio_frames_for: audio frames ``T`` that ``n`` visual frames cover (the caller's length
            rule, e.g. ``SequenceConfig.with_duration(n / fps).num_audio_frames``); while the video is
            coming, ``T(n)`` frames are known to exist.
        batch: B rows decoded together (each push gives features for all of them).
        temperature, top_k, top_p, cfg_coef, generator: as in :meth:`AudioLM.generate`.
        prompt_codes: optional ``[B, K, T_p]`` start of the first window (continuation), ``T_p <= W``.
        num_audio_frames: T when it is known from the start (a file whose duration is known); else it is
            fixed by :meth:`end`, and ``num_audio_frames_for(n)`` must never exceed the final T.
    """

    def __init__(
        self,
        lm: AudioLM,
        *,
        window_frames: int,
        stride_frames: int,
        num_audio_frames_for: Callable[[int], int],
        batch: int = 1,
        temperature: float = 1.0,
        top_k: int = 250,
        top_p: float = 0.0,
        cfg_coef: float = 3.0,
        generator: torch.Generator | None = None,
        prompt_codes: torch.Tensor | None = None,
        num_audio_frames: int | None = None,
    ) -> None:
        if lm.config.conditioning != "cross":
            raise ConfigError(
                "streamed generation needs a cross-attention model (FoleyGen-C); a prefix model mixes its "
                "whole window of video before the first audio step"
            )
        W, S = int(window_frames), int(stride_frames)
        if not 0 < S <= W:
            raise ConfigError(f"need 0 < stride_frames <= window_frames, got stride {S}, window {W}")
        self.ratio = Fraction(lm.fps).limit_denominator(1_000_000) / Fraction(lm.frame_rate).limit_denominator(
            1_000_000
        )
        if (S * self.ratio).denominator != 1:
            raise ConfigError(
                f"a stride of {S} audio frames is not a whole number of visual frames at "
                f"{lm.frame_rate:g} Hz / {lm.fps:g} fps"
            )
        self.lm, self.window, self.stride, self.batch = lm, W, S, int(batch)
        fw = -(-W * self.ratio.numerator // self.ratio.denominator)  # visual frames shown during a window
        self.visual_span = fw + lm.config.visual_lookahead
        self.frames_for = num_audio_frames_for
        self.sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p)
        self.cfg_coef = float(cfg_coef)
        self.generator = generator
        self.rows = 2 * self.batch if self.cfg_coef != 1.0 else self.batch
        self.unguided_next = False  # drop_guidance() was called: the next window has B rows
        self.device = lm.head.weight.device
        if self.device.type == "cpu":
            cpu_decoding.prepare(lm)
        wdtype = lm.head.weight.dtype
        self.act_dtype = decoding_dtype(wdtype, self.device)
        self.kv_dtype = cpu_decoding.cache_dtype(lm, wdtype, self.device) or self.act_dtype
        if prompt_codes is not None:
            lm._check_codes(prompt_codes, "prompt_codes")
            if prompt_codes.shape[0] != self.batch or prompt_codes.shape[-1] > W:
                raise ConfigError(f"prompt_codes {tuple(prompt_codes.shape)} do not fit batch {batch}, window {W}")
        # visual memory rows ([B, dim], conditioned), from global frame `self.memory_start` on
        self.memory: list[torch.Tensor] = []
        self.memory_start = 0
        self.seen = 0  # visual frames pushed
        self.ended = False
        self.total_frames: int | None = None if num_audio_frames is None else int(num_audio_frames)  # T
        self.assumed = 0  # audio frames the steps run so far took to exist
        self.done = False
        self.codes_out = 0  # audio frames handed out
        self.win = _Window(self, 0, prompt_codes)
        self.steps_run = 0

    # ------------------------------------------------------------------------------ input
    def push(self, visual: torch.Tensor) -> None:
        """Add the next ``n`` visual features of every row: ``visual [B, n, D]`` at ``lm.fps``."""
        if self.ended:
            raise ConfigError("push after end(): the video has ended")
        if visual.dim() != 3 or visual.shape[0] != self.batch:
            raise ConfigError(
                f"visual features must be [{self.batch}, n, {self.lm.visual_dim}], got {tuple(visual.shape)}"
            )
        if visual.shape[1] == 0:
            return
        memory = self.lm.condition(visual)  # [B, n, dim]
        self.memory.extend(memory.unbind(1))
        self.seen += visual.shape[1]

    def end(self, num_audio_frames: int | None = None) -> None:
        """No more video. ``num_audio_frames``: the exact audio length T (default ``T(frames pushed)``)."""
        if self.seen == 0:
            raise ConfigError("the video ended before its first frame")
        self.ended = True
        if num_audio_frames is not None:
            self.total_frames = int(num_audio_frames)
        elif self.total_frames is None:
            self.total_frames = self.frames_for(self.seen)
        if self.total_frames < self.assumed:
            raise ConfigError(
                f"the audio was said to last {self.total_frames} frames, but steps already ran for "
                f"{self.assumed} (num_audio_frames_for overstated the length)"
            )
        if self.total_frames < 1:
            raise ConfigError(f"no audio to generate ({self.total_frames} frames)")
        self._cut(self.win)

    # ------------------------------------------------------------------------------ decoding
    def _known_frames(self) -> int:
        """Audio frames known to exist (the exact count once ended)."""
        return self.total_frames if self.total_frames is not None else self.frames_for(self.seen)

    def _cut(self, win: _Window) -> None:
        """Once the video has ended: the window's own length, and the span frames that exist."""
        n = min(self.window, self.total_frames - win.t0)
        win.steps_total = sequence_length(n, self.lm.num_codebooks)
        visible = min(win.span, self.seen - win.f0)
        win.visible = max(1, visible)
        win.beyond_video = visible <= 0
        win._masks(self)

    def _fill(self, win: _Window) -> None:
        """Compute the visual keys/values of span frames that have arrived since the last call."""
        available = 1 if win.beyond_video else min(win.visible, self.seen - win.f0)
        if available <= win.filled:
            return
        lm = self.lm
        a, b = win.filled, available
        if win.beyond_video:
            rows = self.memory[-1][:, None]  # [B, 1, dim]
        else:
            first = win.f0 + a - self.memory_start
            rows = torch.stack(self.memory[first : first + (b - a)], dim=1)  # [B, n, dim]
        if self.rows != self.batch:
            rows = torch.cat([rows, lm.null_memory(self.batch, rows.shape[1]).to(rows.dtype)])
        # in the weights' dtype, as AudioLM._start computes them; stored in the caches' dtype
        for (k, v), (nk, nv) in zip(win.state.memory_kv, lm.transformer.memory_kv(rows, win.vis_pos[a:b]), strict=True):
            k[:, :, a:b] = nk
            v[:, :, a:b] = nv
        win.filled = b

    def _ready(self, win: _Window, step: int) -> bool:
        if step >= win.steps_total:
            return False
        if not self.ended:
            # The step samples window frames up to min(step, W - 1): they must be known to exist (a frame
            # past the end holds the special token instead)
            if win.t0 + min(step, self.window - 1) >= self._known_frames():
                return False
            self.assumed = max(self.assumed, win.t0 + min(step, self.window - 1) + 1)
            if win.needs_frames(step) > self.seen - win.f0:
                return False
        return True

    def _run_step(self, win: _Window) -> None:
        """Run the next step (the prefill for the first), sample, and store the tokens."""
        lm, B, K = self.lm, self.batch, self.lm.num_codebooks
        s = win.next_step
        rows_of = (lambda t: torch.cat([t, t])) if self.rows != B else (lambda t: t)
        if s == win.prompt:  # prefill: BOS and the prompt's steps at once
            bos = win.seq.new_full((B, K, 1), lm.special_token)
            tokens = torch.cat([bos, win.seq[:, :, :s]], dim=-1)
            logits = self._step(win, rows_of(tokens), 0)
        else:
            logits = self._step(win, rows_of(win.seq[:, :, s - 1 : s]), s)
        if self.rows != B:
            logits = guide(logits[:B].float(), logits[B:].float(), self.cfg_coef)
        drawn = sample(logits, generator=self.generator, **self.sampling)  # [B, K]
        frame = s - torch.arange(K, device=self.device)  # window frame of each stream at this step
        limit = win.steps_total - (K - 1)  # the window's audio frames (provisional W until the end is known)
        valid = (frame >= win.prompt) & (frame < limit)
        win.seq[:, :, s] = torch.where(valid[None, :], drawn, win.seq[:, :, s])
        win.next_step = s + 1
        self.steps_run += 1

    def _step(self, win: _Window, tokens: torch.Tensor, start: int) -> torch.Tensor:
        state = win.state
        if win.spans is None:  # full: every frame of the span that exists
            full = state.memory_kv
            state.memory_kv = [(k[:, :, : win.visible], v[:, :, : win.visible]) for k, v in full]
            try:
                return self.lm._step(state, tokens, start)
            finally:
                state.memory_kv = full
        return self.lm._step(state, tokens, start)

    def _finished_frames(self, win: _Window) -> int:
        """Window frames whose K codes are all final."""
        K = self.lm.num_codebooks
        if win.next_step >= win.steps_total:
            return win.steps_total - (K - 1)
        return max(win.prompt, win.next_step - (K - 1))

    def advance(self) -> torch.Tensor:
        """Run every step whose inputs are there -> the codes that became final: ``[B, K, n]`` (n >= 0),
        in order after those returned before."""
        out = []
        while not self.done:
            win = self.win
            self._fill(win)
            ran = False
            while self._ready(win, win.next_step):
                if win.spans is not None and win.needs_frames(win.next_step) > win.filled:
                    self._fill(win)
                self._run_step(win)
                ran = True
            final = self._finished_frames(win)
            if final > win.emitted:
                out.append(self._codes(win, win.emitted, final))
                win.emitted = final
            if win.next_step < win.steps_total:
                if not ran:
                    break
                continue
            # window done: is there another?
            end = win.t0 + (win.steps_total - (self.lm.num_codebooks - 1))
            if self.ended and end >= self.total_frames:
                self.done = True
                break
            if not self.ended and win.t0 + self.window >= self._known_frames():
                break  # a next window exists only if the audio goes on past this one: not known yet
            self._next_window(win)
        return torch.cat(out, dim=-1) if out else torch.zeros(self.batch, self.lm.num_codebooks, 0, dtype=torch.long)

    def _codes(self, win: _Window, a: int, b: int) -> torch.Tensor:
        """Window frames ``[a, b)`` out of the delay pattern: ``[B, K, b - a]``."""
        K = self.lm.num_codebooks
        return torch.stack([win.seq[:, k, k + a : k + b] for k in range(K)], dim=1)

    def drop_guidance(self) -> bool:
        """Decode without classifier-free guidance from the next window on (one row per item instead of
        two: the cheaper setting live generation falls back to when it cannot keep up). The window
        under way finishes as it began. Codes differ from then on. Returns whether guidance was on."""
        was = self.rows != self.batch and not self.unguided_next
        self.unguided_next = True
        return was

    def _next_window(self, win: _Window) -> None:
        if self.unguided_next:  # rows are fixed per window (its caches): the change starts here
            self.rows = self.batch
        overlap = self.window - self.stride
        prompt = self._codes(win, self.stride, self.window)  # [B, K, W - S]: the next window's start
        assert prompt.shape[-1] == overlap
        index = win.t0 // self.stride + 1
        self.win = _Window(self, index, prompt)
        # visual rows before the new window's first frame are never read again (the last one may be:
        # it stays on screen for audio past the video)
        drop = min(self.win.f0 - self.memory_start, len(self.memory) - 1)
        if drop > 0:
            del self.memory[:drop]
            self.memory_start += drop
        if self.ended:
            self._cut(self.win)

    @property
    def latency_frames(self) -> int:
        """Audio frames between a step's first look at a frame and the frame's codes being final: K - 1."""
        return self.lm.num_codebooks - 1
