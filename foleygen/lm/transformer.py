"""The Transformer of the audio LM: pre-norm blocks, rotary positions on one time axis, a KV cache.

Positions. The design's key finding is that audio and video must share **one time axis**. Every
position here is a real number in *audio steps*: sequence step s sits at position s, visual frame f at
``f * frame_rate / fps``. Rotary embeddings (RoPE) rotate queries and keys by their position, so the
attention score between an audio step and a visual frame depends on how far apart they are *in time*
— in self-attention (the prefix variant, where frames are keys in the same sequence) and in
cross-attention alike (we rotate cross-attention queries by their audio position and memory keys by
their frame position). A model trained at 50 Hz / 25 fps thus knows that the frame at position 2.0 is
"now" for step 2 without having to learn an alignment from index embeddings.

Decoding. :class:`KVCache` is preallocated for the whole sequence, one step writes its keys and values
in place and attends to the filled prefix; cross-attention keys/values of the visual memory are
computed once per generation (:meth:`Transformer.memory_kv`). A decoding step is thus one pass through
the weights with no growing allocations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from foleygen.lm import native
from foleygen.utils import native_bf16

# Up to this many rows (one decoding step: a batch and its CFG rows), a CPU linear takes a path of its
# own. Measured on the 2-core AMD EPYC dev machine (torch 2.13, one thread, weights that do not stay in
# cache; benchmarks/generate.py): fp32 as (W @ x^T)^T reads the weights at ~20 GB/s against ~7 GB/s for
# x @ W^T, which is what nn.Linear does; bf16 on oneDNN weights packed once for a few rows
# (mkldnn._linear_pointwise) at ~13 GB/s against ~8 GB/s for nn.Linear and ~5 GB/s for (W @ x^T)^T.
GEMV_MAX_ROWS = 8


PACKED_BF16 = native_bf16(torch.device("cpu"))


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state-dict keys) with faster paths for a few CPU rows.

    ``x [..., in] -> [..., out]``. fp32: computed as ``(W @ x^T)^T``. bf16 without autograd (decoding):
    oneDNN's linear on a copy of the weight packed in its blocked layout, made on first use and remade
    whenever the weight changes (``_version`` or storage). Training batches (many rows), other dtypes
    and devices take ``nn.Linear``'s own path; every path computes the same product up to rounding order.
    """

    _packed: tuple[int, int, torch.Tensor] | None = None  # (weight version, data pointer, packed weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight  # read once: a module attribute lookup costs about a microsecond
        rows = x.numel() // w.shape[1]
        if x.dtype == torch.float32 and w.dtype != torch.float32:
            return self._mixed(x, w, rows)
        if rows > GEMV_MAX_ROWS or x.device.type != "cpu":
            return super().forward(x)
        if x.dtype == torch.float32:
            y = (w @ x.reshape(rows, w.shape[1]).T).T.contiguous()  # [rows, out]
            if self.bias is not None:
                y = y + self.bias
            return y.view(*x.shape[:-1], w.shape[0])
        if x.dtype == torch.bfloat16 and self._packs(x):
            y = torch.ops.mkldnn._linear_pointwise(
                x.reshape(rows, w.shape[1]).contiguous(), self._packed_weight(), self.bias, "none", [], ""
            )
            return y.view(*x.shape[:-1], w.shape[0])
        return super().forward(x)

    def _mixed(self, x: torch.Tensor, w: torch.Tensor, rows: int) -> torch.Tensor:
        """float32 rows through bf16/fp16 weights ``w`` (CPU decoding, :func:`decoding_dtype`) -> float32.

        Up to :data:`GEMV_MAX_ROWS` rows and bf16 weights: the native kernel when it is available
        (:mod:`foleygen.lm.native`). Otherwise the rows are rounded to the weight's dtype and take that
        dtype's path (for a few bf16 rows oneDNN's packed one).
        """
        x2 = x.reshape(rows, w.shape[1]).contiguous()
        grad = torch.is_grad_enabled() and (w.requires_grad or x.requires_grad)
        if rows <= GEMV_MAX_ROWS and not grad and w.is_contiguous() and native.usable(x2, w):
            y = native.linear_half_unchecked(x2, w, self.bias)
        else:
            y = self.forward(x2.to(w.dtype)).float()
        return y.view(*x.shape[:-1], w.shape[0])

    def _packs(self, x: torch.Tensor) -> bool:
        w = self.weight
        return (
            PACKED_BF16
            and w.dtype == torch.bfloat16
            and not (torch.is_grad_enabled() and (w.requires_grad or x.requires_grad))
        )

    def _packed_weight(self) -> torch.Tensor:
        w = self.weight
        key = (w._version, w.data_ptr())
        if self._packed is None or self._packed[:2] != key:
            self._packed = (*key, torch.ops.mkldnn._reorder_linear_weight(w.detach(), GEMV_MAX_ROWS))
        return self._packed[2]

    def __getstate__(self) -> dict[str, Any]:  # deepcopy/pickle: oneDNN's packed tensor has no storage
        state = self.__dict__.copy()
        state.pop("_packed", None)
        return state

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> Linear:
        self._packed = None  # .to(), .half(), ...: a packed copy of the old weight is stale
        return super()._apply(fn, *args, **kwargs)


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` (same parameters) that also normalises float32 inputs with bf16/fp16 parameters.

    In CPU decoding the activations stay float32 while the weights are bf16 (:func:`decoding_dtype`);
    the parameters are then used as float32 copies, made once and remade whenever they change.
    """

    _copies: tuple[tuple[int, int, int, int], torch.Tensor | None, torch.Tensor | None] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight, self.bias
        if w is None or x.dtype == w.dtype:
            return super().forward(x)
        if torch.is_grad_enabled():  # differentiable, no cached copies
            return F.layer_norm(x, self.normalized_shape, w.to(x.dtype), None if b is None else b.to(x.dtype), self.eps)
        key = (w._version, w.data_ptr(), -1 if b is None else b._version, -1 if b is None else b.data_ptr())
        if self._copies is None or self._copies[0] != key or self._copies[1].dtype != x.dtype:
            self._copies = (key, w.detach().to(x.dtype), None if b is None else b.detach().to(x.dtype))
        return F.layer_norm(x, self.normalized_shape, self._copies[1], self._copies[2], self.eps)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> LayerNorm:
        self._copies = None
        return super()._apply(fn, *args, **kwargs)


def decoding_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """dtype of the activations, keys and values of a decoding step (KV caches, visual memory) for a model
    whose weights are in ``dtype``.

    float32 for a bf16/fp16 model on the CPU, where only the weights are worth keeping in 16 bits: a
    decoding step streams every weight once, so halving their bytes is what makes it faster, while its
    activations are a few rows. In float32 the many small ops of a step run faster than in bf16,
    PyTorch's fused attention kernel is 3-10x faster (measured on the dev machine, torch 2.13, one
    thread, one query over 200-1500 keys), and the linears read bf16 weights with float32 rows through
    :mod:`foleygen.lm.native` at about twice the speed of PyTorch's bf16 paths. Elsewhere: ``dtype``.
    """
    if device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        return torch.float32
    return dtype


def decoding_cache_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """dtype of the KV caches and visual keys/values of a decoding step for a model whose weights are in
    ``dtype``: bf16 for a bf16 model on the CPU when the native attention kernel is there (it reads bf16
    caches at half the bytes), else :func:`decoding_dtype`."""
    if device.type == "cpu" and dtype == torch.bfloat16 and native.available():
        return torch.bfloat16
    return decoding_dtype(dtype, device)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` of ``q [B, H, L, hd]`` over ``k, v [B, H, S, hd]`` -> ``[B, H, L, hd]``.

    ``mask [L, S]`` is True where a query may attend. One float32 query per row over float32 or bf16
    keys (a CPU decoding step, :func:`decoding_cache_dtype`) takes the native kernel when it is there
    (:func:`foleygen.lm.native.attend_one`). Queries and keys of different dtypes are attended in float32
    when either is float32; the result is in ``q``'s dtype.
    """
    if mask is None and not is_causal and dropout_p == 0.0 and native.attention_usable(q, k, v):
        return native.attend_one(q, k, v)
    if q.dtype == k.dtype:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout_p)
    wide = torch.float32 if torch.float32 in (q.dtype, k.dtype) else k.dtype
    y = F.scaled_dot_product_attention(
        q.to(wide), k.to(wide), v.to(wide), attn_mask=mask, is_causal=is_causal, dropout_p=dropout_p
    )
    return y.to(q.dtype)


def rope_tables(
    positions: torch.Tensor, head_dim: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, signed_sin)``, each ``[L, head_dim]``, for real-valued ``positions [L]`` (audio steps).

    Rotate-half convention: channel i and i + head_dim/2 form one rotating pair. The tables are stored
    at full width, ``cos = [cos, cos]`` and ``signed_sin = [-sin, sin]``, so that :func:`apply_rope` is
    three tensor ops (it runs twice per layer and decoding step, where op count is the cost).
    """
    half = head_dim // 2
    inv_freq = base ** (-torch.arange(half, dtype=torch.float64, device=positions.device) / half)  # [half]
    angles = positions.double()[:, None] * inv_freq[None, :]  # [L, half]; float64 keeps long clips exact
    cos, sin = angles.cos(), angles.sin()
    return torch.cat([cos, cos], dim=-1).to(dtype), torch.cat([-sin, sin], dim=-1).to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [..., L, head_dim]`` by tables ``[L, head_dim]`` from :func:`rope_tables`.

    ``[x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin]``; ``roll`` by half the width swaps the halves.
    """
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), signed_sin)


@dataclass
class KVCache:
    """Preallocated keys and values of one self-attention layer: ``k, v [B, H, L_max, head_dim]``."""

    k: torch.Tensor
    v: torch.Tensor

    @classmethod
    def empty(
        cls, batch: int, heads: int, max_len: int, head_dim: int, *, dtype: torch.dtype, device: torch.device
    ) -> KVCache:
        shape = (batch, heads, max_len, head_dim)
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused qkv projection, RoPE and an optional KV cache."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = Linear(dim, 3 * dim, bias=bias)
        self.out = Linear(dim, dim, bias=bias)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        *,
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None = None,
        pos: int = 0,
    ) -> torch.Tensor:
        """``x [B, L, D]`` at positions ``pos .. pos + L - 1`` -> ``[B, L, D]``.

        ``mask [L, L_keys]`` (True = attend) or ``is_causal``; with a ``cache`` the keys are the cache's
        first ``pos + L`` entries.
        """
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # [3, B, H, L, hd]
        qk = apply_rope(qkv[:2], cos, sin)  # [2, B, H, L, hd]: rotate q and k in one go
        q, k, v = qk[0], qk[1], qkv[2]
        if cache is not None:
            cache.k[:, :, pos : pos + L] = k
            cache.v[:, :, pos : pos + L] = v
            k, v = cache.k[:, :, : pos + L], cache.v[:, :, : pos + L]
        y = attention(
            q, k, v, mask, is_causal=is_causal and mask is None, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, L, hd]
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class CrossAttention(nn.Module):
    """Attention from audio steps to the visual memory; the memory's keys/values are computed once."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q = Linear(dim, dim, bias=bias)
        self.kv = Linear(dim, 2 * dim, bias=bias)
        self.out = Linear(dim, dim, bias=bias)
        self.dropout = dropout

    def memory_kv(
        self, memory: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``memory [B, F, D]`` at visual positions -> ``(k, v)``, each ``[B, H, F, hd]`` (k rotated)."""
        B, Fm, _ = memory.shape
        kv = self.kv(memory).view(B, Fm, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return apply_rope(kv[0], cos, sin), kv[1]

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """``x [B, L, D]`` (rotated by the audio positions ``cos/sin [L, hd]``), ``mask [L, F]`` -> ``[B, L, D]``."""
        B, L, D = x.shape
        q = apply_rope(self.q(x).view(B, L, self.num_heads, self.head_dim).transpose(1, 2), cos, sin)
        k, v = memory_kv
        y = attention(q, k, v, mask, dropout_p=self.dropout if self.training else 0.0)  # [B, H, L, hd]
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.fc = Linear(dim, hidden, bias=bias)
        self.proj = Linear(hidden, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-norm block: self-attention, (cross-attention to the visual memory), MLP, each residual."""

    def __init__(
        self, dim: int, num_heads: int, mlp_hidden: int, *, cross: bool, dropout: float = 0.0, bias: bool = False
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, dropout, bias)
        self.norm_cross = LayerNorm(dim) if cross else None
        self.cross = CrossAttention(dim, num_heads, dropout, bias) if cross else None
        self.norm2 = LayerNorm(dim)
        self.mlp = MLP(dim, mlp_hidden, dropout, bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        *,
        self_mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None,
        pos: int,
        memory_kv: tuple[torch.Tensor, torch.Tensor] | None,
        cross_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        x = x + self.resid_dropout(
            self.attn(self.norm1(x), cos, sin, mask=self_mask, is_causal=is_causal, cache=cache, pos=pos)
        )
        if self.cross is not None:
            x = x + self.resid_dropout(self.cross(self.norm_cross(x), cos, sin, memory_kv, cross_mask))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """A stack of :class:`Block` with a final norm. Knows nothing of codes or video: the LM drives it."""

    def __init__(
        self,
        dim: int,
        num_layers: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        cross: bool,
        dropout: float = 0.0,
        bias: bool = False,
        rope_base: float = 10000.0,
    ) -> None:
        super().__init__()
        self.dim, self.num_heads, self.head_dim, self.rope_base = dim, num_heads, dim // num_heads, rope_base
        hidden = int(round(dim * mlp_ratio))
        self.blocks = nn.ModuleList(
            [Block(dim, num_heads, hidden, cross=cross, dropout=dropout, bias=bias) for _ in range(num_layers)]
        )
        self.norm = LayerNorm(dim)

    def rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE tables ``[L, hd]`` for ``positions [L]`` in audio steps."""
        return rope_tables(positions, self.head_dim, self.rope_base, dtype)

    def memory_kv(self, memory: torch.Tensor, positions: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-block cross-attention ``(k, v)`` of ``memory [B, F, D]`` at ``positions [F]`` (computed once)."""
        cos, sin = self.rope(positions, memory.dtype)
        return [blk.cross.memory_kv(memory, cos, sin) for blk in self.blocks]

    def new_caches(self, batch: int, max_len: int, *, dtype: torch.dtype, device: torch.device) -> list[KVCache]:
        return [
            KVCache.empty(batch, self.num_heads, max_len, self.head_dim, dtype=dtype, device=device)
            for _ in self.blocks
        ]

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        *,
        self_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        caches: list[KVCache] | None = None,
        pos: int = 0,
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        cross_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x [B, L, D]`` -> normalised hidden states ``[B, L, D]``.

        ``cos/sin [L, hd]`` hold the positions of x; ``self_mask [L, pos + L]`` or ``is_causal``;
        ``caches`` one per block (written at ``pos .. pos + L - 1``); ``memory_kv`` from
        :meth:`memory_kv` and ``cross_mask [L, F]`` when the blocks cross-attend.
        """
        for i, blk in enumerate(self.blocks):
            x = blk(
                x,
                cos,
                sin,
                self_mask=self_mask,
                is_causal=is_causal,
                cache=None if caches is None else caches[i],
                pos=pos,
                memory_kv=None if memory_kv is None else memory_kv[i],
                cross_mask=cross_mask,
            )
        return self.norm(x)


def init_weights(module: nn.Module, num_layers: int) -> None:
    """GPT-2 style init: N(0, 0.02), residual output projections scaled by ``1 / sqrt(2 * layers)``."""
    for name, p in module.named_parameters():
        if p.dim() >= 2:
            std = (
                0.02 / math.sqrt(2 * num_layers)
                if name.endswith((".attn.out.weight", ".cross.out.weight", ".mlp.proj.weight"))
                else 0.02
            )
            nn.init.normal_(p, mean=0.0, std=std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
