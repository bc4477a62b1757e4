"""``foleygen info``: JSON lines for good files, one stderr line per bad one, exit 1 if any failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media_factory import make_media

from foleygen.cli import main

FIELDS = {
    "path",
    "duration",
    "fps",
    "width",
    "height",
    "rotation",
    "num_frames",
    "has_video",
    "has_audio",
    "audio_sample_rate",
    "audio_channels",
    "video_codec",
    "audio_codec",
    "container",
}


def test_info_prints_one_json_line_per_file(tmp_path, capsys):
    video = make_media(tmp_path / "v.mp4", fps=25, duration=0.8, audio_rate=16000, audio_channels=2)
    audio = make_media(tmp_path / "a.wav", fps=None, duration=0.5, audio_rate=8000)
    assert main(["info", str(video.path), str(audio.path)]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert err == ""
    assert [d["path"] for d in lines] == [str(video.path), str(audio.path)]
    assert all(set(d) == FIELDS for d in lines)
    v, a = lines
    assert (v["width"], v["height"], v["fps"], v["num_frames"]) == (32, 24, 25.0, 20)
    assert v["duration"] == pytest.approx(0.8)
    assert (v["has_audio"], v["audio_sample_rate"], v["audio_channels"]) == (True, 16000, 2)
    assert (a["has_video"], a["fps"], a["audio_sample_rate"], a["duration"]) == (False, 0.0, 8000, pytest.approx(0.5))


def test_bad_files_are_reported_and_the_rest_printed(tmp_path, capsys):
    good = make_media(tmp_path / "good.mp4", fps=10, duration=0.5)
    junk = tmp_path / "junk.mp4"
    junk.write_text("nope")
    missing = tmp_path / "missing.mkv"
    assert main(["info", str(junk), str(good.path), str(missing)]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line)["path"] for line in out.splitlines()] == [str(good.path)]
    errors = err.splitlines()
    assert len(errors) == 2
    assert str(junk) in errors[0] and "not a readable media file" in errors[0]
    assert str(missing) in errors[1] and "file not found" in errors[1]


def test_directories_expand_to_their_media_files(tmp_path, capsys):
    make_media(tmp_path / "b.mp4", fps=10, duration=0.3)
    make_media(tmp_path / "a.mkv", fps=10, duration=0.3)
    (tmp_path / "notes.txt").write_text("not media")
    sub = tmp_path / "sub"
    sub.mkdir()
    make_media(sub / "c.wav", fps=None, duration=0.3, audio_rate=8000)
    assert main(["info", str(tmp_path)]) == 0
    out, _ = capsys.readouterr()
    assert [Path(json.loads(line)["path"]).name for line in out.splitlines()] == ["a.mkv", "b.mp4"]
    assert main(["info", "-r", str(tmp_path)]) == 0
    out, _ = capsys.readouterr()
    assert [Path(json.loads(line)["path"]).name for line in out.splitlines()] == ["a.mkv", "b.mp4", "c.wav"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["info", str(empty)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and str(empty) in err and "no media files" in err
