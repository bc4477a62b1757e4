"""What one generation made for one video, and how a video is read for it.

:meth:`foleygen.FoleyGen.generate_results` returns a :class:`GenerationResult` per video: the probe of
the file, the frames the visual encoder saw (and any other frame sequences asked for, e.g. the alignment
picture's thumbnails), the features, the codes and the audio. Everything downstream (the files of
:mod:`foleygen.outputs.write`, the web demo's picture) reads from it instead of opening the video again.

:func:`load_video` is the one place a video becomes LM input: a file is probed once and decoded once,
in a single pass that cuts every frame rate needed (:func:`foleygen.io.read_frames_at`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from foleygen.errors import MediaError
from foleygen.io import FrameRequest, MediaInfo

if TYPE_CHECKING:
    from foleygen.api import FoleyGen, GenerationParams, Video

# Audio may run on past the last frame (which stays on screen), but only this much: a duration of
# 1e9 s would otherwise be an allocation of terabytes, and no video needs an hour of sound after it.
MAX_AUDIO_PAST_VIDEO_S = 10.0


@dataclass
class LoadedVideo:
    """One input video, ready for the LM.

    ``frames``: uint8 ``[F, H, W, 3]`` at the encoder's ``input_fps`` and size; ``features [F_v, D]`` at
    ``lm.fps`` (the last one repeated when the audio runs past the video); ``extra_frames``: one uint8
    ``[F_j, H_j, W_j, 3]`` per :class:`~foleygen.io.FrameRequest` asked for (empty for tensor inputs).
    """

    source: str | None  # the file, None for a tensor input
    info: MediaInfo | None  # the file's probe, None for a tensor input
    frames: torch.Tensor
    features: torch.Tensor
    duration: float  # seconds of audio to generate
    num_frames: int  # T: codec frames covering the duration
    num_samples: int  # S: round(duration * sample_rate)
    extra_frames: list[torch.Tensor] = field(default_factory=list)


@dataclass
class GenerationResult:
    """Everything one video's generation produced (:meth:`foleygen.FoleyGen.generate_results`).

    Attributes:
        source: the video file as given (None for a frame tensor).
        info: its :class:`~foleygen.io.MediaInfo` (None for a frame tensor).
        duration: seconds of audio (the video's own length, or the ``duration`` asked for).
        sample_rate: Hz of ``audio``.
        frames: uint8 ``[F, H, W, 3]``, what the visual encoder saw (its ``input_fps`` and size).
        extra_frames: uint8 ``[F_j, H_j, W_j, 3]`` per extra :class:`~foleygen.io.FrameRequest`, cut from
            the same decoding pass (a request without ``duration`` covers ``duration``).
        features: ``[F_v, D]`` visual features at the LM's fps.
        codes: ``[K, T]`` generated codes, ``T`` codec frames covering ``duration``.
        audio: ``[C, S]`` float, ``S = round(duration * sample_rate)``.
    """

    source: str | None
    info: MediaInfo | None
    duration: float
    sample_rate: int
    frames: torch.Tensor
    extra_frames: list[torch.Tensor]
    features: torch.Tensor
    codes: torch.Tensor
    audio: torch.Tensor


def check_length(want: float | None, video_seconds: float, path: Any) -> None:
    """Refuse a requested audio length that runs on far past the video (see MAX_AUDIO_PAST_VIDEO_S)."""
    if want is not None and want > video_seconds + MAX_AUDIO_PAST_VIDEO_S:
        raise MediaError(
            f"duration {want:g} s is too long for this {video_seconds:.2f} s video (at most "
            f"{MAX_AUDIO_PAST_VIDEO_S:g} s past its end)",
            path,
        )


def _param_device(module: torch.nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def load_video(
    model: FoleyGen,
    video: Video,
    tensor_fps: float | None,
    params: GenerationParams,
    extra: Sequence[FrameRequest] = (),
) -> LoadedVideo:
    """A path or ``uint8 [F, H, W, 3]`` frames -> features at ``lm.fps`` and the lengths to generate.

    A file is probed once and decoded once: the encoder's frames and every ``extra`` request come from
    the same pass. ``params.duration`` (None: the video's own) sets the audio length.
    """
    from foleygen.io import probe, read_frames_at
    from foleygen.vision.frames import decode_size

    enc = model.visual_encoder
    want = params.duration
    info = None
    extra_frames: list[torch.Tensor] = []
    if isinstance(video, torch.Tensor):
        if video.dim() != 4 or video.shape[-1] != 3 or video.dtype != torch.uint8 or video.shape[0] == 0:
            raise MediaError(
                f"video tensors must be uint8 [F, H, W, 3] with F >= 1, got {video.dtype} {tuple(video.shape)}"
            )
        src_fps = float(tensor_fps or enc.input_fps)
        check_length(want, video.shape[0] / src_fps, None)
        duration = want or video.shape[0] / src_fps
        # Frame i of the encoder's rate shows the source frame on screen at i / input_fps.
        n = max(1, round(min(duration, video.shape[0] / src_fps) * enc.input_fps))
        index = torch.tensor(
            [min(video.shape[0] - 1, math.floor(i * src_fps / enc.input_fps + 1e-9)) for i in range(n)]
        )
        frames = video[index]
        source = None
    else:
        source = str(video)
        info = probe(video)
        if not info.has_video:
            raise MediaError("has no video stream", video)
        if not info.duration or info.duration <= 0:
            raise MediaError("cannot tell the video's duration (empty or broken stream)", video)
        check_length(want, info.duration, video)
        duration = want or info.duration
        # A clip shorter than one encoder frame (0.01 s at 100 fps) still shows its first frame:
        # read at least that one, so every clip that has a picture gets features. The frames are
        # those of foleygen.vision.frames.read_encoder_frames (the rule training caches follow).
        span = max(min(duration, info.duration), 1.0 / enc.input_fps)
        own = FrameRequest(float(enc.input_fps), decode_size(enc, info.width, info.height), "crop", span)
        asked = [r if r.duration is not None else FrameRequest(r.fps, r.size, r.mode, duration) for r in extra]
        frames, *extra_frames = read_frames_at(video, [own, *asked])
        if frames.shape[0] == 0:
            raise MediaError("no decodable video frame", video)
    seq = model.sequence.with_duration(float(duration))
    features = enc.encode(frames[None].to(_param_device(enc)))[0].float()  # [F', D]
    need = seq.num_visual_frames
    if features.shape[0] < need:  # asked for more audio than there is video: the last frame stays on
        features = torch.cat([features, features[-1:].expand(need - features.shape[0], -1)])
    return LoadedVideo(
        source, info, frames, features[:need], float(duration), seq.num_audio_frames, seq.num_samples, extra_frames
    )
