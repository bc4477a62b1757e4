"""Synchformer (Iashin et al., 2024): predicts the audio-visual offset of a 4.8 s clip, for DeSync.

Our own implementation of the model av-benchmark uses (`v-iashin/Synchformer`, the AudioSet model
``24-01-04T16-39-21`` as repackaged in MMAudio's ``synchformer_state_dict.pth``). Parameter names and
shapes are the publisher's, so ``load_state_dict`` of that file works as it is
(tests/eval/test_desync.py checks the outputs against the publisher's code on a small random model and
the key layout against the full one). Three parts:

* **Video** (``vfeat_extractor``, MotionFormer with divided space-time attention): a segment of 16 RGB
  frames ``[16, 3, 224, 224]`` in [-1, 1] -> tubelets of 2 x 16 x 16 (8 x 14 x 14 tokens of width 768)
  plus a CLS token; spatial position embeddings tiled over time plus temporal ones; 12 blocks of
  (attention over time, then over space, then MLP), pre-norm, the CLS token attending to every token;
  final LayerNorm; then per time step a CLS-token transformer layer pools the 196 spatial tokens:
  ``[8, 768]`` per segment.
* **Audio** (``afeat_extractor``, AST): a segment's log-mel ``[128, 66]`` -> 16 x 16 patches at stride 10
  (12 frequency x 6 time tokens) plus CLS and distillation tokens; 12 pre-norm ViT layers; final
  LayerNorm; then per time step a CLS-token layer pools the 12 frequency tokens: ``[6, 768]`` per segment.
* **Sync head** (``transformer``): both streams projected (``vproj``, ``aproj``), layer-normed and laid
  out as ``[OFF, 14 x 8 video tokens, MOD, 14 x 6 audio tokens]`` (198 tokens, learnt position
  embedding), 3 GPT-style blocks, final LayerNorm, and a linear head on the OFF token: logits over 21
  offsets, -2 to +2 s in 0.2 s steps (:func:`offset_grid`).

The checkpoint also holds ``vfeat_extractor.patch_embed`` (a 2-D patch embedding the publisher keeps but
never uses); we keep it too so that the file loads strictly.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from foleygen.errors import CheckpointError, ConfigError
from foleygen.eval.embedders.passt import VitMlp
from foleygen.utils import user_path

__all__ = [
    "SynchformerConfig",
    "Synchformer",
    "offset_grid",
    "load_synchformer",
    "resolve_synchformer",
    "SYNCHFORMER_ENV",
    "SYNCHFORMER_FILE",
    "SYNCHFORMER_SOURCE",
]

SYNCHFORMER_ENV = "FOLEYGEN_SYNCHFORMER"
SYNCHFORMER_FILE = "synchformer_state_dict.pth"
SYNCHFORMER_SOURCE = "https://github.com/hkchengrex/MMAudio/releases/download/v0.1/synchformer_state_dict.pth"


@dataclass(frozen=True)
class SynchformerConfig:
    """Sizes of the model; the defaults are the published ones (smaller ones for tests).

    Attributes:
        dim: token width of all three parts (the published model uses one width everywhere).
        video_depth, video_heads, video_mlp_ratio: MotionFormer blocks, heads, MLP width / dim.
        frames, tubelet, image_size, patch_size: video segment length (frames), tubelet depth, frame
            size and patch size (``frames // tubelet`` temporal positions).
        audio_depth, audio_heads, audio_ff: AST layers, heads, MLP width.
        n_mels, spec_frames, audio_patch, audio_stride: log-mel bins and frames of a segment, AST patch
            size and stride (both axes).
        sync_depth, sync_heads: blocks and heads of the sync transformer.
        segments: segments per window (the sync head's position embedding is fixed to this length).
        num_offsets: classes of the offset head (21: -2..+2 s).
    """

    dim: int = 768
    video_depth: int = 12
    video_heads: int = 12
    video_mlp_ratio: int = 4
    frames: int = 16
    tubelet: int = 2
    image_size: int = 224
    patch_size: int = 16
    audio_depth: int = 12
    audio_heads: int = 12
    audio_ff: int = 3072
    n_mels: int = 128
    spec_frames: int = 66
    audio_patch: int = 16
    audio_stride: int = 10
    sync_depth: int = 3
    sync_heads: int = 8
    segments: int = 14
    num_offsets: int = 21

    @property
    def video_tokens(self) -> int:
        """Temporal positions per video segment (8)."""
        return self.frames // self.tubelet

    @property
    def audio_grid(self) -> tuple[int, int]:
        """AST patches per segment along (frequency, time): (12, 6)."""
        f = (self.n_mels - self.audio_patch) // self.audio_stride + 1
        t = (self.spec_frames - self.audio_patch) // self.audio_stride + 1
        return f, t


def offset_grid(num_offsets: int = 21, max_offset: float = 2.0) -> torch.Tensor:
    """The offset (s) of each class ``float32 [num_offsets]``: evenly from ``-max_offset`` to ``+max_offset``.

    Built as the publisher builds it (float64 ``linspace`` cast to float32), so ``|offset|`` values
    average to the same DeSync numbers.
    """
    return torch.from_numpy(np.linspace(-max_offset, max_offset, num_offsets)).float()


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[B, N, H * d]`` -> ``[B, H, N, d]``."""
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, N, d]`` -> ``[B, N, H * d]``."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


# ----------------------------------------------------------------------------------------------- video


class _PatchEmbed(nn.Module):
    """Holds a conv as ``proj`` (the checkpoint's ``patch_embed`` / ``patch_embed_3d`` entries)."""

    def __init__(self, proj: nn.Module) -> None:
        super().__init__()
        self.proj = proj


class _DividedAttention(nn.Module):
    """Attention within groups of patch tokens (one frame, or one patch position over time).

    Input ``[B, 1 + T * P, D]`` (CLS first, then frame-major patches). The CLS query attends to every
    token; a patch query attends to the CLS token and to the patches of its group.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, frames: int, over_time: bool) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))  # [B, H, N, d]
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # [B, H, 1, d]
        h, d, patches = q.shape[1], q.shape[-1], (n - 1) // frames

        def grouped(t: torch.Tensor) -> torch.Tensor:
            t = t[:, :, 1:].reshape(b, h, frames, patches, d)
            return t.transpose(2, 3) if over_time else t  # [B, H, groups, group length, d]

        qg, kg, vg = grouped(q), grouped(k), grouped(v)
        groups = qg.shape[2]
        cls_k = k[:, :, :1, None].expand(b, h, groups, 1, d)
        cls_v = v[:, :, :1, None].expand(b, h, groups, 1, d)
        out = F.scaled_dot_product_attention(qg, torch.cat([cls_k, kg], 3), torch.cat([cls_v, vg], 3))
        if over_time:
            out = out.transpose(2, 3)
        out = torch.cat([cls_out, out.reshape(b, h, frames * patches, d)], dim=2)
        return self.proj(_merge(out))


class _DividedBlock(nn.Module):
    """Time attention (``norm3``, ``timeattn``), space attention (``norm1``, ``attn``), MLP (``norm2``)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _DividedAttention(dim, heads)
        self.timeattn = _DividedAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = VitMlp(dim, dim * mlp_ratio)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), frames, over_time=True)
        x = x + self.attn(self.norm1(x), frames, over_time=False)
        return x + self.mlp(self.norm2(x))


