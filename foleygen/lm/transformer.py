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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def decoding_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """dtype of the activations, keys and values of a decoding step (KV caches, visual memory) for a model
    whose weights are in ``dtype``.

    float32 for a bf16/fp16 model on the CPU, where only the weights are worth keeping in 16 bits: a
    decoding step streams every weight once, so halving their bytes is what makes it faster, while its
    activations are a few rows. In float32 the many small ops of a step run faster than in bf16,
    PyTorch's fused attention kernel is 3-10x faster (measured on the dev machine, torch 2.13, one
    thread, one query over 200-1500 keys), and the linears can read bf16 weights with float32 rows
    (:mod:`foleygen.lm.cpu_decoding`, which installs the layers that accept them). Elsewhere: ``dtype``.
    """
    if device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        return torch.float32
    return dtype


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` of ``q [B, H, L, hd]`` over ``k, v [B, H, S, hd]`` -> ``[B, H, L, hd]``.

    ``mask [L, S]`` is True where a query may attend. Queries and keys of different dtypes are attended in
    float32 when either is float32; the result is in ``q``'s dtype. (CPU decoding may swap in a kernel
    for one-query steps: :mod:`foleygen.lm.cpu_decoding`.)
    """
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

    attend = staticmethod(attention)  # CPU decoding may put a one-query kernel here (cpu_decoding)

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)
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
        y = self.attend(
            q, k, v, mask, is_causal=is_causal and mask is None, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, L, hd]
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class CrossAttention(nn.Module):
    """Attention from audio steps to the visual memory; the memory's keys/values are computed once."""

    attend = staticmethod(attention)

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q = nn.Linear(dim, dim, bias=bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)
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
        y = self.attend(q, k, v, mask, dropout_p=self.dropout if self.training else 0.0)  # [B, H, L, hd]
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, hidden, bias=bias)
        self.proj = nn.Linear(hidden, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-norm block: self-attention, (cross-attention to the visual memory), MLP, each residual."""

    def __init__(
        self, dim: int, num_heads: int, mlp_hidden: int, *, cross: bool, dropout: float = 0.0, bias: bool = False
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, dropout, bias)
        self.norm_cross = nn.LayerNorm(dim) if cross else None
        self.cross = CrossAttention(dim, num_heads, dropout, bias) if cross else None
        self.norm2 = nn.LayerNorm(dim)
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
        self.norm = nn.LayerNorm(dim)

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
