"""Builders of a tiny study for the rate tests: 3 one-second videos, two systems, the videos' own audio as the
hidden reference and a shuffled anchor, A/B between the two systems."""

from __future__ import annotations

import math

import torch
from media_factory import write_tone_video

from foleygen.io import write_audio
from foleygen.rate.study import StudyConfig, SystemSpec, parse_anchor

STEMS = ("clip_a", "clip_b", "clip_c")


def make_sources(root):
    """``root/videos/*.mp4`` plus two system folders of ``.wav`` (one with ``_foley`` names)."""
    videos = root / "videos"
    videos.mkdir(parents=True)
    for i, stem in enumerate(STEMS):
        write_tone_video(videos / f"{stem}.mp4", seconds=1.0, fps=10, size=16, freq=300.0 + 100 * i)
    t = torch.arange(16000) / 16000
    for name, suffix, freq in (("good", "", 500.0), ("bad", "_foley", 900.0)):
        folder = root / name
        folder.mkdir()
        for stem in STEMS:
            write_audio(folder / f"{stem}{suffix}.wav", 0.3 * torch.sin(2 * math.pi * freq * t)[None], 16000)
    return videos


def small_config(root, raters=("alice", "bob")) -> StudyConfig:
    videos = make_sources(root)
    systems = [
        SystemSpec("good", "system", root / "good"),
        SystemSpec("bad", "system", root / "bad"),
        SystemSpec("original", "reference", own_audio=True),
    ]
    systems.append(parse_anchor("shuffled", "original"))
    return StudyConfig(videos=videos, systems=systems, ab_pairs=[("good", "bad")], raters=list(raters), seed=1)