class _ClsPool(nn.Module):
    """A pre-norm transformer layer over ``[CLS, tokens]`` returning the CLS output (GELU, eps 1e-6).

    Names as ``torch.nn.TransformerEncoderLayer`` (``self_attn``, ``linear1/2``, ``norm1/2``) plus
    ``cls_token``: the publisher's aggregation layers subclass it.
    """

    def __init__(self, dim: int, heads: int, ff: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.linear1 = nn.Linear(dim, ff)
        self.linear2 = nn.Linear(ff, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, L, D]`` -> ``[N, D]``."""
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        x = x + self.linear2(F.gelu(self.linear1(self.norm2(x))))
        return x[:, 0]


class MotionFormer(nn.Module):
    """Video segments ``[N, T, 3, H, W]`` -> per-time-step features ``[N, T // tubelet, D]``."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        d, p = cfg.dim, cfg.patch_size
        self.grid = cfg.image_size // p
        patches = self.grid * self.grid
        self.patch_embed = _PatchEmbed(nn.Conv2d(3, d, p, p))  # in the checkpoint, never used
        self.patch_embed_3d = _PatchEmbed(nn.Conv3d(3, d, (cfg.tubelet, p, p), (cfg.tubelet, p, p)))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, patches + 1, d))
        self.temp_embed = nn.Parameter(torch.zeros(1, cfg.video_tokens, d))
        self.blocks = nn.ModuleList(
            _DividedBlock(d, cfg.video_heads, cfg.video_mlp_ratio) for _ in range(cfg.video_depth)
        )
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.spatial_attn_agg = _ClsPool(d, cfg.video_heads, d * cfg.video_mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        tokens = self.patch_embed_3d.proj(x.transpose(1, 2))  # [N, D, t, h, w]
        _, d, t, h, w = tokens.shape
        if (t, h, w) != (self.temp_embed.shape[1], self.grid, self.grid):
            raise ValueError(
                f"MotionFormer: a segment gives {t}x{h}x{w} tubelets, the model expects "
                f"{self.temp_embed.shape[1]}x{self.grid}x{self.grid}"
            )
        tokens = tokens.flatten(2).transpose(1, 2)  # [N, t*h*w, D], frame-major
        pos = self.pos_embed[:, 1:].repeat(1, t, 1) + self.temp_embed.repeat_interleave(h * w, dim=1)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(n, -1, -1)
        x = torch.cat([cls, tokens + pos], dim=1)
        for block in self.blocks:
            x = block(x, t)
        x = self.norm(x[:, 1:]).reshape(n * t, h * w, d)
        return self.spatial_attn_agg(x).reshape(n, t, d)


# ----------------------------------------------------------------------------------------------- audio


class _Dense(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dim_in, dim_out)


class _ASTSelfAttention(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)


class _ASTAttention(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attention = _ASTSelfAttention(dim)
        self.output = _Dense(dim, dim)


class _ASTLayer(nn.Module):
    """Pre-norm ViT layer with the Hugging Face AST names (LayerNorm eps 1e-12, exact GELU)."""

    def __init__(self, dim: int, heads: int, ff: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention = _ASTAttention(dim)
        self.intermediate = _Dense(dim, ff)
        self.output = _Dense(ff, dim)
        self.layernorm_before = nn.LayerNorm(dim, eps=1e-12)
        self.layernorm_after = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layernorm_before(x)
        att = self.attention.attention
        q, k, v = (_heads(proj(h), self.heads) for proj in (att.query, att.key, att.value))
        x = x + self.attention.output.dense(_merge(F.scaled_dot_product_attention(q, k, v)))
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class _ASTEmbeddings(nn.Module):
    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        f, t = cfg.audio_grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.position_embeddings = nn.Parameter(torch.zeros(1, f * t + 2, cfg.dim))
        self.patch_embeddings = nn.Module()
        self.patch_embeddings.projection = nn.Conv2d(1, cfg.dim, cfg.audio_patch, cfg.audio_stride)


class _ASTEncoder(nn.Module):
    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_ASTLayer(cfg.dim, cfg.audio_heads, cfg.audio_ff) for _ in range(cfg.audio_depth))


class _AST(nn.Module):
    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        self.embeddings = _ASTEmbeddings(cfg)
        self.encoder = _ASTEncoder(cfg)
        self.layernorm = nn.LayerNorm(cfg.dim, eps=1e-12)


class ASTFeatures(nn.Module):
    """Log-mel segments ``[N, n_mels, spec_frames]`` -> per-time-step features ``[N, t, D]`` (t = 6)."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.ast = _AST(cfg)
        self.freq_attn_agg = _ClsPool(cfg.dim, cfg.audio_heads, cfg.audio_ff)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        n = mel.shape[0]
        if tuple(mel.shape[1:]) != (self.cfg.n_mels, self.cfg.spec_frames):
            raise ValueError(
                f"AST: a segment's log-mel is {tuple(mel.shape[1:])}, the model expects "
                f"({self.cfg.n_mels}, {self.cfg.spec_frames})"
            )
        emb = self.ast.embeddings
        patches = emb.patch_embeddings.projection(mel.unsqueeze(1))  # [N, D, f, t]
        _, d, f, t = patches.shape
        special = torch.cat([emb.cls_token, emb.distillation_token], dim=1).expand(n, -1, -1)
        x = torch.cat([special, patches.flatten(2).transpose(1, 2)], dim=1) + emb.position_embeddings
        for layer in self.ast.encoder.layer:
            x = layer(x)
        x = self.ast.layernorm(x)[:, 2:]  # frequency-major tokens, CLS and distillation dropped
        x = x.reshape(n, f, t, d).transpose(1, 2).reshape(n * t, f, d)
        return self.freq_attn_agg(x).reshape(n, t, d)


# ------------------------------------------------------------------------------------------ sync head


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.key = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (_heads(p(x), self.heads) for p in (self.query, self.key, self.value))
        return self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.attn = _SelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class SyncTransformer(nn.Module):
    """``[OFF, video tokens, MOD, audio tokens]`` -> offset logits ``[B, num_offsets]``."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        d = cfg.dim
        length = 2 + cfg.segments * (cfg.video_tokens + cfg.audio_grid[1])
        self.vis_in_lnorm = nn.LayerNorm(d)
        self.aud_in_lnorm = nn.LayerNorm(d)
        self.OFF_tok = nn.Parameter(torch.zeros(1, 1, d))
        self.MOD_tok = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_emb_cfg = nn.Module()  # the publisher's name for its position-embedding holder
        self.pos_emb_cfg.pos_emb = nn.Parameter(torch.zeros(1, length, d))
        self.blocks = nn.Sequential(*(_Block(d, cfg.sync_heads) for _ in range(cfg.sync_depth)))
        self.ln_f = nn.LayerNorm(d)
        self.off_head = nn.Linear(d, cfg.num_offsets)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        b = v.shape[0]
        x = torch.cat(
            [
                self.OFF_tok.expand(b, -1, -1),
                self.vis_in_lnorm(v),
                self.MOD_tok.expand(b, -1, -1),
                self.aud_in_lnorm(a),
            ],
            dim=1,
        )
        if x.shape[1] != self.pos_emb_cfg.pos_emb.shape[1]:
            raise ValueError(
                f"sync transformer: {x.shape[1]} tokens, its position embedding has "
                f"{self.pos_emb_cfg.pos_emb.shape[1]} (a window must have the configured number of segments)"
            )
        x = self.blocks(x + self.pos_emb_cfg.pos_emb)
        return self.off_head(self.ln_f(x)[:, 0])


class Synchformer(nn.Module):
    """The three parts; :meth:`offset_logits` is what DeSync uses."""

    def __init__(self, config: SynchformerConfig | None = None) -> None:
        super().__init__()
        self.config = config or SynchformerConfig()
        cfg = self.config
        self.vfeat_extractor = MotionFormer(cfg)
        self.afeat_extractor = ASTFeatures(cfg)
        self.vproj = nn.Linear(cfg.dim, cfg.dim)
        self.aproj = nn.Linear(cfg.dim, cfg.dim)
        self.transformer = SyncTransformer(cfg)

    def video_features(self, video: torch.Tensor) -> torch.Tensor:
        """``video [B, S, frames, 3, H, W]`` (RGB in [-1, 1]) -> ``[B, S, frames // tubelet, D]``."""
        b, s = video.shape[:2]
        return self.vfeat_extractor(video.reshape(b * s, *video.shape[2:])).reshape(b, s, -1, self.config.dim)

    def audio_features(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel [B, S, n_mels, spec_frames]`` (normalised log-mel) -> ``[B, S, t, D]`` (t = 6)."""
        b, s = mel.shape[:2]
        return self.afeat_extractor(mel.reshape(b * s, *mel.shape[2:])).reshape(b, s, -1, self.config.dim)

    def offset_logits(self, vfeats: torch.Tensor, afeats: torch.Tensor) -> torch.Tensor:
        """``vfeats [B, S, tv, D]``, ``afeats [B, S, ta, D]`` (S = ``config.segments``) -> ``[B, num_offsets]``."""
        b = vfeats.shape[0]
        v = self.vproj(vfeats).reshape(b, -1, self.config.dim)
        a = self.aproj(afeats).reshape(b, -1, self.config.dim)
        return self.transformer(v, a)

    @property
    def device(self) -> torch.device:
        return self.vproj.weight.device

    @classmethod
    def from_state_dict(
        cls, state: dict[str, torch.Tensor], config: SynchformerConfig | None = None, where: Any = "state dict"
    ) -> Synchformer:
        """A model with ``state`` loaded strictly; one-line :class:`CheckpointError` on a layout mismatch."""
        with torch.device("meta"):
            model = cls(config)
        expected = model.state_dict()
        for key, ref in expected.items():  # sizes first: a smaller model's file also lacks whole blocks
            if key in state and tuple(state[key].shape) != tuple(ref.shape):
                raise CheckpointError(
                    f"Synchformer key {key!r} has shape {tuple(state[key].shape)}, the config expects "
                    f"{tuple(ref.shape)} (a smaller model needs its config.json)",
                    where,
                )
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            raise CheckpointError(
                f"not a Synchformer checkpoint of this layout: {len(missing)} missing key(s) "
                f"{missing[:2]}, {len(unexpected)} unexpected {unexpected[:2]}",
                where,
            )
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
        return model.requires_grad_(False).eval()


def resolve_synchformer(path: str | os.PathLike[str] | None = None) -> Path:
    """The Synchformer weights from ``path`` or ``$FOLEYGEN_SYNCHFORMER`` (ModelUnavailable when absent)."""
    from foleygen.eval.embedders import ModelUnavailable

    chosen = path or os.environ.get(SYNCHFORMER_ENV)
    if not chosen:
        raise ModelUnavailable(
            f"synchformer weights not configured: pass --synchformer PATH or set {SYNCHFORMER_ENV} to "
            f"{SYNCHFORMER_FILE} (download: {SYNCHFORMER_SOURCE})"
        )
    chosen = user_path(chosen)
    if not chosen.exists():
        raise ModelUnavailable(
            f"synchformer weights not found (expected {SYNCHFORMER_FILE}; download: {SYNCHFORMER_SOURCE})", chosen
        )
    return chosen


def _config_from(directory: Path) -> SynchformerConfig | None:
    file = directory / "config.json"
    if not file.is_file():
        return None
    from foleygen.config import load_json

    data = {k: v for k, v in load_json(file).items() if not k.startswith("_")}
    known = {f.name for f in dataclasses.fields(SynchformerConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{file}: unknown SynchformerConfig key(s) {unknown}")
    bad = [k for k, v in data.items() if not (isinstance(v, int) and not isinstance(v, bool) and v > 0)]
    if bad:
        raise ConfigError(f"{file}: SynchformerConfig values must be positive integers, not {bad}")
    return SynchformerConfig(**data)


def load_synchformer(path: str | os.PathLike[str] | None = None) -> Synchformer:
    """The publisher's Synchformer from ``path`` (or ``$FOLEYGEN_SYNCHFORMER``).

    ``path``: ``synchformer_state_dict.pth`` (read with ``torch.load(weights_only=True)``: a file that
    needs unpickling of Python objects is refused), a ``.safetensors`` file with the same keys, or a
    directory holding one of them (``synchformer_state_dict.pth`` or ``model.safetensors``) and,
    for a smaller variant, a ``config.json`` of :class:`SynchformerConfig` fields.
    """
    from foleygen.checkpoint import safe_torch_load

    file = resolve_synchformer(path)
    config = None
    if file.is_dir():
        config = _config_from(file)
        for name in (SYNCHFORMER_FILE, "model.safetensors"):
            if (file / name).is_file():
                file = file / name
                break
        else:
            raise CheckpointError(f"no {SYNCHFORMER_FILE} or model.safetensors in directory", file)
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(file))
        except Exception as err:  # safetensors raises several types for corrupt files
            raise CheckpointError(f"cannot read safetensors ({' '.join(str(err).split())[:200]})", file) from None
    else:
        state = safe_torch_load(file)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("not a plain state dict of tensors", file)
    model = Synchformer.from_state_dict(state, config, file)
    if not all(math.isfinite(float(p.abs().max())) for p in model.parameters()):
        raise CheckpointError("Synchformer weights hold inf or NaN", file)
    return model
