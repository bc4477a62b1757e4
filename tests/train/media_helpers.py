"""Small media and codec stand-ins for the training tests (no network, made on the spot).

The PyAV writing itself lives in ``tests/media_factory.py``, shared with the other test folders.
"""

from __future__ import annotations

from pathlib import Path

import torch
from media_factory import write_tone_video


def write_video(
    path: Path, seconds: float = 1.0, fps: int = 10, size: int = 32, sr: int = 16000, freq: float = 440.0
) -> Path:
    """mpeg4 video that flashes every 5th frame + an AAC tone that beeps with the flashes."""
    return write_tone_video(path, seconds, fps, size, sr, freq, beep_every=5)


def tiny_codec_dir(path: Path) -> Path:
    """A random 2 x 16 compact codec (50 Hz, 16 kHz), its codebooks initialised by one training pass."""
    from foleygen.codecs.compact import CompactCodec, CompactCodecConfig

    with torch.random.fork_rng():
        torch.manual_seed(0)
        codec = CompactCodec(
            CompactCodecConfig(hidden=16, res_blocks=1, latent_dim=8, num_codebooks=2, codebook_size=16, kmeans_iters=2)
        )
        codec.train()
        codec(0.1 * torch.randn(1, 1, 16000))
    codec.eval().save_pretrained(path)
    return path
