"""Small media and codec stand-ins for the training tests (no network, made on the spot)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch


def write_video(
    path: Path, seconds: float = 1.0, fps: int = 10, size: int = 32, sr: int = 16000, freq: float = 440.0
) -> Path:
    """mpeg4 video whose brightness steps each frame + an AAC tone that beeps on every 5th frame."""
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=fps)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        aus = c.add_stream("aac", rate=sr)
        aus.layout = "mono"
        for i in range(round(seconds * fps)):
            img = np.full((size, size, 3), 40 + 200 * (i % 5 == 0), np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        t = np.arange(round(seconds * sr)) / sr
        gate = ((t * fps).astype(int) % 5 == 0).astype(np.float32)
        wav = (0.4 * gate * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        for s in range(0, len(wav), 1024):
            frame = av.AudioFrame.from_ndarray(wav[None, s : s + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sr, s
            for p in aus.encode(frame):
                c.mux(p)
        for p in aus.encode():
            c.mux(p)
    return path


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
