"""ImageBind-Huge's vision and audio branches in pure torch, loading the official ``imagebind_huge.pth``.

ImageBind (Girdhar et al., 2023) maps every modality into one 1024-d space. We implement the two
branches foleygen needs — vision (frames) and audio (the ImageBind score between a video and its
generated audio) — with the official module names, so the official state dict loads key for key:

``modality_preprocessors.{vision,audio}``
    ``rgbt_stem.proj`` — vision: ``[pad image to a 2-frame clip, Conv3d(3, 1280, k=(2,14,14), s=k,
    no bias)]`` (keys ``proj.1.weight``); audio: ``Conv2d(1, 768, k=16, s=10, no bias)`` then
    ``rgbt_stem.norm_layer`` (LayerNorm). ``cls_token [1, 1, D]`` and learnable
    ``pos_embedding_helper.pos_embed [1, 1 + P, D]`` (P = 256 for 224 px, 228 = 12 x 19 for a
    128 x 204 spectrogram).
``modality_trunks.{vision,audio}``
    ``pre_transformer_layer.0`` (LayerNorm eps 1e-6, vision only), then ``blocks.i`` pre-norm
    Transformer blocks: ``norm_1 -> attn (nn.MultiheadAttention, bias, audio adds bias_k/bias_v) ->
    drop path -> + ; norm_2 -> mlp.fc1 -> GELU -> mlp.fc2 -> drop path -> +`` (LayerNorms eps 1e-6).
    Vision: 32 blocks, 1280-d, 16 heads; audio: 12 blocks, 768-d, 12 heads, drop path rising
    linearly 0 -> 0.1 (inactive in eval).
``modality_heads.{vision,audio}``
    ``0``: LayerNorm (eps 1e-6), ``1``: take the CLS token, ``2``: ``Linear(D, 1024, bias=False)``.
``modality_postprocessors``
    vision: L2 normalise; audio: L2 normalise then ``1.log_logit_scale`` (a buffer, exp -> 20,
    clipped at 100).

Other modalities in the file (text, depth, thermal, IMU) are skipped on load; anything else that is
missing or unexpected is an error.

Inputs, exactly as the official ``imagebind.data``:

* vision: shortest edge -> 224 (bicubic, PIL), center crop 224 (torchvision rounding), x/255,
  OpenAI CLIP mean/std. A single image is repeated to a 2-frame clip.
* audio: resample to 16 kHz; 3 clips of 2 s whose starts are spread evenly over
  ``[0, duration - 2]`` (pytorchvideo's ``ConstantClipsPerVideoSampler``); per clip: subtract the
  clip's mean, Kaldi fbank (128 mel bins, 25 ms Hann window, 10 ms shift, dither 0), padded with
  zeros / cut to 204 frames, normalised ``(x + 4.268) / 9.138``. The embedding of a sound is the mean
  over its clips of the post-processed (unit norm x 20) clip embeddings.

Note: the official code passes ``window_type="hanning"`` to Kaldi's fbank (not Hamming); we follow
the code.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from foleygen.dsp import sinc_resample
from foleygen.errors import CheckpointError, ConfigError, check_counts
from foleygen.vision.base import FrozenVisualEncoder
from foleygen.vision.fbank import kaldi_fbank
from foleygen.vision.preprocessing import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ImageTransform

OFFICIAL_CHECKPOINT_NAME = "imagebind_huge.pth"
OTHER_MODALITIES = ("text", "depth", "thermal", "imu")
DEFAULT_FPS = 25.0


@dataclass
class ImageBindConfig:
    """Dimensions of the vision and audio branches; defaults are ImageBind-Huge's.

    The audio input settings (``audio_*`` rates, clips, normalisation) are the official
    ``load_and_transform_audio_data`` defaults.
    """

    out_embed_dim: int = 1024
    image_size: int = 224
    video_frames: int = 2
    vision_kernel: tuple[int, int, int] = (2, 14, 14)
    vision_embed_dim: int = 1280
    vision_num_blocks: int = 32
    vision_num_heads: int = 16
    audio_embed_dim: int = 768
    audio_num_blocks: int = 12
    audio_num_heads: int = 12
    audio_kernel: int = 16
    audio_stride: int = 10
    audio_num_mel_bins: int = 128
    audio_target_len: int = 204
    audio_drop_path: float = 0.1
    audio_logit_scale: float = 20.0
    audio_sample_rate: int = 16000
    audio_clip_duration: float = 2.0
    audio_clips_per_video: int = 3
    audio_mean: float = -4.268
    audio_std: float = 9.138
    mlp_ratio: int = 4
    modalities: tuple[str, ...] = field(default=("vision", "audio"))

    def __post_init__(self) -> None:
        self.vision_kernel = tuple(int(k) for k in self.vision_kernel)
        self.modalities = tuple(self.modalities)
        check_counts(
            "ImageBindConfig", vision_num_blocks=self.vision_num_blocks, audio_num_blocks=self.audio_num_blocks
        )
        for m in self.modalities:
            if m not in ("vision", "audio"):
                raise ConfigError(f"ImageBindConfig.modalities: unknown modality {m!r} (vision, audio)")
        if self.vision_embed_dim % self.vision_num_heads or self.audio_embed_dim % self.audio_num_heads:
            raise ConfigError("ImageBindConfig: embed dims must be divisible by their head counts")
        if self.image_size % self.vision_kernel[1] or self.vision_kernel[1] != self.vision_kernel[2]:
            raise ConfigError(
                f"ImageBindConfig: image_size {self.image_size} must be a multiple of the square "
                f"patch {self.vision_kernel[1:]}"
            )

    @property
    def vision_num_patches(self) -> int:
        t = self.video_frames // self.vision_kernel[0]
        return t * (self.image_size // self.vision_kernel[1]) ** 2

    @property
    def audio_patch_grid(self) -> tuple[int, int]:
        """(mel, time) patches of the audio stem's output."""
        k, s = self.audio_kernel, self.audio_stride
        return (self.audio_num_mel_bins - k) // s + 1, (self.audio_target_len - k) // s + 1


