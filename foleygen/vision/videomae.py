"""``videomae``: a Hugging Face VideoMAE slid over the video, one feature per tubelet time step.

VideoMAE sees fixed clips of ``num_frames`` frames (16) cut into tubelets of ``tubelet_size`` frames
(2), so a clip yields ``num_frames / tubelet_size`` (8) time steps of ``(S / patch)**2`` tokens. We

* read frames at ``input_fps = fps * tubelet_size`` (default fps 12.5 -> frames at 25 fps);
* pad the video to a multiple of ``tubelet_size`` and to at least ``num_frames`` frames by repeating
  its last frame (padding never changes the features of earlier, fully covered tubelets);
* slide a window of ``num_frames`` frames with ``stride`` frames (default ``num_frames``: no overlap,
  every time step computed once); the last window is padded with the last frame the same way. With
  ``stride < num_frames``, a time step covered by several windows gets the mean of their features;
* mean-pool the spatial tokens of each time index -> ``[B, F', hidden_size]``, ``F' = ceil(F /
  tubelet_size)``, trimmed to the real video. Feature ``i`` covers input frames ``2i, 2i+1``: time
  ``i / fps`` seconds, the same clock as the frames.

The features are the encoder's last hidden states (``VideoMAEModel``'s final LayerNorm is applied when
the checkpoint has one, i.e. ``use_mean_pooling=False``; classification checkpoints keep their
``fc_norm`` in the head, which is not loaded).

Preprocessing (``VideoMAEImageProcessor``): shortest edge -> 224 bilinear, center crop 224, x/255,
ImageNet mean/std — or the directory's ``preprocessor_config.json``.
"""

from __future__ import annotations

import math
import os

import torch

from foleygen.errors import CheckpointError, ConfigError
from foleygen.vision._hf import load_hf_model, read_hf_config, require_transformers
from foleygen.vision.base import FrozenVisualEncoder, _as_normal_tensor
from foleygen.vision.preprocessing import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    ImageTransform,
    transform_from_preprocessor_config,
)

DEFAULT_FPS = 12.5  # features per second; frames are read at 25 fps with tubelet 2


def videomae_default_transform(image_size: int = 224) -> ImageTransform:
    """VideoMAEImageProcessor's defaults for a model taking ``image_size`` pixels."""
    return ImageTransform(
        resize=image_size,
        crop=image_size,
        resize_mode="shortest_edge",
        interpolation="bilinear",
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
    )


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """First frame of each window so that windows of ``window`` frames cover ``num_frames`` frames."""
    starts = [0]
    while starts[-1] + window < num_frames:
        starts.append(starts[-1] + stride)
    return starts


