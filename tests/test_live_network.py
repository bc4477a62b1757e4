"""``foleygen live`` from network sources on loopback: an RTSP server (``tests/rtsp_loopback.py``: RTP over
the RTSP connection, as cameras serve it) and MPEG-TS over UDP. Each gives, frame for frame, the audio
that the same stream read from a file gives; a source that ends, stalls or is not served ends the run
with one line and finished outputs. (HTTP: ``tests/test_streamio.py``.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from media_factory import make_media
from rtsp_loopback import RtspLoopback

from foleygen.io import read_audio

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 1.2  # what each run reads: the clip is longer, so its last frames are never the stream's end


def _live(args: list[object], timeout: float = 120) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "foleygen", "live", *map(str, args), "--model", "debug"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return run.returncode, run.stderr


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> tuple[Path, bytes, Path]:
    """An MPEG-TS clip of 1.6 s, its bytes, and the audio ``foleygen live`` makes of its first 1.2 s."""
    folder = tmp_path_factory.mktemp("net")
    ts = folder / "in.ts"
    make_media(ts, duration=1.6, size=(48, 32), codec="libx264")
    reference = folder / "from_file.wav"
    code, err = _live([ts, "--duration", SECONDS, "--out", reference, "-q"])
    assert code == 0, err
    return ts, ts.read_bytes(), reference


def test_rtsp_stream_gives_the_audio_of_the_same_stream_read_from_a_file(stream, tmp_path):
    _, data, reference = stream
    with RtspLoopback(data, seconds=1.6) as server:
        out = tmp_path / "rtsp.wav"
        code, err = _live([server.url, "--duration", SECONDS, "--out", out, "-q"])
    assert code == 0, err
    assert server.requests[:3] == ["OPTIONS", "DESCRIBE", "SETUP"] and "PLAY" in server.requests
    assert (read_audio(out, 16000) - read_audio(reference, 16000)).abs().max() == 0


def test_rtsp_stream_that_ends_finishes_the_run(stream, tmp_path):
    """The server closes the connection after the last packet: the run ends there, exit 0."""
    _, data, _ = stream
    with RtspLoopback(data, seconds=1.6) as server:
        out = tmp_path / "end.wav"
        code, err = _live([server.url, "--out", out, "--json"])
    assert code == 0, err
    summary = json.loads(err.strip().splitlines()[-1])
    assert summary["ended_by"] == "end of source"
    assert 1.4 <= read_audio(out, 16000).shape[-1] / 16000 <= 1.6


def test_rtsp_path_nobody_serves_is_one_line(stream, tmp_path):
    _, data, _ = stream
    with RtspLoopback(data, seconds=1.6) as server:
        url = server.url.replace("/live", "/nothing")
        code, err = _live([url, "--out", tmp_path / "none.wav", "--stall-timeout", "5"])
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "/nothing" in lines[0], lines
    assert not (tmp_path / "none.wav").exists()


def _bound(port: int) -> bool:
    """Whether some process has a UDP socket bound to ``port`` (Linux: /proc/net/udp)."""
    hex_port = f":{port:04X}"
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(row.split()[1].endswith(hex_port) for row in rows):
            return True
    return False


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(not Path("/proc/net/udp").exists(), reason="needs Linux's /proc/net/udp to see the receiver bind")
def test_udp_mpegts_gives_the_audio_of_the_same_stream_read_from_a_file(stream, tmp_path):
    """MPEG-TS sent as UDP datagrams of 7 TS packets (how encoders and IPTV send it), paced at twice real
    time once the receiver listens. UDP never says that a stream has ended: ``--duration`` ends the run."""
    _, data, reference = stream
    port = _free_udp_port()
    out = tmp_path / "udp.wav"
    result: dict[str, object] = {}

    def receive() -> None:
        result["code"], result["err"] = _live([f"udp://127.0.0.1:{port}", "--duration", SECONDS, "--out", out, "-q"])

    receiver = threading.Thread(target=receive)
    receiver.start()
    deadline = time.monotonic() + 60
    while not _bound(port):
        assert time.monotonic() < deadline and receiver.is_alive(), result.get("err")
        time.sleep(0.05)
    chunk = 188 * 7
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        start, count = time.perf_counter(), -(-len(data) // chunk)
        for i in range(count):
            time.sleep(max(0.0, start + i / count * 0.8 - time.perf_counter()))
            sender.sendto(data[i * chunk : (i + 1) * chunk], ("127.0.0.1", port))
    receiver.join(timeout=120)
    assert result["code"] == 0, result["err"]
    assert (read_audio(out, 16000) - read_audio(reference, 16000)).abs().max() == 0


def test_udp_source_that_sends_nothing_is_a_stall_in_one_line(tmp_path):
    code, err = _live([f"udp://127.0.0.1:{_free_udp_port()}", "--out", tmp_path / "u.wav", "--stall-timeout", "1.5"])
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "stalled" in lines[0], lines
    assert not (tmp_path / "u.wav").exists()
