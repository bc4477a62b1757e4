"""``probe``: what is inside a media file, without decoding more than its first video frame."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import av

from foleygen.errors import MediaError
from foleygen.io._common import (
    PathLike,
    audio_stream,
    codec_name,
    ffmpeg_message,
    first_frame,
    open_input,
    rate_of,
    rotation_from_frame,
    rotation_from_tag,
    scan_packets,
    stream_duration,
    video_geometry,
    video_stream,
)


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` found in a media file.

    Attributes:
        path: the file, as given.
        duration: seconds. The video stream's duration when there is video, else the audio's
            (falling back to the container's duration or the end of the last packet).
        fps: average video frame rate (frames per second); 0.0 without video.
        width, height: displayed size in pixels, i.e. after the sample aspect ratio and after
            ``rotation`` (a portrait phone video stored as 1920x1080 reports 1080x1920); 0 without video.
        rotation: clockwise degrees (0, 90, 180, 270) the stored frames are turned for display,
            from the display-matrix side data or an old ``rotate`` tag. :func:`read_frames` applies it.
        num_frames: frames in the video stream (from the container's index, or by counting packets).
        has_video, has_audio: whether there is a (non cover-art) video stream / an audio stream.
        audio_sample_rate, audio_channels: of the first audio stream; 0 without audio.
        video_codec, audio_codec: FFmpeg codec names (``"h264"``, ``"aac"``...), None if absent.
        container: FFmpeg's name of the container format (``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"wav"``...).
    """

    path: str
    duration: float
    fps: float
    width: int
    height: int
    rotation: int
    num_frames: int
    has_video: bool
    has_audio: bool
    audio_sample_rate: int
    audio_channels: int
    video_codec: str | None
    audio_codec: str | None
    container: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return dataclasses.asdict(self)


def probe(path: PathLike) -> MediaInfo:
    """Describe the streams of a media file.

    Raises:
        MediaError: missing, a directory, unreadable, empty, not media, or corrupt (the first video
            frame cannot be decoded).
    """
    with open_input(path) as container:
        try:
            return _probe_open(container, path)
        except av.FFmpegError as err:
            raise MediaError(f"corrupt or truncated ({ffmpeg_message(err)})", path) from None


def _probe_open(container: av.container.InputContainer, path: PathLike) -> MediaInfo:
    v = video_stream(container)
    a = audio_stream(container)
    fps = 0.0
    width = height = rotation = num_frames = 0
    duration: float | None = None
    video_codec = None
    if v is not None:
        video_codec = codec_name(v)
        # The display matrix reaches us as side data on decoded frames (PyAV does not expose the
        # stream's coded side data for reading), so decode the first frame. This also proves that
        # the video is decodable at all.
        v.thread_type = "AUTO"
        frame = first_frame(container, v)
        if frame is None:
            raise MediaError("video stream has no decodable frames (corrupt or truncated)", path)
        rotation = rotation_from_frame(frame)
        if rotation == 0:
            rotation = rotation_from_tag(v) or 0
        width, height = video_geometry(v, rotation)
        duration = stream_duration(container, v, path)
        num_frames = v.frames if v.frames and v.frames > 0 else scan_packets(path, v.index)[0]
        rate = rate_of(v)
        if rate is None and duration:
            rate = num_frames / duration
        fps = float(rate or 0.0)
    if duration is None and a is not None:
        duration = stream_duration(container, a, path)
    if duration is None:
        duration = 0.0
    return MediaInfo(
        path=str(path),
        duration=float(duration),
        fps=fps,
        width=int(width),
        height=int(height),
        rotation=int(rotation),
        num_frames=int(num_frames),
        has_video=v is not None,
        has_audio=a is not None,
        audio_sample_rate=int(a.codec_context.sample_rate or 0) if a is not None else 0,
        audio_channels=int(a.codec_context.channels or 0) if a is not None else 0,
        video_codec=video_codec,
        audio_codec=codec_name(a) if a is not None else None,
        container=container.format.name,
    )
