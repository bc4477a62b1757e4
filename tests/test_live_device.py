"""``foleygen live /dev/videoN``: how a camera is read (foleygen/capture.py).

No camera exists on the development machines, so the kernel side (a real V4L2 device) is untested.
The route through an ``ffmpeg`` child is tested end to end with a stand-in ``ffmpeg`` (a Python script
put first on PATH) that checks its arguments and writes a real NUT stream, as ``ffmpeg -f video4linux2``
would; the device is ``/dev/null`` (a character device: what the device check accepts), and PyAV's own
V4L2 input, which the installed wheel has, is turned off for those tests to take the ffmpeg route.
"""

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch

import foleygen.capture as capture
from foleygen.api import FoleyGen
from foleygen.errors import MediaError
from foleygen.io import read_audio
from foleygen.sources import FrameSource, kind_of
from tests.media_factory import make_media

ROOT = Path(__file__).resolve().parents[1]
STEP = 1 / 32768  # one 16-bit step: the WAV's rounding
DEVICE = "/dev/null"  # a character device that exists everywhere (a fake /dev/videoN cannot be made)

FAKE_FFMPEG = """\
#!{python}
# Stand-in for `ffmpeg -f video4linux2 -i DEVICE ... -f nut pipe:1`: checks that it was called so, notes its
# pid, then writes the NUT stream of $FAKE_FFMPEG_STREAM to stdout as a camera's capture would.
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_FFMPEG_LOG"], "a") as log:
    log.write(json.dumps({{"pid": os.getpid(), "args": args}}) + "\\n")
i = args.index("-i") if "-i" in args else -1
ok = i >= 2 and args[i - 2 : i] == ["-f", "video4linux2"] and args[i + 1] == os.environ["FAKE_FFMPEG_DEVICE"]
if not (ok and args[-3:] == ["-f", "nut", "pipe:1"] and "-nostdin" in args and "-an" in args):
    print("fake ffmpeg: unexpected arguments", args, file=sys.stderr)
    sys.exit(2)
mode = os.environ.get("FAKE_FFMPEG_MODE", "stream")
if mode == "fail":
    print("[in#0 @ 0x55d6] Cannot open video device: Device or resource busy", file=sys.stderr)
    print("Error opening input files: Device or resource busy", file=sys.stderr)
    sys.exit(251)
data = open(os.environ["FAKE_FFMPEG_STREAM"], "rb").read()
if mode == "unplugged":  # half the stream, then the camera goes away
    sys.stdout.buffer.write(data[: len(data) // 2])
    sys.stdout.buffer.flush()
    print("[in#0 @ 0x55d6] ioctl(VIDIOC_DQBUF): No such device", file=sys.stderr)
    sys.exit(1)
sys.stdout.buffer.write(data)
sys.stdout.buffer.flush()
if mode == "hold":  # a camera never ends by itself
    time.sleep(600)
"""

