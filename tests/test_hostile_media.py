"""Containers whose header lies about the duration (issue 40, item 10): the packets are believed, and
the disagreement is said once per file."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from media_factory import make_media

from foleygen.cli import main
from foleygen.io import mux, probe, read_audio, read_frames


def _scale_mp4_header(src: Path, dst: Path, factor: float) -> Path:
    """Scale the duration fields of mvhd, tkhd and mdhd (version 0 boxes) by ``factor``."""
    data = bytearray(src.read_bytes())
    for box, field in ((b"mvhd", 16), (b"tkhd", 20), (b"mdhd", 16)):
        at = data.find(box)
        while at >= 0:
            assert data[at + 4] == 0  # version 0: 32-bit times and duration
            off = at + 4 + field  # after type; ver/flags, ctime, mtime, (timescale | track id, reserved)
            (value,) = struct.unpack(">I", data[off : off + 4])
            data[off : off + 4] = struct.pack(">I", round(value * factor))
            at = data.find(box, at + 4)
    dst.write_bytes(bytes(data))
    return dst


def _matroska_tag_says_an_hour(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    patched, count = re.subn(rb"00:00:02(\.0+)", rb"01:00:00\1", data)
    assert count == 2  # one DURATION tag per track
    dst.write_bytes(patched)
    return dst


@pytest.fixture(scope="module")
def liars(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("liars")
    mp4 = make_media(root / "real.mp4", fps=25, duration=2.0, audio_rate=16000).path
    mkv = make_media(root / "real.mkv", fps=25, duration=2.0, audio_rate=16000).path
    return {
        "short": _scale_mp4_header(mp4, root / "short.mp4", 0.1),
        "hour": _matroska_tag_says_an_hour(mkv, root / "hour.mkv"),
    }


@pytest.mark.parametrize("name, claimed", [("short", "0.20"), ("hour", "3600.00")])
def test_the_packets_win_and_it_is_said_once(liars, name, claimed, caplog, tmp_path):
    path = liars[name]
    with caplog.at_level("WARNING", logger="foleygen"):
        assert probe(path).duration == pytest.approx(2.0, abs=0.05)
        assert read_frames(path, 10).shape[0] == 20
        assert read_audio(path, 8000).shape == (1, 16000)
        mux(path, read_audio(path, 16000), 16000, tmp_path / "out.mp4")
    said = [r.getMessage() for r in caplog.records if "header says the video" in r.getMessage()]
    assert said == [
        f"{path}: the header says the video stream lasts {claimed} s but its packets end at 2.00 s; using 2.00 s"
    ]
    assert probe(tmp_path / "out.mp4").duration == pytest.approx(2.0, abs=0.05)


def test_generate_makes_the_real_length(liars, tmp_path, capsys):
    # Fresh copies: the warning is said once per file and process, and the test above said it already.
    copies = [tmp_path / liars[name].name for name in ("short", "hour")]
    for name, copy in zip(("short", "hour"), copies, strict=True):
        copy.write_bytes(liars[name].read_bytes())
    code = main(["generate", *map(str, copies), "-o", str(tmp_path / "out"), "--model", "debug", "--json"])
    err = capsys.readouterr().err
    assert code == 0 and err.count("the header says") == 2
    for stem in ("short", "hour"):
        assert probe(tmp_path / "out" / f"{stem}.wav").duration == pytest.approx(2.0, abs=0.05)
