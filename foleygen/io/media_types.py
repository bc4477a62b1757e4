"""The one list of media file extensions: what foleygen reads as video or audio, and what it writes.

Every command that picks files out of a folder by name uses these sets, so ``foleygen generate folder/``,
``foleygen eval --videos folder/``, ``foleygen info folder/``, ``foleygen prepare``, ``foleygen rate`` and
codec training all see the same files. Matching is by the (lower-cased) extension only: a file that
matches is still probed, and one that PyAV cannot open fails then, with its own message.

Readable:

* :data:`VIDEO_EXTENSIONS`: containers read for their pictures (and their sound, when they hold one);
* :data:`AUDIO_EXTENSIONS`: audio-only files;
* :data:`AUDIO_SOURCE_EXTENSIONS`: everything whose sound can be read (audio files and the video
  containers that can carry a sound track; an animated GIF cannot);
* :data:`MEDIA_EXTENSIONS`: audio and video together.

Written (narrower, because each needs an encoder and muxer that foleygen drives itself):

* :data:`AUDIO_OUTPUT_EXTENSIONS`: what :func:`foleygen.io.write_audio` and the growing writers encode;
* :data:`MUX_FORMATS`: finished videos made by :func:`foleygen.io.mux` (extension -> FFmpeg muxer);
* :data:`STREAM_MUX_FORMATS`: videos grown while generating (``foleygen live --mux``, long videos):
  MPEG-TS, or fragmented MP4 for the MP4 family, which a reader can open before it is finished.

This module imports nothing: the lightest way to ask "is this a video?".
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from types import MappingProxyType

__all__ = [
    "VIDEO_EXTENSIONS",
    "AUDIO_EXTENSIONS",
    "SOUNDLESS_VIDEO_EXTENSIONS",
    "AUDIO_SOURCE_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "AUDIO_OUTPUT_EXTENSIONS",
    "MUX_FORMATS",
    "STREAM_MUX_FORMATS",
    "extension_of",
    "is_video_path",
    "is_audio_path",
    "is_media_path",
    "has_audio_extension",
    "describe_extensions",
]

#: Video containers (``.ogv`` is Ogg with video; plain ``.ogg`` is counted as audio, its usual content).
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".flv",
        ".wmv",
        ".3gp",
        ".ogv",
        ".gif",
    }
)

#: Audio-only files.
AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus"})

#: Video formats that cannot hold sound: never a source of audio.
SOUNDLESS_VIDEO_EXTENSIONS: frozenset[str] = frozenset({".gif"})

#: Files whose sound :func:`foleygen.io.read_audio` can read: audio files and video containers with room
#: for a sound track (codec training reads both; ``eval`` pairs generated and reference sound by them).
AUDIO_SOURCE_EXTENSIONS: frozenset[str] = AUDIO_EXTENSIONS | (VIDEO_EXTENSIONS - SOUNDLESS_VIDEO_EXTENSIONS)

#: Everything :func:`foleygen.io.probe` is asked about when a folder is given (``foleygen info``).
MEDIA_EXTENSIONS: frozenset[str] = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS

#: Audio foleygen writes (16-bit/float WAV, 16-bit FLAC), in the order messages name them.
AUDIO_OUTPUT_EXTENSIONS: tuple[str, ...] = (".wav", ".flac")

#: A finished muxed video (:func:`foleygen.io.mux`): extension -> FFmpeg muxer. A subset of
#: :data:`VIDEO_EXTENSIONS`: the containers whose codecs (H.264/HEVC/... + AAC) the muxer knows how to fill.
MUX_FORMATS: MappingProxyType[str, str] = MappingProxyType({".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"})

#: A muxed video that grows while audio is generated: MPEG-TS, or fragmented MP4 for the MP4 family
#: (``.mov`` too: the fragmented ``mp4`` muxer, which QuickTime plays).
STREAM_MUX_FORMATS: MappingProxyType[str, str] = MappingProxyType(
    {".ts": "mpegts", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mp4"}
)


def extension_of(path: str | os.PathLike[str]) -> str:
    """The lower-cased extension of ``path``'s last component, dot included (``"Clip.MP4"`` -> ``".mp4"``;
    ``""`` when there is none). As for :attr:`pathlib.Path.suffix`, a leading dot starts no extension:
    ``.mp4`` is a hidden file without one."""
    return os.path.splitext(os.path.basename(os.fspath(path)))[1].lower()


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named like a video (:data:`VIDEO_EXTENSIONS`); the file is not opened."""
    return extension_of(path) in VIDEO_EXTENSIONS


def is_audio_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named like an audio-only file (:data:`AUDIO_EXTENSIONS`); not opened."""
    return extension_of(path) in AUDIO_EXTENSIONS


def is_media_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named like audio or video (:data:`MEDIA_EXTENSIONS`); not opened."""
    return extension_of(path) in MEDIA_EXTENSIONS


def has_audio_extension(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named like a file that can hold sound (:data:`AUDIO_SOURCE_EXTENSIONS`)."""
    return extension_of(path) in AUDIO_SOURCE_EXTENSIONS


def describe_extensions(extensions: Iterable[str]) -> str:
    """``".a, .b or .c"`` for a message; a set is sorted first, a sequence or mapping keeps its order."""
    names = sorted(extensions) if isinstance(extensions, set | frozenset) else list(extensions)
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} or {names[-1]}"