# ----------------------------------------------------------------------------------------------------
# Building blocks (named like the official modules so that state-dict keys match)


class _PadToClip(nn.Module):
    """``[N, C, H, W]`` or ``[N, C, 1, H, W]`` -> ``[N, C, T, H, W]`` by repeating the image (no weights)."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.unsqueeze(2)
        if x.shape[2] == 1:
            x = x.expand(-1, -1, self.frames, -1, -1)
        return x


class _PatchStem(nn.Module):
    """``proj`` (conv) -> tokens ``[N, P, D]`` -> optional ``norm_layer``."""

    def __init__(self, proj: nn.Module, norm_layer: nn.Module | None = None) -> None:
        super().__init__()
        self.proj = proj
        self.norm_layer = norm_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        return self.norm_layer(x) if self.norm_layer is not None else x


class _PosEmbedding(nn.Module):
    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, num_tokens, dim) * dim**-0.5)


class _Preprocessor(nn.Module):
    """Stem -> prepend CLS -> add learned positions: ``input -> [N, 1 + P, D]``."""

    def __init__(self, stem: _PatchStem, num_patches: int, dim: int) -> None:
        super().__init__()
        self.rgbt_stem = stem
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.pos_embedding_helper = _PosEmbedding(1 + num_patches, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(x)
        pos = self.pos_embedding_helper.pos_embed
        if tokens.shape[1] + 1 != pos.shape[1]:
            raise ConfigError(
                f"ImageBind: input gives {tokens.shape[1]} patches, positions exist for "
                f"{pos.shape[1] - 1} (wrong image size or spectrogram length)"
            )
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens + pos


class _DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample with probability ``p`` (training only)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    """Pre-norm Transformer block ``[N, L, D] -> [N, L, D]``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, add_bias_kv: bool, drop_path: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, bias=True, add_bias_kv=add_bias_kv, batch_first=True)
        self.drop_path = _DropPath(drop_path)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(mlp_ratio * dim))
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm_1(x)
        x = x + self.drop_path(self.attn(h, h, h, need_weights=False)[0])
        return x + self.drop_path(self.mlp(self.norm_2(x)))


