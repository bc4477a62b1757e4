"""The audio language model: K code streams in, K code streams out, conditioned on video features.

Tokens. Each of the K streams has its own embedding table of ``cardinality + 1`` entries (the extra
one, :attr:`AudioLM.special_token`, fills the empty slots of the delay pattern and is the
begin-of-sequence input); the K embeddings of a step are summed. K output heads (one fused linear)
give the K next-token distributions of that step.

Sequence. With the delay pattern (:mod:`foleygen.lm.patterns`) the codes ``[B, K, T]`` become
``seq [B, K, L = T + K - 1]``. The input at step s is ``seq[:, :, s - 1]`` (the special token at
s = 0) and the output at step s predicts ``seq[:, :, s]``: stream k of audio frame ``s - k``.
:meth:`AudioLM.compute_logits` reverts the pattern so that callers only see audio time.

Conditioning, two variants (``LMConfig.conditioning``):

* ``cross`` (FoleyGen-C): every block cross-attends to the projected visual features.
* ``prefix`` (FoleyGen-P): the projected features are prepended to the token sequence and mixed by
  self-attention. Prefix positions attend only to prefix positions, following the same time rule as
  audio steps (``full``: all frames; ``causal``: frames up to their own; ``frame_specific``: only
  themselves), so that no information from a later frame reaches an earlier one through the prefix.
  Audio steps attend causally to audio steps and to prefix frames through the visual mask.

Visual attention (``LMConfig.visual_attention``): :func:`foleygen.lm.masks.visual_attention_mask`
applied per sequence step, step s attending as audio frame s (the frame it predicts for stream 0).
Consequence, tested: in ``causal`` and ``frame_specific``, ``logits[:, k, t]`` never depends on frames
after the one on screen at audio frame ``t + k``, or with ``visual_lookahead = n`` after the n-th frame
that follows it.

Positions: one time axis in audio steps (step s at s, frame f at ``f * frame_rate / fps``), see
:mod:`foleygen.lm.transformer`.

Classifier-free guidance: in training mode each sample's condition is replaced, with probability
``cfg_dropout``, by a learned null embedding (every frame's projected feature becomes the same learned
vector, so masks and shapes are unchanged). :meth:`AudioLM.generate` runs one batched pass over
``[cond, null]`` rows and mixes ``null + cfg_coef * (cond - null)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch
from torch import nn

from foleygen.errors import CodecError, ConfigError, check_counts
from foleygen.lm import cpu_decoding
from foleygen.lm.masks import KINDS, visual_attention_mask
from foleygen.lm.patterns import build_delay_pattern, delay_valid_mask, revert_delay_pattern, sequence_length
from foleygen.lm.sampling import guide, sample
from foleygen.lm.transformer import KVCache, Transformer, decoding_dtype, init_weights


@dataclass
class LMConfig:
    """Configuration of :class:`AudioLM` (stored in the ``lm`` section of a FoleyGen checkpoint).

    Attributes:
        dim, num_layers, num_heads: Transformer width, depth and attention heads.
        num_codebooks: K code streams (the codec's).
        cardinality: entries per codebook (the codec's).
        frame_rate: codec frames per second (the audio time axis).
        fps: visual feature frames per second (the visual encoder's).
        visual_dim: D of the visual features.
        conditioning: ``cross`` (FoleyGen-C) or ``prefix`` (FoleyGen-P).
        visual_attention: ``full``, ``causal`` or ``frame_specific``.
        visual_lookahead: visual frames past the one on screen that ``causal`` / ``frame_specific``
            audio frames may also see (0 = the paper's masks; see :mod:`foleygen.lm.masks` for why 1
            helps timing).
        cfg_dropout: probability of training a sample with the null condition (classifier-free guidance).
        dropout: dropout in attention and residual branches.
        mlp_ratio: MLP hidden size over ``dim``.
        rope_base: base of the rotary position frequencies.
        bias: biases in the linear layers.
    """

    dim: int = 512
    num_layers: int = 8
    num_heads: int = 8
    num_codebooks: int = 4
    cardinality: int = 2048
    frame_rate: float = 50.0
    fps: float = 25.0
    visual_dim: int = 512
    conditioning: Literal["cross", "prefix"] = "cross"
    visual_attention: Literal["full", "causal", "frame_specific"] = "causal"
    visual_lookahead: int = 0
    cfg_dropout: float = 0.1
    dropout: float = 0.0
    mlp_ratio: float = 4.0
    rope_base: float = 10000.0
    bias: bool = False

    def __post_init__(self) -> None:
        if self.conditioning not in ("cross", "prefix"):
            raise ConfigError(f"LMConfig.conditioning must be 'cross' or 'prefix', got {self.conditioning!r}")
        if self.visual_attention not in KINDS:
            raise ConfigError(f"LMConfig.visual_attention must be one of {list(KINDS)}, got {self.visual_attention!r}")
        if self.visual_lookahead < 0:
            raise ConfigError(f"LMConfig.visual_lookahead must be >= 0 frames, got {self.visual_lookahead}")
        if self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            raise ConfigError(f"LMConfig.dim {self.dim} must split into {self.num_heads} heads of even size")
        check_counts("LMConfig", num_layers=self.num_layers, num_codebooks=self.num_codebooks)
        for name in ("cardinality", "visual_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"LMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.frame_rate > 0 and self.fps > 0):
            raise ConfigError(f"LMConfig rates must be positive, got frame_rate={self.frame_rate}, fps={self.fps}")
        if not (0.0 <= self.cfg_dropout < 1.0 and 0.0 <= self.dropout < 1.0):
            raise ConfigError("LMConfig.cfg_dropout and dropout must be in [0, 1)")


@dataclass
class _DecodeState:
    """Everything one generation precomputes: caches, RoPE tables, masks, memory keys/values."""

    rows: int  # batch rows (2B with classifier-free guidance)
    prefix: int  # P: prefix positions before the audio steps (0 for cross)
    cos: torch.Tensor  # [L, hd] RoPE of audio steps 0..L-1, in the activations' dtype (decoding_dtype)
    sin: torch.Tensor
    caches: list[KVCache]
    memory_kv: list[tuple[torch.Tensor, torch.Tensor]] | None  # cross: per block (k, v) [rows, H, F, hd]
    cross_mask: torch.Tensor | None  # cross: [L, F] (None = all True)
    self_mask: torch.Tensor | None  # prefix: [P + L, P + L]
    # cross with a mask: per audio step, the frames it may attend to as a range [lo, hi) when that set
    # is one contiguous range (it is for every visual_attention kind); a step reads only those keys.
    cross_spans: list[tuple[int, int]] | None = None


def _contiguous_spans(mask: torch.Tensor) -> list[tuple[int, int]] | None:
    """Per row of ``mask [L, F]``, its True entries as a range ``(lo, hi)``; None if a row has none or a gap."""
    F = mask.shape[1]
    idx = torch.arange(F, device=mask.device)
    lo = torch.where(mask, idx, F).amin(1)
    hi = torch.where(mask, idx + 1, 0).amax(1)
    if bool(((hi - lo) != mask.sum(1)).any()) or bool((hi <= lo).any()):
        return None
    return list(zip(lo.tolist(), hi.tolist(), strict=True))


class AudioLM(nn.Module):
    """FoleyGen's Transformer over delayed code streams, conditioned on visual features ``[B, F, D]``."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.num_codebooks, self.cardinality = c.num_codebooks, c.cardinality
        self.frame_rate, self.fps, self.visual_dim = float(c.frame_rate), float(c.fps), c.visual_dim
        # One table for all K streams (stream k uses rows k*(card+1) ...): one lookup per step.
        self.embed = nn.Embedding(c.num_codebooks * (c.cardinality + 1), c.dim)
        self.register_buffer("embed_offsets", torch.arange(c.num_codebooks) * (c.cardinality + 1), persistent=False)
        self.visual_norm = nn.LayerNorm(c.visual_dim)  # features of frozen encoders come at any scale
        self.visual_proj = nn.Linear(c.visual_dim, c.dim)
        self.null_condition = nn.Parameter(torch.zeros(c.dim))
        self.transformer = Transformer(
            c.dim,
            c.num_layers,
            c.num_heads,
            mlp_ratio=c.mlp_ratio,
            cross=c.conditioning == "cross",
            dropout=c.dropout,
            bias=c.bias,
            rope_base=c.rope_base,
        )
        self.head = nn.Linear(c.dim, c.num_codebooks * c.cardinality, bias=False)  # K heads, fused
        init_weights(self, c.num_layers)
        nn.init.normal_(self.null_condition, std=0.02)

    @property
    def special_token(self) -> int:
        """Id of the delay-pattern filler / begin-of-sequence token in every stream."""
        return self.cardinality

    # ----------------------------------------------------------------------------------- pieces
    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [B, K, L]`` -> summed stream embeddings ``[B, L, dim]``."""
        return self.embed(tokens + self.embed_offsets[:, None]).sum(dim=1)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden [B, L, dim]`` -> ``[B, K, L, card]``."""
        B, L, _ = hidden.shape
        return self.head(hidden).view(B, L, self.num_codebooks, self.cardinality).permute(0, 2, 1, 3)

    def condition(self, visual: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """``visual [B, F, D]`` -> memory ``[B, F, dim]``; rows where ``drop [B]`` is True get the null condition."""
        if visual.dim() != 3 or visual.shape[-1] != self.visual_dim:
            raise ConfigError(f"visual features must be [B, F, {self.visual_dim}], got {tuple(visual.shape)}")
        weight = self.visual_proj.weight
        memory = self.visual_proj(self.visual_norm(visual.to(device=weight.device, dtype=weight.dtype)))
        if drop is not None:
            memory = torch.where(drop[:, None, None], self.null_condition.to(memory.dtype), memory)
        return memory

    def null_memory(self, batch: int, num_visual_frames: int) -> torch.Tensor:
        """The null condition as memory ``[B, F, dim]``."""
        return self.null_condition.expand(batch, num_visual_frames, -1)

    def visual_positions(self, num_visual_frames: int, device: torch.device | None = None) -> torch.Tensor:
        """``[F]`` positions of visual frames in audio steps: ``f * frame_rate / fps`` (the one time axis)."""
        return torch.arange(num_visual_frames, device=device, dtype=torch.float64) * (self.frame_rate / self.fps)

    def _visual_mask(self, num_steps: int, num_visual_frames: int, device: torch.device) -> torch.Tensor:
        return visual_attention_mask(
            self.config.visual_attention,
            num_steps,
            self.frame_rate,
            num_visual_frames,
            self.fps,
            device=device,
            lookahead=self.config.visual_lookahead,
        )

    def _prefix_mask(self, num_steps: int, num_visual_frames: int, device: torch.device) -> torch.Tensor:
        """``Bool [P + L, P + L]`` self-attention mask of the prefix variant (P = F prefix frames)."""
        P, L = num_visual_frames, num_steps
        mask = torch.zeros(P + L, P + L, dtype=torch.bool, device=device)
        kind = self.config.visual_attention
        frames = torch.arange(P, device=device)
        if kind == "full":
            mask[:P, :P] = True
        elif kind == "causal":
            mask[:P, :P] = frames[None, :] <= frames[:, None]
        else:  # frame_specific: a prefix frame sees only itself
            mask[:P, :P] = torch.eye(P, dtype=torch.bool, device=device)
        mask[P:, :P] = self._visual_mask(L, P, device)
        mask[P:, P:] = torch.ones(L, L, dtype=torch.bool, device=device).tril()
        return mask

    def _check_codes(self, codes: torch.Tensor, what: str = "codes") -> None:
        if codes.dim() != 3 or codes.shape[1] != self.num_codebooks:
            raise CodecError(f"{what} must be [B, {self.num_codebooks}, T], got shape {tuple(codes.shape)}")
        if codes.dtype.is_floating_point:
            raise CodecError(f"{what} must be integers, got {codes.dtype}")
        # (the value check reads the tensor, which a compiled graph cannot; the task's data was checked)
        if torch.compiler.is_compiling():
            return
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.cardinality):
            raise CodecError(
                f"{what} out of range [0, {self.cardinality}): min {int(codes.min())}, max {int(codes.max())}"
            )

    # ---------------------------------------------------------------------------------- training
    def compute_logits(
        self, codes: torch.Tensor, visual: torch.Tensor, *, drop_condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced logits in audio time: ``codes [B, K, T]``, ``visual [B, F, D]`` -> ``[B, K, T, card]``.

        ``logits[:, k, t]`` predicts ``codes[:, k, t]``. In training mode each sample's condition is
        dropped (null embedding) with probability ``cfg_dropout``; ``drop_condition [B]`` (bool)
        overrides that choice, e.g. to measure the unconditional model.
        """
        self._check_codes(codes)
        B, K, T = codes.shape
        if visual.shape[0] != B:
            raise ConfigError(f"{B} code sequences but {visual.shape[0]} visual sequences")
        device = codes.device
        if drop_condition is None and self.training and self.config.cfg_dropout > 0:
            drop_condition = torch.rand(B, device=device) < self.config.cfg_dropout
        memory = self.condition(visual, drop_condition)  # [B, F, dim]
        Fv = memory.shape[1]
        seq = build_delay_pattern(codes, self.special_token)  # [B, K, L]
        L = seq.shape[-1]
        bos = seq.new_full((B, K, 1), self.special_token)
        x = self._embed(torch.cat([bos, seq[:, :, :-1]], dim=-1))  # [B, L, dim]: input of step s is seq[s-1]
        audio_pos = torch.arange(L, device=device, dtype=torch.float64)
        vis_pos = self.visual_positions(Fv, device)
        if self.config.conditioning == "cross":
            cos, sin = self.transformer.rope(audio_pos, x.dtype)
            cross_mask = self._visual_mask(L, Fv, device)
            memory_kv = self.transformer.memory_kv(memory, vis_pos)
            h = self.transformer(
                x,
                cos,
                sin,
                is_causal=True,
                memory_kv=memory_kv,
                cross_mask=None if self.config.visual_attention == "full" else cross_mask,
            )
        else:
            cos, sin = self.transformer.rope(torch.cat([vis_pos, audio_pos]), x.dtype)
            h = self.transformer(torch.cat([memory, x], dim=1), cos, sin, self_mask=self._prefix_mask(L, Fv, device))[
                :, Fv:
            ]
        return revert_delay_pattern(self._logits(h))  # [B, K, L, card] -> [B, K, T, card]

    # -------------------------------------------------------------------------------- generation
    def _start(self, memory: torch.Tensor, num_steps: int) -> _DecodeState:
        """Allocate caches and precompute positions and masks for ``num_steps`` audio steps."""
        rows, Fv, _ = memory.shape
        device = memory.device
        if device.type == "cpu":  # the fastest few-row path on this CPU, measured once (cpu_decoding)
            cpu_decoding.prepare(self)
        dtype = decoding_dtype(memory.dtype, device)  # activations
        kv_dtype = cpu_decoding.cache_dtype(self, memory.dtype, device) or dtype  # KV caches, memory keys/values
        audio_pos = torch.arange(num_steps, device=device, dtype=torch.float64)
        cos, sin = self.transformer.rope(audio_pos, dtype)
        vis_pos = self.visual_positions(Fv, device)
        if self.config.conditioning == "cross":
            cross_mask = None if self.config.visual_attention == "full" else self._visual_mask(num_steps, Fv, device)
            caches = self.transformer.new_caches(rows, num_steps, dtype=kv_dtype, device=device)
            # contiguous: v is a view into the fused kv projection; the native kernel wants plain rows
            memory_kv = [
                (k.to(kv_dtype).contiguous(), v.to(kv_dtype).contiguous())
                for k, v in self.transformer.memory_kv(memory, vis_pos)
            ]
            spans = None if cross_mask is None else _contiguous_spans(cross_mask)
            return _DecodeState(rows, 0, cos, sin, caches, memory_kv, cross_mask, None, spans)
        caches = self.transformer.new_caches(rows, Fv + num_steps, dtype=kv_dtype, device=device)
        self_mask = self._prefix_mask(num_steps, Fv, device)
        # The prefix goes through the blocks once; its keys/values stay in the caches.
        vcos, vsin = self.transformer.rope(vis_pos, dtype)
        self.transformer(memory.to(dtype), vcos, vsin, self_mask=self_mask[:Fv, :Fv], caches=caches, pos=0)
        return _DecodeState(rows, Fv, cos, sin, caches, None, None, self_mask)

    def _step(self, state: _DecodeState, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Feed ``tokens [rows, K, n]`` as steps ``start .. start + n - 1``; logits of the last: ``[rows, K, card]``."""
        n = tokens.shape[-1]
        end = start + n
        cos, sin = state.cos[start:end], state.sin[start:end]
        x = self._embed(tokens).to(cos.dtype)  # [rows, n, dim]
        if state.prefix:
            P = state.prefix
            h = self.transformer(
                x,
                cos,
                sin,
                self_mask=state.self_mask[P + start : P + end, : P + end],
                caches=state.caches,
                pos=P + start,
            )
        else:
            # One new step attends to every cached one: no mask needed (the fast path of SDPA).
            self_mask = None if n == 1 else torch.ones(n, end, dtype=torch.bool, device=x.device).tril(start)
            memory_kv, cross_mask = state.memory_kv, None if state.cross_mask is None else state.cross_mask[start:end]
            if state.cross_spans is not None:  # read only the frames these steps may attend to
                lo = min(a for a, _ in state.cross_spans[start:end])
                hi = max(b for _, b in state.cross_spans[start:end])
                memory_kv = [(k[:, :, lo:hi], v[:, :, lo:hi]) for k, v in memory_kv]
                cross_mask = None if n == 1 else cross_mask[:, lo:hi]  # one step: its whole range
            h = self.transformer(
                x,
                cos,
                sin,
                self_mask=self_mask,
                caches=state.caches,
                pos=start,
                memory_kv=memory_kv,
                cross_mask=cross_mask,
            )
        return self.head(h[:, -1]).view(state.rows, self.num_codebooks, self.cardinality)

    @torch.inference_mode()
    def generate(
        self,
        visual: torch.Tensor,
        num_frames: int,
        *,
        temperature: float = 1.0,
        top_k: int = 250,
        top_p: float = 0.0,
        cfg_coef: float = 3.0,
        generator: torch.Generator | None = None,
        prompt_codes: torch.Tensor | None = None,
        progress: bool | Callable[[int, int], None] = False,
    ) -> torch.Tensor:
        """Sample ``codes [B, K, num_frames]`` for ``visual [B, F, D]``.

        Args:
            visual: features at ``fps``; frame f is at time ``f / fps`` from the start of the codes.
            num_frames: T, audio frames to return (including the prompt).
            temperature: softmax temperature; 0 is greedy.
            top_k, top_p: filters (0 disables each).
            cfg_coef: classifier-free guidance scale; 1 runs the conditional model alone.
            generator: seeded ``torch.Generator`` for reproducible draws (on the model's device).
            prompt_codes: ``[B, K, T_p]`` codes the output starts with (continuation), ``T_p <= T``.
            progress: True for a tqdm bar, or a callable ``(step, total)``.
        """
        B, K, T = visual.shape[0], self.num_codebooks, num_frames
        if T < 1:
            raise ConfigError(f"num_frames must be >= 1, got {T}")
        device = self.head.weight.device
        Tp = 0
        codes = torch.zeros(B, K, T, dtype=torch.long, device=device)
        if prompt_codes is not None:
            self._check_codes(prompt_codes, "prompt_codes")
            Tp = prompt_codes.shape[-1]
            if prompt_codes.shape[0] != B or Tp > T:
                raise ConfigError(f"prompt_codes {tuple(prompt_codes.shape)} do not fit batch {B} and {T} frames")
            codes[:, :, :Tp] = prompt_codes
        if Tp == T:
            return codes
        seq = build_delay_pattern(codes, self.special_token)  # [B, K, L]: prompt in place, special in the gaps
        L = sequence_length(T, K)
        frame = torch.arange(L, device=device)[None, :] - torch.arange(K, device=device)[:, None]  # [K, L]
        to_sample = delay_valid_mask(T, K, device) & (frame >= Tp)  # [K, L]: slots the model fills

        use_cfg = cfg_coef != 1.0
        memory = self.condition(visual)  # [B, F, dim]
        if use_cfg:
            memory = torch.cat([memory, self.null_memory(B, memory.shape[1]).to(memory.dtype)])  # [2B, F, dim]
        state = self._start(memory, L)
        rows_of = (lambda t: torch.cat([t, t])) if use_cfg else (lambda t: t)

        def next_tokens(logits: torch.Tensor) -> torch.Tensor:  # [rows, K, card] -> [B, K]
            if use_cfg:
                logits = guide(logits[:B].float(), logits[B:].float(), cfg_coef)
            return sample(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)

        # Prefill: steps 0..Tp at once (inputs BOS, seq[0..Tp-1]); every output before step Tp is known.
        bos = seq.new_full((B, K, 1), self.special_token)
        logits = self._step(state, rows_of(torch.cat([bos, seq[:, :, :Tp]], dim=-1)), 0)
        bar = None
        if progress is True:
            from tqdm.auto import tqdm

            bar = tqdm(total=L - Tp, desc="generating", unit="step", leave=False)
        for s in range(Tp, L):
            if s > Tp:
                logits = self._step(state, rows_of(seq[:, :, s - 1 : s]), s)
            seq[:, :, s] = torch.where(to_sample[:, s], next_tokens(logits), seq[:, :, s])
            if bar is not None:
                bar.update(1)
            elif callable(progress):
                progress(s - Tp + 1, L - Tp)
        if bar is not None:
            bar.close()
        return revert_delay_pattern(seq)

    @torch.inference_mode()
    def generate_windowed(
        self,
        visual: torch.Tensor,
        num_frames: int,
        *,
        window_frames: int,
        stride_frames: int,
        prompt_codes: torch.Tensor | None = None,
        progress: bool | Callable[[int, int], None] = False,
        **sampling: object,
    ) -> torch.Tensor:
        """Codes for a clip longer than the training window, in sliding windows -> ``[B, K, num_frames]``.

        Window i covers audio frames ``[i * stride, i * stride + window)``; it starts from the last
        ``window - stride`` already generated frames as its prompt and sees the visual frames of the same
        time span (their positions relative to the window start, as in training), plus the
        ``visual_lookahead`` frames after it where the video has them, so that a window's last audio
        frames see ahead as they would anywhere else. ``stride_frames``
        must span a whole number of visual frames. ``sampling`` goes to :meth:`generate`.
        """
        T, W, S = num_frames, window_frames, stride_frames
        if not 0 < S <= W:
            raise ConfigError(f"need 0 < stride_frames <= window_frames, got stride {S}, window {W}")
        ratio = Fraction(self.fps).limit_denominator(1_000_000) / Fraction(self.frame_rate).limit_denominator(1_000_000)
        if (S * ratio).denominator != 1:
            raise ConfigError(
                f"a stride of {S} audio frames is not a whole number of visual frames at "
                f"{self.frame_rate:g} Hz / {self.fps:g} fps"
            )
        Fw = -(-W * ratio.numerator // ratio.denominator)  # ceil: visual frames shown during one window
        if T <= W:
            return self.generate(visual, T, prompt_codes=prompt_codes, progress=progress, **sampling)
        starts = [0]
        while starts[-1] + W < T:
            starts.append(starts[-1] + S)
        codes = None
        for i, t0 in enumerate(starts):
            t1 = min(t0 + W, T)
            f0 = int(t0 * ratio)
            window_visual = visual[:, f0 : min(f0 + Fw + self.config.visual_lookahead, visual.shape[1])]
            if window_visual.shape[1] == 0:  # audio beyond the video: keep the last frame on screen
                window_visual = visual[:, -1:]
            prompt = prompt_codes if i == 0 else codes[:, :, t0 : starts[i - 1] + W]
            out = self.generate(window_visual, t1 - t0, prompt_codes=prompt, progress=progress is True, **sampling)
            codes = out if codes is None else torch.cat([codes, out[:, :, codes.shape[-1] - t0 :]], dim=-1)
            if callable(progress) and progress is not True:
                progress(i + 1, len(starts))
        return codes

    def extra_repr(self) -> str:
        return ", ".join(
            f"{f.name}={getattr(self.config, f.name)}"
            for f in dataclasses.fields(self.config)
            if f.name in ("conditioning", "visual_attention", "num_codebooks", "cardinality")
        )
