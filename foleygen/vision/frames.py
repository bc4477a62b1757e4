"""The one rule for "the frames an encoder sees": a span of a video file -> the ``uint8`` frames that
the encoder's :meth:`~foleygen.vision.base.VisualEncoder.preprocess` takes.

Training caches (``foleygen prepare``), generation (:class:`foleygen.FoleyGen`, the CLI, the web demo)
and offline feature extraction (:mod:`foleygen.vision.features`) all read frames through
:func:`read_encoder_frames`, so a model trained from a cache sees at inference exactly the images it
was trained on. Two choices make up the rule:

* **Time**: frames are sampled at ``encoder.input_fps`` by presentation timestamp (frame ``i`` is the
  one on screen at ``start + i / input_fps``), see :func:`foleygen.io.read_frames`.
* **Space**: a trainable encoder (``compact``) takes square centre crops of side ``image_size``,
  decoded at that size (cheap, and its own ``preprocess`` is then the identity on size). A frozen
  pretrained encoder takes frames at their displayed size, so its publisher's own resize and crop
  run on them; only frames whose short side exceeds ``2 * image_size`` are first scaled down
  (aspect kept) to a short side of ``2 * image_size``, which bounds decoding memory on 4K video
  while leaving the publisher's final resize a 2x (or smaller) downscale.
"""

from __future__ import annotations

import os

import torch

from foleygen.io import MediaInfo, probe, read_frames
from foleygen.vision.base import VisualEncoder

#: Frozen encoders see frames pre-shrunk to at most this many times their input side (short edge).
PRESHRINK_FACTOR = 2


def decode_size(encoder: VisualEncoder, width: int, height: int) -> int | tuple[int, int] | None:
    """The ``size`` argument of :func:`foleygen.io.read_frames` for ``encoder`` on a video displayed at
    ``width x height``: an int (square centre crop), ``(H, W)`` (aspect-kept downscale) or ``None``
    (displayed size)."""
    side = int(encoder.image_size)
    if encoder.trainable:
        return side
    short = min(int(width), int(height))
    limit = PRESHRINK_FACTOR * side
    if short <= limit:
        return None
    scale = limit / short
    return (max(side, round(height * scale)), max(side, round(width * scale)))


def read_encoder_frames(
    video: str | os.PathLike[str],
    encoder: VisualEncoder,
    *,
    start: float = 0.0,
    duration: float | None = None,
    info: MediaInfo | None = None,
) -> torch.Tensor:
    """Frames of ``video`` as ``encoder`` consumes them -> ``uint8 [F, H, W, 3]``.

    Args:
        video: a video file.
        encoder: the visual encoder the frames are for (its ``input_fps``, ``image_size``, ``trainable``).
        start: seconds from the video stream's start.
        duration: seconds to read (default: the rest of the stream); ``F = round(duration * input_fps)``.
        info: the file's :func:`~foleygen.io.probe` result when the caller has it (saves a probe).

    Raises:
        MediaError: unreadable video, no video stream.
    """
    if info is None:
        info = probe(video)
    size = decode_size(encoder, info.width, info.height)
    return read_frames(video, float(encoder.input_fps), size, start=start, duration=duration)