class _Trunk(nn.Module):
    def __init__(
        self, dim: int, blocks: int, heads: int, mlp_ratio: int, pre_ln: bool, add_bias_kv: bool, drop_path: float
    ) -> None:
        super().__init__()
        # Index 0 holds the optional LayerNorm (key "pre_transformer_layer.0.*"); the official index 1 is a
        # weightless layout change (sequence-first), which batch-first attention does not need.
        self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(dim, eps=1e-6) if pre_ln else nn.Identity())
        # Drop-path rate rising linearly from 0 (first block) to drop_path (last), in plain Python so that
        # the module can be built on the meta device.
        rates = [drop_path * i / (blocks - 1) for i in range(blocks)] if blocks > 1 else [0.0] * blocks
        self.blocks = nn.Sequential(*[_Block(dim, heads, mlp_ratio, add_bias_kv, r) for r in rates])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.pre_transformer_layer(tokens))


class _SelectCLS(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class _Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1, p=2)


class _LogitScale(nn.Module):
    """Multiply by ``min(exp(log_logit_scale), max)``; a fixed buffer for audio."""

    def __init__(self, init: float, max_scale: float = 100.0) -> None:
        super().__init__()
        self.max_scale = max_scale
        self.register_buffer("log_logit_scale", torch.tensor(math.log(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.log_logit_scale.exp(), max=self.max_scale) * x


def _head(dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim, eps=1e-6), _SelectCLS(), nn.Linear(dim, out, bias=False))


# ----------------------------------------------------------------------------------------------------


class ImageBindModel(nn.Module):
    """ImageBind vision + audio branches; embeddings live in one ``out_embed_dim`` (1024) space.

    Use :meth:`from_checkpoint` to load ``imagebind_huge.pth``; :meth:`embed_vision` and
    :meth:`embed_audio` return L2-normalised embeddings (cosine similarity = dot product).
    """

    def __init__(self, config: ImageBindConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ImageBindConfig()
        pre, trunks, heads, post = {}, {}, {}, {}
        if "vision" in cfg.modalities:
            conv = nn.Conv3d(
                3, cfg.vision_embed_dim, kernel_size=cfg.vision_kernel, stride=cfg.vision_kernel, bias=False
            )
            stem = _PatchStem(nn.Sequential(_PadToClip(cfg.video_frames), conv))
            pre["vision"] = _Preprocessor(stem, cfg.vision_num_patches, cfg.vision_embed_dim)
            trunks["vision"] = _Trunk(
                cfg.vision_embed_dim,
                cfg.vision_num_blocks,
                cfg.vision_num_heads,
                cfg.mlp_ratio,
                pre_ln=True,
                add_bias_kv=False,
                drop_path=0.0,
            )
            heads["vision"] = _head(cfg.vision_embed_dim, cfg.out_embed_dim)
            post["vision"] = _Normalize()
        if "audio" in cfg.modalities:
            conv = nn.Conv2d(1, cfg.audio_embed_dim, kernel_size=cfg.audio_kernel, stride=cfg.audio_stride, bias=False)
            stem = _PatchStem(conv, nn.LayerNorm(cfg.audio_embed_dim))
            grid = cfg.audio_patch_grid
            pre["audio"] = _Preprocessor(stem, grid[0] * grid[1], cfg.audio_embed_dim)
            trunks["audio"] = _Trunk(
                cfg.audio_embed_dim,
                cfg.audio_num_blocks,
                cfg.audio_num_heads,
                cfg.mlp_ratio,
                pre_ln=False,
                add_bias_kv=True,
                drop_path=cfg.audio_drop_path,
            )
            heads["audio"] = _head(cfg.audio_embed_dim, cfg.out_embed_dim)
            post["audio"] = nn.Sequential(_Normalize(), _LogitScale(cfg.audio_logit_scale))
        self.modality_preprocessors = nn.ModuleDict(pre)
        self.modality_trunks = nn.ModuleDict(trunks)
        self.modality_heads = nn.ModuleDict(heads)
        self.modality_postprocessors = nn.ModuleDict(post)
        self.vision_transform = ImageTransform(
            resize=cfg.image_size,
            crop=cfg.image_size,
            interpolation="bicubic",
            mean=OPENAI_CLIP_MEAN,
            std=OPENAI_CLIP_STD,
            crop_rounding="round",
        )

    # -- loading ---------------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        config: ImageBindConfig | dict[str, Any] | None = None,
        *,
        modalities: tuple[str, ...] | None = None,
    ) -> ImageBindModel:
        """Load the official state dict (``imagebind_huge.pth``, or a ``.safetensors`` with the same keys).

        The model is built on the meta device and the checkpoint tensors are *assigned* (memory-mapped
        for ``.pth``), so loading ImageBind-Huge takes no second copy of its 4.5 GB of weights.
        ``path`` may be the file or a directory holding ``imagebind_huge.pth`` / ``model.safetensors``
        and, for smaller variants, a ``config.json`` of :class:`ImageBindConfig` fields (used when
        ``config`` is None).
        """
        if config is None and Path(path).is_dir() and (Path(path) / "config.json").is_file():
            # A directory may describe a smaller variant with a config.json of ImageBindConfig fields.
            from foleygen.config import load_json

            config = {k: v for k, v in load_json(Path(path) / "config.json").items() if not k.startswith("_")}
        if isinstance(config, dict):
            config = ImageBindConfig(**_config_kwargs(config))
        config = config or ImageBindConfig()
        if modalities is not None:
            config = replace(config, modalities=tuple(modalities))
        file = _checkpoint_file(path)
        state = _read_state_dict(file)
        with torch.device("meta"):
            model = cls(config)
        expected = model.state_dict()
        skipped = OTHER_MODALITIES + tuple(m for m in ("vision", "audio") if m not in config.modalities)
        prefixes = tuple(
            f"modality_{part}.{m}." for part in ("preprocessors", "trunks", "heads", "postprocessors") for m in skipped
        )
        own = {k: v for k, v in state.items() if not k.startswith(prefixes)}
        missing = sorted(set(expected) - set(own))
        unexpected = sorted(set(own) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"not an ImageBind checkpoint of this layout: missing {missing[:3]}, unexpected "
                f"{unexpected[:3]} ({len(missing)} missing, {len(unexpected)} unexpected)",
                file,
            )
        for k, v in expected.items():
            if tuple(own[k].shape) != tuple(v.shape):
                raise CheckpointError(
                    f"{k} has shape {tuple(own[k].shape)}, the config expects {tuple(v.shape)} "
                    "(pass the matching ImageBindConfig)",
                    file,
                )
        own = {k: (v.float() if v.is_floating_point() and v.dtype != torch.float32 else v) for k, v in own.items()}
        model.load_state_dict(own, strict=True, assign=True)
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval()

    # -- vision ----------------------------------------------------------------------------------------

    def vision_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``[N, 3, S, S]`` (or 2-frame clips ``[N, 3, 2, S, S]``) -> trunk output
        ``[N, 1 + P, vision_embed_dim]`` (CLS first, before the head's LayerNorm)."""
        tokens = self.modality_preprocessors["vision"](pixels)
        return self.modality_trunks["vision"](tokens)

    def embed_vision(self, frames: torch.Tensor, *, chunk_size: int = 32) -> torch.Tensor:
        """Images -> unit-norm embeddings ``[N, out_embed_dim]``.

        Args:
            frames: ``uint8 [N, H, W, 3]`` (any size; preprocessed here exactly as the official
                ``load_and_transform_vision_data``), or already preprocessed ``float [N, 3, S, S]`` /
                2-frame clips ``float [N, 3, 2, S, S]``.
            chunk_size: images per trunk call (bounds memory).
        """
        if frames.dtype == torch.uint8:
            if frames.dim() != 4 or frames.shape[-1] != 3:
                raise ConfigError(f"embed_vision: uint8 frames must be [N, H, W, 3], got {tuple(frames.shape)}")
            frames = self.vision_transform(frames[None], chunk_size=chunk_size)[0]
        elif frames.dim() not in (4, 5) or frames.shape[1] != 3:
            raise ConfigError(f"embed_vision: expected [N, 3, S, S] or [N, 3, T, S, S], got {tuple(frames.shape)}")
        param = next(self.parameters())
        outs = []
        with torch.inference_mode():
            for i in range(0, frames.shape[0], chunk_size):
                x = frames[i : i + chunk_size].to(device=param.device, dtype=param.dtype)
                x = self.modality_heads["vision"](self.vision_tokens(x))
                outs.append(self.modality_postprocessors["vision"](x.float()))
        return torch.cat(outs) if outs else frames.new_zeros((0, self.config.out_embed_dim), dtype=torch.float32)

    # -- audio -----------------------------------------------------------------------------------------

    def clip_starts(self, duration: float) -> list[float]:
        """Start times (s) of the audio clips: ``clips_per_video`` evenly over ``[0, duration - clip]``."""
        return [float(s) for s in self._clip_starts(duration)]

    def _clip_starts(self, duration: float) -> list[Fraction]:
        # pytorchvideo's ConstantClipsPerVideoSampler computes in exact fractions of the float duration;
        # doing the same keeps int(start * sample_rate) on the very sample the official loader cuts at.
        cfg = self.config
        clip = Fraction(cfg.audio_clip_duration)
        span = Fraction(max(Fraction(duration) - clip, Fraction(0)))
        step = span / max(cfg.audio_clips_per_video - 1, 1)
        return [step * i for i in range(cfg.audio_clips_per_video)]

    def audio_melspec(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Waveforms -> normalised fbank clips ``[B, clips, 1, mel_bins, target_len]``.

        Args:
            wav: ``[S]``, ``[C, S]`` (one sound) or ``[B, C, S]``; like the official loader (Kaldi's
                fbank reads channel 0) only the first channel is used.
            sample_rate: of ``wav``; resampled to 16 kHz when different.
        """
        cfg = self.config
        if wav.dim() == 1:
            wav = wav[None, None]
        elif wav.dim() == 2:
            wav = wav[None]
        if wav.dim() != 3:
            raise ConfigError(f"embed_audio: wav must be [S], [C, S] or [B, C, S], got {tuple(wav.shape)}")
        wav = sinc_resample(wav.float(), int(sample_rate), cfg.audio_sample_rate)
        sr = cfg.audio_sample_rate
        out = []
        for item in wav:
            clips = []
            for start in self._clip_starts(item.shape[-1] / sr):
                seg = item[:, int(start * sr) : int((start + Fraction(cfg.audio_clip_duration)) * sr)]
                seg = seg - seg.mean()  # official: waveform -= waveform.mean(), over the clip's channels
                fb = kaldi_fbank(
                    seg[0],
                    sr,
                    num_mel_bins=cfg.audio_num_mel_bins,
                    window_type="hanning",
                    frame_length=25.0,
                    frame_shift=10.0,
                    dither=0.0,
                ).T  # [mel, frames]
                pad = cfg.audio_target_len - fb.shape[1]
                fb = F.pad(fb, (0, pad)) if pad > 0 else fb[:, : cfg.audio_target_len]
                clips.append((fb[None] - cfg.audio_mean) / cfg.audio_std)
            out.append(torch.stack(clips))
        return torch.stack(out)

    def embed_audio(self, wav: torch.Tensor, sample_rate: int, *, official_scale: bool = False) -> torch.Tensor:
        """Sounds -> embeddings ``[B, out_embed_dim]`` in the space of :meth:`embed_vision`.

        By default the result is L2-normalised (cosine similarity with vision = dot product). With
        ``official_scale=True`` it is exactly the official output: the mean over clips of
        ``20 * unit-norm clip embedding``.
        """
        spec = self.audio_melspec(wav, sample_rate)
        b, c = spec.shape[:2]
        param = next(self.parameters())
        with torch.inference_mode():
            x = spec.reshape(b * c, *spec.shape[2:]).to(device=param.device, dtype=param.dtype)
            x = self.modality_trunks["audio"](self.modality_preprocessors["audio"](x))
            x = self.modality_postprocessors["audio"](self.modality_heads["audio"](x).float())
            x = x.reshape(b, c, -1).mean(dim=1)
        return x if official_scale else F.normalize(x, dim=-1)


def _config_kwargs(data: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(ImageBindConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"ImageBindConfig: unknown key(s) {unknown}")
    return dict(data)


def _checkpoint_file(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if path.is_dir():
        for name in (OFFICIAL_CHECKPOINT_NAME, "model.safetensors"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"no {OFFICIAL_CHECKPOINT_NAME} or model.safetensors in directory", path)
    if not path.is_file():
        raise CheckpointError("ImageBind checkpoint not found (get imagebind_huge.pth, see docs/vision.md)", path)
    return path


def _read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except Exception as err:
            raise CheckpointError(f"cannot read safetensors ({err})", file) from None
    try:  # memory-mapped: the 4.5 GB file is paged in lazily, never copied
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
        from foleygen.checkpoint import safe_torch_load

        state = safe_torch_load(file)
    except Exception as err:
        from foleygen.checkpoint import load_refusal

        raise CheckpointError(load_refusal(err), file) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("not a plain state dict of tensors", file)
    return state


class ImageBindVisualEncoder(FrozenVisualEncoder):
    """``imagebind`` visual encoder: per-frame ImageBind vision embeddings ``[B, F, 1024]`` (unit norm).

    Option ``feature``: ``"embed"`` (default, the shared-space embedding) or ``"tokens"`` — the
    pre-head trunk output ``[B, F, 1 + P, vision_embed_dim]`` (CLS first), for feature extraction.
    """

    def __init__(
        self,
        model: ImageBindModel,
        *,
        fps: float = DEFAULT_FPS,
        feature: Literal["embed", "tokens"] = "embed",
        chunk_size: int = 32,
        bf16: bool = False,
    ) -> None:
        super().__init__(chunk_size=chunk_size, bf16=bf16)
        if feature not in ("embed", "tokens"):
            raise ConfigError(f"imagebind: feature must be 'embed' or 'tokens', got {feature!r}")
        if "vision" not in model.config.modalities:
            raise ConfigError("imagebind: the model has no vision branch")
        self.model = model
        self.feature = feature
        self.transform = model.vision_transform
        cfg = model.config
        self.fps = float(fps)
        self.image_size = cfg.image_size
        self.dim = cfg.out_embed_dim if feature == "embed" else cfg.vision_embed_dim
        self.tokens_per_frame = 1 + cfg.vision_num_patches if feature == "tokens" else 1
        self.freeze()

    @classmethod
    def from_pretrained(
        cls,
        path_or_dir: str | os.PathLike[str] | None,
        *,
        fps: float | None = None,
        feature: Literal["embed", "tokens"] = "embed",
        chunk_size: int = 32,
        bf16: bool = False,
        config: ImageBindConfig | dict[str, Any] | None = None,
    ) -> ImageBindVisualEncoder:
        """Load the vision branch of ``imagebind_huge.pth`` (the audio branch is not built)."""
        if path_or_dir is None:
            raise CheckpointError("imagebind: needs the path of imagebind_huge.pth (see docs/vision.md)")
        model = ImageBindModel.from_checkpoint(path_or_dir, config, modalities=("vision",))
        return cls(model, fps=DEFAULT_FPS if fps is None else fps, feature=feature, chunk_size=chunk_size, bf16=bf16)

    def _encode_chunk(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, S, S]`` -> ``[N, 1024]`` (or ``[N, 1 + P, D]`` tokens)."""
        tokens = self.model.vision_tokens(images)
        if self.feature == "tokens":
            return tokens
        return self.model.modality_postprocessors["vision"](self.model.modality_heads["vision"](tokens))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``[B, F, 3, S, S]`` -> ``[B, F, D]`` (``feature="tokens"``: ``[B, F, 1 + P, D]``)."""
        out = super().forward(frames)
        if self.feature == "tokens":
            return out.reshape(frames.shape[0], frames.shape[1], self.tokens_per_frame, self.dim)
        return out