# The CLI in a child process, on the ffmpeg route (this PyAV has its own V4L2 input, which would win).
DRIVER = (
    "import sys, foleygen.capture as c; c.pyav_has_v4l2 = lambda: False; "
    "from foleygen.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.fixture(scope="module")
def camera_stream(tmp_path_factory):
    """1.6 s at 25 fps of raw YUYV 4:2:2 in NUT: what ffmpeg writes for a typical webcam."""
    folder = tmp_path_factory.mktemp("cam")
    clip = make_media(folder / "clip.ts", duration=1.6, size=(48, 32), codec="libx264").path
    nut = folder / "camera.nut"
    with av.open(str(clip)) as src, av.open(str(nut), "w", format="nut") as dst:
        out = dst.add_stream("rawvideo", rate=25)
        out.width, out.height, out.pix_fmt = 48, 32, "yuyv422"
        out.time_base = Fraction(1, 25)
        for i, frame in enumerate(src.decode(video=0)):
            raw = frame.reformat(format="yuyv422")
            raw.pts, raw.time_base = i, Fraction(1, 25)
            for packet in out.encode(raw):
                dst.mux(packet)
        for packet in out.encode(None):
            dst.mux(packet)
    return nut


@pytest.fixture
def fake_ffmpeg(tmp_path, monkeypatch, camera_stream):
    """The stand-in ffmpeg first on PATH; returns its log (one JSON line per run: pid, arguments)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "ffmpeg"
    exe.write_text(FAKE_FFMPEG.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "ffmpeg.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_FFMPEG_LOG", str(log))
    monkeypatch.setenv("FAKE_FFMPEG_STREAM", str(camera_stream))
    monkeypatch.setenv("FAKE_FFMPEG_DEVICE", DEVICE)
    monkeypatch.setattr(capture, "pyav_has_v4l2", lambda: False)
    return log


def _runs(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _gone(pid: int) -> bool:
    """The process no longer exists (ended and reaped: not even a zombie)."""
    return not Path(f"/proc/{pid}").exists()


def _live(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", DRIVER, "live", *map(str, args), "--model", "debug"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_kind_of_devices():
    assert kind_of("/dev/video0") == "device"  # by its name, present or not
    assert kind_of("/dev/null") == "device"  # any character device
    assert kind_of("-") == "stdin" and kind_of("rtsp://h/x") == "url" and kind_of("clip.mp4") == "file"


def test_the_installed_pyav_reads_v4l2_itself():
    """The wheel's FFmpeg has the video4linux2 input (listed as "video4linux2,v4l2"): it reaches the
    device's first ioctl, which /dev/null refuses; the refusal is one line naming the device."""
    assert capture.pyav_has_v4l2()
    assert capture.camera_route(DEVICE) is None
    with pytest.raises(MediaError) as err:
        FrameSource(DEVICE, fps=25, stall_timeout=5)
    assert str(err.value) == "/dev/null: cannot open the camera (Inappropriate ioctl for device)"


def test_a_missing_device_is_named_before_anything_runs(fake_ffmpeg):
    with pytest.raises(MediaError) as err:
        FrameSource("/dev/video97", fps=25)
    assert str(err.value).startswith("/dev/video97: no such device")
    assert "\n" not in str(err.value) and _runs(fake_ffmpeg) == []


def test_the_ffmpeg_route_gives_the_frames_of_the_stream(fake_ffmpeg, camera_stream):
    with FrameSource(DEVICE, fps=25, stall_timeout=10) as src:
        assert src.child is not None
        frames = [ev.frame for ev in src.events() if ev.kind == "frame"]
    (run,) = _runs(fake_ffmpeg)
    assert run["args"] == capture.ffmpeg_command(run["args"][0], DEVICE)[1:]
    assert _gone(run["pid"]) and src.child.proc.returncode == 0
    with FrameSource(str(camera_stream), fps=25) as ref:  # the same stream read as a file
        want = [ev.frame for ev in ref.events() if ev.kind == "frame"]
    assert len(frames) == len(want) == 40
    assert all(torch.equal(a, b) for a, b in zip(frames, want, strict=True))


def test_live_camera_through_ffmpeg_equals_the_offline_audio(fake_ffmpeg, camera_stream, tmp_path):
    offline = FoleyGen.from_pretrained("debug").generate_list([camera_stream], seed=0)[0]
    out = tmp_path / "o.wav"
    p = _live([DEVICE, "--pcm", "--out", out, "--mux", tmp_path / "o.mp4", "-q"])
    pcm, err = p.communicate(timeout=180)
    assert p.returncode == 0, err.decode()
    got = torch.frombuffer(bytearray(pcm), dtype=torch.int16).float()[None] / 32768
    assert got.shape == offline.shape and (got - offline).abs().max() <= STEP / 2 + 1e-5
    assert (read_audio(out, 16000) - offline).abs().max() <= STEP / 2 + 1e-5
    with av.open(str(tmp_path / "o.mp4")) as c:  # raw video cannot be copied into MP4: re-encoded
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.audio
    (run,) = _runs(fake_ffmpeg)
    assert _gone(run["pid"])


def test_ffmpeg_failing_is_one_line_and_leaves_no_output(fake_ffmpeg, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FFMPEG_MODE", "fail")
    out = tmp_path / "o.wav"
    p = _live([DEVICE, "--out", out, "-q"])
    _, err = p.communicate(timeout=120)
    lines = err.decode().strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1, lines
    assert lines[0] == (
        "foleygen live: error: /dev/null: cannot open the camera "
        "(ffmpeg: Error opening input files: Device or resource busy)"
    )
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    (run,) = _runs(fake_ffmpeg)
    assert _gone(run["pid"])


def test_a_camera_that_goes_away_midway_says_so(fake_ffmpeg, monkeypatch):
    monkeypatch.setenv("FAKE_FFMPEG_MODE", "unplugged")
    frames = 0
    with FrameSource(DEVICE, fps=25, stall_timeout=10) as src:
        with pytest.raises(MediaError) as err:
            for ev in src.events():
                frames += ev.kind == "frame"
    assert 0 < frames < 40
    assert str(err.value) == "/dev/null: the camera stopped (ffmpeg: ioctl(VIDIOC_DQBUF): No such device)"
    assert _gone(_runs(fake_ffmpeg)[0]["pid"])


def test_no_ffmpeg_anywhere_is_one_line_saying_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setattr(capture, "pyav_has_v4l2", lambda: False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on it
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # nor imageio-ffmpeg's
    assert capture.find_ffmpeg() is None
    with pytest.raises(MediaError) as err:
        FrameSource(DEVICE, fps=25)
    text = str(err.value)
    assert "\n" not in text and text.startswith("/dev/null: reading a camera needs FFmpeg's video4linux2 input")
    assert "apt install ffmpeg" in text and "-f video4linux2 -i /dev/null -c:v copy -f nut - | foleygen live -" in text


def test_close_and_ctrl_c_stop_and_reap_ffmpeg(fake_ffmpeg, monkeypatch):
    monkeypatch.setenv("FAKE_FFMPEG_MODE", "hold")  # streams, then stays (a camera)
    with FrameSource(DEVICE, fps=25, stall_timeout=10) as src:
        for ev in src.events():
            if ev.kind == "frame" and ev.index == 5:
                break
    assert src.child.proc.returncode is not None and _gone(_runs(fake_ffmpeg)[0]["pid"])
    with pytest.raises(KeyboardInterrupt):
        with FrameSource(DEVICE, fps=25, stall_timeout=10) as src:
            for ev in src.events():
                if ev.kind == "frame" and ev.index == 5:
                    raise KeyboardInterrupt
    assert src.child.proc.returncode is not None and _gone(_runs(fake_ffmpeg)[1]["pid"])


def test_ctrl_c_ends_the_live_command_and_its_ffmpeg(fake_ffmpeg, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FFMPEG_MODE", "hold")
    wav = tmp_path / "o.wav"
    p = _live([DEVICE, "--out", wav, "--stall-timeout", "60", "-q"])
    deadline = time.monotonic() + 120
    while not (wav.exists() and wav.stat().st_size > 44 + 3200) and time.monotonic() < deadline:
        time.sleep(0.05)  # 0.1 s of audio written: the run is under way, ffmpeg holding on
    (run,) = _runs(fake_ffmpeg)
    assert not _gone(run["pid"])
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode()
    assert read_audio(wav, 16000).shape[-1] > 1600
    assert _gone(run["pid"])


def test_a_stalled_camera_open_stops_ffmpeg(fake_ffmpeg, tmp_path, monkeypatch):
    """An ffmpeg that writes nothing (a camera that never delivers): the open stalls, ffmpeg is stopped."""
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    monkeypatch.setenv("FAKE_FFMPEG_STREAM", str(empty))
    monkeypatch.setenv("FAKE_FFMPEG_MODE", "hold")
    with pytest.raises(MediaError, match="stalled before its first frame"):
        FrameSource(DEVICE, fps=25, stall_timeout=1.0)
    pid = _runs(fake_ffmpeg)[0]["pid"]
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)


def test_ctrl_c_while_the_camera_opens_stops_ffmpeg(fake_ffmpeg, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    monkeypatch.setenv("FAKE_FFMPEG_STREAM", str(empty))
    monkeypatch.setenv("FAKE_FFMPEG_MODE", "hold")  # ffmpeg runs, no frame comes: the open waits
    p = _live([DEVICE, "--out", tmp_path / "o.wav", "--stall-timeout", "60", "-q"])
    deadline = time.monotonic() + 120
    while not _runs(fake_ffmpeg) and time.monotonic() < deadline:
        time.sleep(0.05)
    (run,) = _runs(fake_ffmpeg)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err.decode()
    assert _gone(run["pid"]) and not (tmp_path / "o.wav").exists()


@pytest.mark.skipif(capture.find_ffmpeg() is None, reason="no ffmpeg program on this machine")
def test_a_real_ffmpeg_refusing_a_non_camera_is_one_line(monkeypatch):
    monkeypatch.setattr(capture, "pyav_has_v4l2", lambda: False)
    with pytest.raises(MediaError) as err:
        FrameSource(DEVICE, fps=25, stall_timeout=10)
    text = str(err.value)
    assert text.startswith("/dev/null: cannot open the camera (ffmpeg: ") and "Inappropriate ioctl" in text


@pytest.mark.skipif(capture.find_ffmpeg() is None, reason="no ffmpeg program on this machine")
def test_a_real_ffmpeg_writes_what_the_route_reads(tmp_path):
    """The child's output options, on a real ffmpeg, with raw YUYV frames from a file standing in for the
    device: NUT that PyAV opens from a pipe with the live probe limits, every frame and timestamp kept."""
    from foleygen.sources import LIVE_PROBE

    raw = tmp_path / "frames.yuyv"
    raw.write_bytes(bytes(range(256)) * (48 * 32 * 2 * 10 // 256))  # 10 frames of 48x32 YUYV
    cmd = capture.ffmpeg_command(capture.find_ffmpeg(), DEVICE)
    i = cmd.index("-i")
    assert cmd[i - 2 : i + 2] == ["-f", "video4linux2", "-i", DEVICE]
    cmd[i - 2 : i + 2] = ["-f", "rawvideo", "-pix_fmt", "yuyv422", "-video_size", "48x32", "-framerate", "25"]
    cmd[i + 6 : i + 6] = ["-i", str(raw)]  # the device's place, after the input options
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        with av.open(f"pipe:{proc.stdout.fileno()}", format="nut", options=LIVE_PROBE) as c:
            stream = c.streams.video[0]
            assert stream.codec_context.name == "rawvideo" and stream.codec_context.format.name == "yuyv422"
            pts = [f.pts * f.time_base for f in c.decode(stream)]
    finally:
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0
    assert pts == [Fraction(k, 25) for k in range(10)]
