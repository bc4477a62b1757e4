"""PaSST (Koutini et al. 2022) in pure torch, loading hear21passt's ``passt-s-f128-p16-s10-ap.476`` weights.

State-dict layout (the ``net`` of hear21passt's ``PasstBasicWrapper``; a ``net.`` prefix is accepted):
``cls_token``/``dist_token [1, 1, 768]``, ``new_pos_embed [1, 2, 768]`` (the two tokens' positions),
``freq_new_pos_embed [1, 768, 12, 1]``, ``time_new_pos_embed [1, 768, 1, 99]``,
``patch_embed.proj`` (Conv2d 1->768, 16x16 kernel, stride 10), ``blocks.{0..11}`` (pre-norm ViT blocks:
``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``; LayerNorm eps 1e-6, GELU),
``norm``, ``head.0`` (LayerNorm) + ``head.1`` (Linear 768->527) and ``head_dist`` (Linear 768->527).

Eval mode (no patchout): 128 x T log-mel -> 12 x T' patches; the time positions are the first T' of the
99 (longer input is cut to 10 s, as the published code does); the embedding is the mean of the cls and
dist tokens (what av-benchmark stores as ``passt_features_embed``) and the logits are ``head``
(LayerNorm + Linear) of that mean, as the published ``forward``; ``head_dist`` is loaded but unused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from foleygen.checkpoint import safe_torch_load
from foleygen.errors import CheckpointError
from foleygen.eval.embedders.base import (
    ClipClassifierEmbedder,
    check_keys,
    file_fingerprint,
    strip_prefix,
)
from foleygen.eval.embedders.frontends import kaldi_mel_banks, passt_logmel

__all__ = ["PasstConfig", "Passt", "PasstEmbedder", "load_passt"]


@dataclass(frozen=True)
class PasstConfig:
    """Architecture and frontend of PaSST-S (published values by default)."""

    sample_rate: int = 32000
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 15000.0  # hear21passt: sr/2 - fmax_aug_range/2 with fmax_aug_range 2000, unaugmented at eval
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_hidden: int = 3072
    patch: int = 16
    stride: int = 10
    max_time_patches: int = 99
    num_classes: int = 527

    @property
    def freq_patches(self) -> int:
        return (self.n_mels - self.patch) // self.stride + 1


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class VitMlp(nn.Module):
    """The ViT feed-forward block (``fc1`` -> GELU -> ``fc2``), with timm's parameter names: PaSST's and
    Synchformer's."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = VitMlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, patch, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Passt(nn.Module):
    """PaSST: log-mel ``[B, 1, n_mels, T]`` -> (embedding ``[B, dim]``, logits ``[B, num_classes]``)."""

    def __init__(self, config: PasstConfig = PasstConfig()) -> None:
        super().__init__()
        c = self.config = config
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, c.dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, c.dim, c.freq_patches, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, c.dim, 1, c.max_time_patches))
        self.patch_embed = _PatchEmbed(c.dim, c.patch, c.stride)
        self.blocks = nn.Sequential(*[_Block(c.dim, c.heads, c.mlp_hidden) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, c.num_classes))
        self.head_dist = nn.Linear(c.dim, c.num_classes)
        banks = kaldi_mel_banks(c.n_mels, 1024, c.sample_rate, c.fmin, c.fmax)
        self.register_buffer("mel_banks", torch.from_numpy(banks).float(), persistent=False)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 1, n_mels, T]`` -> ``([B, dim], [B, num_classes])``."""
        x = self.patch_embed(mel)  # [B, D, F', T']
        # Longer inputs are cut to the positions the model knows (10 s), as the published code does.
        x = x[..., : self.config.max_time_patches]
        t = x.shape[-1]
        x = x + self.time_new_pos_embed[..., :t] + self.freq_new_pos_embed
        x = x.flatten(2).transpose(1, 2)  # [B, F'*T', D], frequency-major like the original
        b = x.shape[0]
        tokens = torch.cat(
            [
                self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1],
                self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:],
            ],
            dim=1,
        )
        x = self.norm(self.blocks(torch.cat([tokens, x], dim=1)))
        embedding = (x[:, 0] + x[:, 1]) / 2
        # As the published forward: the head sees the token mean; head_dist (trained for the distillation
        # loss) is loaded for key compatibility but not used at inference.
        return embedding, self.head(embedding)

    def embed_wav(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``wav [B, S]`` at 32 kHz -> ``([B, dim], [B, num_classes])``."""
        return self(passt_logmel(wav.float(), self.mel_banks).unsqueeze(1))


class PasstEmbedder(ClipClassifierEmbedder):
    """PaSST-S at 32 kHz: one 768-d embedding and 527 AudioSet logits per clip (first 10 s)."""

    name = "passt"

    def __init__(self, model: Passt, fingerprint: str = "") -> None:
        super().__init__(model, model.config.dim, fingerprint)


def load_passt(path: str | os.PathLike[str]) -> PasstEmbedder:
    """Load a hear21passt PaSST state dict (sizes read from the weights; heads = dim / 64)."""
    path = Path(path)
    state = safe_torch_load(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError("not a PaSST state dict", path)
    state = strip_prefix(state, ("module.", "net."))
    try:
        proj = state["patch_embed.proj.weight"]
        freq_pos, time_pos = state["freq_new_pos_embed"], state["time_new_pos_embed"]
        head = state["head.1.weight"]
        fc1 = state["blocks.0.mlp.fc1.weight"]
    except KeyError as err:
        raise CheckpointError(f"not a PaSST checkpoint: missing {err.args[0]!r}", path) from None
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    dim, patch = int(proj.shape[0]), int(proj.shape[-1])
    base = PasstConfig()
    stride = base.stride
    freq_patches = int(freq_pos.shape[2])
    # Several mel counts give the same patch count (126..135 -> 12); prefer the published 128.
    n_mels = base.n_mels if (base.n_mels - patch) // stride + 1 == freq_patches else (freq_patches - 1) * stride + patch
    config = PasstConfig(
        n_mels=n_mels,
        dim=dim,
        depth=depth,
        heads=max(1, dim // 64),
        mlp_hidden=int(fc1.shape[0]),
        patch=patch,
        stride=stride,
        max_time_patches=int(time_pos.shape[-1]),
        num_classes=int(head.shape[0]),
    )
    model = Passt(config)
    model.load_state_dict(check_keys(model, state, path, "PaSST"))
    return PasstEmbedder(model, fingerprint=file_fingerprint(path))
