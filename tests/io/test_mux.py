"""mux: video packets copied byte for byte, new AAC track matching the video, original audio kept, atomic."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import pytest
import torch
from media_factory import frame_index

from foleygen.errors import MediaError
from foleygen.io import mux, probe, read_audio, read_frames


def video_packets(path) -> list[tuple[bytes, int | None, bool]]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return [
            (bytes(p), None if p.pts is None else round(float(p.pts * p.time_base) * 1e6), p.is_keyframe)
            for p in c.demux(v)
            if p.size
        ]


def decoded_audio_samples(path, index: int) -> int:
    with av.open(str(path)) as c:
        return sum(f.samples for f in c.decode(c.streams.audio[index]))


def tone(seconds: float, rate: int, channels: int = 1) -> torch.Tensor:
    t = torch.arange(round(seconds * rate)) / rate
    return torch.stack([0.3 * torch.sin(2 * torch.pi * (220 + 110 * c) * t) for c in range(channels)])


def test_video_is_copied_and_audio_matches_its_length(media, tmp_path):
    made = media("src.mp4", fps=25, duration=1.6)
    out = tmp_path / "out.mp4"
    mux(made.path, tone(3.0, 16000), 16000, out)  # longer than the video: trimmed
    assert video_packets(out) == video_packets(made.path)  # same bytes, same times, same keyframes
    info = probe(out)
    assert info.has_audio and info.audio_codec == "aac" and info.audio_sample_rate == 16000
    assert info.duration == pytest.approx(probe(made.path).duration)
    video_samples = round(info.duration * 16000)
    assert abs(decoded_audio_samples(out, 0) - video_samples) <= 1024  # one AAC frame
    back = read_audio(out, 16000)
    assert back.shape == (1, video_samples)
    # The tone survives (lossy): correlation with what went in, away from the codec's edges.
    ref = tone(3.0, 16000)[0, :video_samples]
    corr = torch.corrcoef(torch.stack([back[0, 2048:-2048], ref[2048:-2048]]))[0, 1]
    assert corr > 0.9
    assert sorted(os.listdir(tmp_path)) == ["out.mp4", "src.mp4"]


def test_b_frame_video_is_copied_with_its_timestamps(media, tmp_path):
    made = media("bf.mp4", fps=Fraction(30000, 1001), duration=1.0, bframes=True)
    with av.open(str(made.path)) as c:
        assert any(p.dts is not None and p.dts < 0 for p in c.demux(c.streams.video[0]))  # really reordered
    out = tmp_path / "out.mp4"
    mux(made.path, tone(1.0, 44100, channels=2), 44100, out)
    assert video_packets(out) == video_packets(made.path)
    assert [frame_index(f) for f in read_frames(out, 30000 / 1001)] == list(range(len(made.times)))


def test_sample_rate_the_encoder_cannot_take(media, tmp_path):
    made = media("src.mp4", fps=10, duration=0.5)
    with pytest.raises(MediaError, match="cannot encode 12345 Hz") as err:
        mux(made.path, tone(0.5, 12345), 12345, tmp_path / "out.mp4")
    assert err.value.path == str(tmp_path / "out.mp4")  # the file asked for, not its temporary twin
    assert sorted(os.listdir(tmp_path)) == ["src.mp4"]


def test_short_audio_is_padded_to_the_video(media, tmp_path):
    made = media("src.mp4", fps=10, duration=2.0)
    out = tmp_path / "out.mp4"
    mux(made.path, tone(0.5, 8000, channels=2), 8000, out)
    info = probe(out)
    assert info.audio_channels == 2
    assert abs(decoded_audio_samples(out, 0) - 16000) <= 1024
    back = read_audio(out, 8000, channels=2)
    assert float(back[:, 6000:].abs().max()) < 1e-3  # silence after the given audio


def test_keep_original_audio_gives_two_tracks(media, tmp_path):
    made = media("src.mp4", fps=25, duration=1.2, audio_rate=16000, audio_channels=2)
    out = tmp_path / "out.mp4"
    mux(made.path, tone(1.2, 24000), 24000, out, keep_original_audio=True)
    assert video_packets(out) == video_packets(made.path)
    with av.open(str(out)) as c:
        audio = [(s.codec_context.name, s.codec_context.sample_rate, s.codec_context.channels) for s in c.streams.audio]
    assert audio == [("aac", 24000, 1), ("aac", 16000, 2)]  # new track first, original copied
    with av.open(str(made.path)) as c:
        original = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
    with av.open(str(out)) as c:
        kept = [bytes(p) for p in c.demux(c.streams.audio[1]) if p.size]
    assert kept == original


def test_original_audio_that_mp4_cannot_hold_is_reencoded(media, tmp_path):
    made = media("src.mkv", fps=10, duration=1.0, codec="libx264", audio_rate=8000, audio_codec="pcm_s16le")
    out = tmp_path / "out.mp4"
    mux(made.path, tone(1.0, 8000), 8000, out, keep_original_audio=True)
    assert video_packets(out) == video_packets(made.path)
    with av.open(str(out)) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac", "aac"]
    assert abs(decoded_audio_samples(out, 1) - 8000) <= 1024


def test_rotation_survives_the_copy(media, tmp_path):
    made = media("phone.mp4", fps=10, duration=0.5, rotation=90)
    out = tmp_path / "out.mp4"
    mux(made.path, tone(0.5, 8000), 8000, out)
    info = probe(out)
    assert (info.rotation, info.width, info.height) == (90, 24, 32)


def test_codec_mp4_cannot_hold_is_reencoded_or_refused(media, tmp_path):
    made = media("src.mkv", fps=10, duration=1.0)  # FFV1
    with pytest.raises(MediaError, match="ffv1"):
        mux(made.path, tone(1.0, 8000), 8000, tmp_path / "no.mp4", reencode_video=False)
    assert not (tmp_path / "no.mp4").exists()
    out = tmp_path / "out.mp4"
    mux(made.path, tone(1.0, 8000), 8000, out)
    info = probe(out)
    assert info.video_codec == "h264" and info.num_frames == 10
    assert [frame_index(f) for f in read_frames(out, 10)] == list(range(10))


def test_failures_leave_no_file(media, tmp_path):
    made = media("src.mp4", fps=10, duration=0.5)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    with pytest.raises(MediaError, match="cannot encode audio"):
        mux(made.path, tone(0.5, 8000), 8000, out, audio_codec="no_such_codec")
    with pytest.raises(MediaError, match="shape"):
        mux(made.path, torch.zeros(2, 3, 4), 8000, out)
    with pytest.raises(MediaError, match=r"\.mp4"):
        mux(made.path, tone(0.5, 8000), 8000, tmp_path / "out.avi")
    assert out.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["out.mp4", "src.mp4"]


def test_audio_only_source_is_an_error(media, tmp_path):
    made = media("a.wav", fps=None, audio_rate=8000, duration=0.5)
    with pytest.raises(MediaError, match="no video stream"):
        mux(made.path, tone(0.5, 8000), 8000, tmp_path / "out.mp4")


def test_mux_can_replace_its_own_source(media, tmp_path):
    made = media("clip.mp4", fps=10, duration=1.0)
    before = video_packets(made.path)
    mux(made.path, tone(1.0, 8000), 8000, made.path)  # the source is read fully before the rename
    assert probe(made.path).has_audio
    assert video_packets(made.path) == before
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def test_re_encoding_keeps_the_frames_a_decoder_holds_back_to_the_end(media, tmp_path):
    """A decoder that reorders frames (H.264 with B-frames) holds its last ones until it is told the stream
    ended; the re-encode skipped that end and lost them (the web demo's browser copy of a phone video
    ended two frames short)."""
    made = media("bframes.mp4", fps=25, duration=1.6, size=(48, 32), bframes=True)
    out = tmp_path / "out.mp4"
    mux(made.path, tone(1.6, 8000), 8000, out, reencode_video=True)
    info = probe(out)
    assert info.video_codec == "h264" and info.num_frames == 40
    assert [frame_index(f) for f in read_frames(out, 25)] == list(range(40))