class VideoMAEVisualEncoder(FrozenVisualEncoder):
    """Frozen VideoMAE: ``[B, F, 3, S, S]`` at ``input_fps`` -> ``[B, ceil(F / tubelet), D]`` at ``fps``."""

    def __init__(
        self,
        model: torch.nn.Module,
        transform: ImageTransform,
        *,
        fps: float = DEFAULT_FPS,
        stride: int | None = None,
        chunk_size: int = 64,
        bf16: bool = False,
    ) -> None:
        super().__init__(chunk_size=chunk_size, bf16=bf16)
        cfg = model.config
        self.model = model
        self.transform = transform
        self.window = int(cfg.num_frames)
        self.tubelet = int(cfg.tubelet_size)
        self.stride = self.window if stride is None else int(stride)
        if not (0 < self.stride <= self.window) or self.stride % self.tubelet:
            raise ConfigError(
                f"videomae: stride must be a multiple of tubelet_size {self.tubelet} in "
                f"(0, {self.window}], got {self.stride}"
            )
        # Non-overlapping windows are independent: cutting the video at window boundaries changes nothing.
        self.chunk_multiple = self.window if self.stride == self.window else None
        self.fps = float(fps)
        self.image_size = int(cfg.image_size)
        self.dim = int(cfg.hidden_size)
        self.tokens_per_step = (cfg.image_size // cfg.patch_size) ** 2
        if transform.output_size != self.image_size:
            raise ConfigError(
                f"videomae: preprocessing gives {transform.output_size}px, model takes {self.image_size}px"
            )
        self.freeze()

    @property
    def input_fps(self) -> float:
        """Frames are read at ``fps * tubelet_size``: each feature merges ``tubelet_size`` frames."""
        return self.fps * self.tubelet

    def num_features(self, num_frames: int) -> int:
        """``ceil(num_frames / tubelet_size)``."""
        return math.ceil(num_frames / self.tubelet)

    @classmethod
    def from_pretrained(
        cls,
        path_or_dir: str | os.PathLike[str] | None,
        *,
        fps: float | None = None,
        stride: int | None = None,
        chunk_size: int = 64,
        bf16: bool = False,
    ) -> VideoMAEVisualEncoder:
        """Load a VideoMAEModel / VideoMAEForVideoClassification / VideoMAEForPreTraining directory."""
        transformers = require_transformers()
        directory, cfg = read_hf_config(path_or_dir, "videomae")
        if cfg.get("model_type") != "videomae":
            raise CheckpointError(
                f"videomae: config.json model_type is {cfg.get('model_type')!r}, expected 'videomae'", directory
            )
        model, info = load_hf_model(transformers.VideoMAEModel, directory, "videomae")
        if info.get("missing_keys"):
            raise CheckpointError(f"videomae: checkpoint lacks weights {sorted(info['missing_keys'])[:3]}", directory)
        transform = transform_from_preprocessor_config(directory, videomae_default_transform(model.config.image_size))
        return cls(
            model, transform, fps=DEFAULT_FPS if fps is None else fps, stride=stride, chunk_size=chunk_size, bf16=bf16
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``[B, F, 3, S, S]`` (at ``input_fps``) -> ``float32 [B, ceil(F / tubelet), D]``."""
        self._check_input(frames)
        b, f = frames.shape[:2]
        steps = self.num_features(f)
        if f == 0:
            return frames.new_zeros((b, 0, self.dim), dtype=torch.float32)
        padded_len = max(self.window, steps * self.tubelet)
        starts = window_starts(padded_len, self.window, self.stride)
        padded_len = starts[-1] + self.window
        if padded_len > f:  # repeat the last frame: a causal, content-neutral extension
            frames = torch.cat([frames, frames[:, -1:].expand(b, padded_len - f, *frames.shape[2:])], dim=1)
        clips = torch.stack([frames[:, s : s + self.window] for s in starts], dim=1)  # [B, W, T, 3, S, S]
        flat = clips.reshape(b * len(starts), self.window, *frames.shape[2:])
        per_call = max(1, self.chunk_size // self.window)
        param = next(self.parameters())
        t_steps = self.window // self.tubelet
        outs = []
        with torch.inference_mode(), self._autocast(param.device):
            for i in range(0, flat.shape[0], per_call):
                x = flat[i : i + per_call].to(device=param.device, dtype=param.dtype)
                hidden = self.model(pixel_values=x).last_hidden_state  # [n, t_steps * tokens, D]
                # Token order is (time, height, width): Conv3d output flattened time-major.
                outs.append(hidden.float().reshape(x.shape[0], t_steps, self.tokens_per_step, -1).mean(dim=2))
        per_window = torch.cat(outs).reshape(b, len(starts), t_steps, self.dim)
        total = per_window.new_zeros((b, padded_len // self.tubelet, self.dim))
        count = per_window.new_zeros((padded_len // self.tubelet, 1))
        for w, s in enumerate(starts):
            first = s // self.tubelet
            total[:, first : first + t_steps] += per_window[:, w]
            count[first : first + t_steps] += 1
        return _as_normal_tensor((total / count)[:, :steps])
