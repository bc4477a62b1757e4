"""probe: the fields of MediaInfo on the kinds of files foleygen meets."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from fuzz_found import ABSURD_ASPECT_PNG
from media_factory import frame_index, paint

from foleygen.errors import MediaError
from foleygen.io import mux, probe, read_audio, read_frames


def test_video_with_audio(media):
    made = media("v.mp4", fps=Fraction(30000, 1001), duration=1.0, audio_rate=22050, audio_channels=2)
    info = probe(made.path)
    assert info.path == str(made.path)
    assert info.fps == pytest.approx(30000 / 1001)
    assert info.num_frames == 30 and info.duration == pytest.approx(30 * 1001 / 30000)
    assert (info.width, info.height, info.rotation) == (32, 24, 0)
    assert (info.has_video, info.has_audio) == (True, True)
    assert (info.audio_sample_rate, info.audio_channels) == (22050, 2)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert "mp4" in info.container
    assert set(info.to_dict()) >= {"path", "duration", "fps", "width", "height", "num_frames"}


def test_matroska_counts_frames_from_packets(media):
    # Matroska stores neither a frame count nor a stream duration field: both come from demuxing.
    made = media("v.mkv", fps=24, duration=1.5, audio_rate=8000, audio_duration=2.0)
    info = probe(made.path)
    assert info.num_frames == 36
    assert info.duration == pytest.approx(1.5, abs=0.002)  # the video's, not the longer audio's
    assert info.container == "matroska,webm" and info.video_codec == "ffv1" and info.audio_codec == "flac"


def test_variable_frame_rate_reports_the_average(media):
    made = media("vfr.mp4", fps=25, times=[0.0, 0.1, 0.15, 0.6, 0.9])
    info = probe(made.path)
    assert info.num_frames == 5
    assert info.fps == pytest.approx(info.num_frames / info.duration, rel=0.05)


def test_rotated_matroska_keeps_its_rotation_through_a_reencoding_mux(media, tmp_path):
    made = media("rot.mkv", fps=10, duration=0.5, rotation=90)  # FFV1: mux re-encodes it
    assert probe(made.path).rotation == 90
    out = tmp_path / "out.mp4"
    mux(made.path, torch.zeros(1, 4000), 8000, out)
    info = probe(out)
    assert (info.video_codec, info.rotation, info.width, info.height) == ("h264", 90, 24, 32)


def test_cover_art_is_not_video(tmp_path):
    path = tmp_path / "song.mp3"
    with av.open(str(path), "w") as c:
        audio = c.add_stream("mp3", rate=16000, layout="mono")
        cover = c.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 16, 16, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        picture.pts = 0
        for packet in [*cover.encode(picture), *cover.encode(None)]:
            c.mux(packet)
        samples = (np.sin(np.arange(8000) / 10) * 10000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*audio.encode(frame), *audio.encode(None)]:
            c.mux(packet)
    info = probe(path)
    assert (info.has_video, info.has_audio, info.audio_codec) == (False, True, "mp3")
    assert info.duration == pytest.approx(0.5, abs=0.1)
    with pytest.raises(MediaError, match="no video stream"):
        read_frames(path, 10)
    assert read_audio(path, 16000).shape[0] == 1


def test_anamorphic_video_is_stretched_to_its_display_size(tmp_path):
    path = tmp_path / "anamorphic.mp4"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(2, 1)  # each pixel twice as wide as tall
        stream.options = {"preset": "ultrafast", "crf": "10"}
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(paint(i, 32, 24), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    info = probe(path)
    assert (info.width, info.height) == (64, 24)
    frames = read_frames(path, 10)
    assert frames.shape == (3, 24, 64, 3)
    assert [frame_index(f) for f in frames] == [0, 1, 2]


def test_an_absurd_aspect_ratio_is_ignored_as_players_ignore_it(tmp_path):
    """A PNG whose pHYs chunk is damaged (found by the fuzzer: its ratio is billions to one) reads at its
    coded size instead of asking the scaler for a frame billions of pixels wide."""
    path = tmp_path / "damaged.png"
    path.write_bytes(ABSURD_ASPECT_PNG)
    with av.open(str(path)) as c:
        assert not (1 / 16 <= c.streams.video[0].sample_aspect_ratio <= 16)  # the damage is really there
    info = probe(path)
    assert (info.width, info.height) == (8, 8)
    assert read_frames(path, 10).shape[1:] == (8, 8, 3)
