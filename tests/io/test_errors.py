"""Bad input gives one MediaError line naming the file and the problem, from every entry point."""

from __future__ import annotations

import os

import pytest
import torch

import foleygen.io._common as common
from foleygen.errors import FoleyGenError, MediaError
from foleygen.io import mux, probe, read_audio, read_frames

READERS = {
    "probe": probe,
    "read_frames": lambda p: read_frames(p, 10),
    "read_audio": lambda p: read_audio(p, 16000),
    "mux": lambda p: mux(p, torch.zeros(1, 1600), 16000, p.parent / "out.mp4"),
}


def assert_media_error(fn, path, pattern: str) -> None:
    with pytest.raises(MediaError, match=pattern) as info:
        fn(path)
    err = info.value
    assert isinstance(err, FoleyGenError)
    assert "\n" not in str(err)
    assert str(path) in str(err) and err.path == str(path)


def _source(media, tmp_path):
    return media("good.mp4", fps=25, duration=2.0, audio_rate=16000)


@pytest.mark.parametrize("reader", READERS, ids=str)
def test_missing_directory_empty_and_not_media(reader, tmp_path):
    fn = READERS[reader]
    assert_media_error(fn, tmp_path / "missing.mp4", "file not found")
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    assert_media_error(fn, folder, "is a directory")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert_media_error(fn, empty, r"empty file \(0 bytes\)")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    assert_media_error(fn, text, "not a readable media file")


@pytest.mark.parametrize("reader", READERS, ids=str)
def test_unreadable_file(reader, media, tmp_path, monkeypatch):
    made = media("locked.mp4", fps=10, duration=0.5, audio_rate=16000)
    os.chmod(made.path, 0)
    if os.geteuid() == 0:
        # root reads anything; pretend to be an ordinary user for the permission check.
        real_access = os.access
        monkeypatch.setattr(common.os, "access", lambda p, mode: False if mode == os.R_OK else real_access(p, mode))
    try:
        assert_media_error(READERS[reader], made.path, "permission denied")
    finally:
        os.chmod(made.path, 0o644)


@pytest.mark.parametrize("reader", READERS, ids=str)
def test_mp4_cut_before_its_index(reader, media, tmp_path):
    data = _source(media, tmp_path).path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the moov index is written last: gone
    assert_media_error(READERS[reader], cut, "not a readable media file or corrupt")


def test_matroska_cut_in_the_middle(media, tmp_path, caplog):
    """The header still says 2 s; the packets end near 1 s. What is there is read, and the mismatch said."""
    data = media("good.mkv", fps=25, duration=2.0, size=(64, 48), audio_rate=16000).path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING", logger="foleygen"):
        info = probe(cut)
    assert 0.5 < info.duration < 1.5
    assert [r.getMessage() for r in caplog.records] == [
        f"{cut}: the header says the video stream lasts 2.00 s but its packets end at {info.duration:.2f} s; "
        f"using {info.duration:.2f} s"
    ]
    assert read_frames(cut, 10).shape[0] == round(info.duration * 10)
    assert read_audio(cut, 16000).shape == (1, round(info.duration * 16000))


def test_corrupt_video_data(media, tmp_path):
    data = bytearray(media("good.mkv", fps=25, duration=2.0, size=(64, 48)).path.read_bytes())
    # Scramble a stretch in the middle of the frame data (FFV1 checks slice CRCs).
    for k in range(len(data) // 3, len(data) // 3 + 2000):
        data[k] = (data[k] * 7 + 13) % 256
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    assert_media_error(lambda p: read_frames(p, 10), bad, "corrupt or truncated video")


def test_video_only_and_audio_only(media, tmp_path):
    video = media("v.mp4", fps=10, duration=0.5)
    assert_media_error(lambda p: read_audio(p, 16000), video.path, "no audio stream")
    audio = media("a.flac", fps=None, audio_rate=16000, duration=0.5)
    assert_media_error(lambda p: read_frames(p, 10), audio.path, "no video stream")
    info = probe(audio.path)
    assert not info.has_video and info.has_audio and info.width == 0 and info.num_frames == 0
    assert info.duration == pytest.approx(0.5)
    assert read_audio(audio.path, 16000).shape == (1, 8000)


def test_bad_arguments_name_the_file(media):
    made = media("v.mp4", fps=10, duration=0.5)
    for kwargs in ({"fps": 0}, {"fps": 10, "size": (0, 4)}, {"fps": 10, "mode": "stretch"}, {"fps": 10, "start": -1}):
        assert_media_error(lambda p, kw=kwargs: read_frames(p, **kw), made.path, "must be")
