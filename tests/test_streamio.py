"""Streamed outputs: long videos in ``foleygen generate`` equal the offline path; ``foleygen live`` from a
file, stdin and a paced file, finished cleanly by Ctrl-C or a stall; writers valid while they grow."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
import torch

import foleygen.lm.streaming as lm_streaming
from foleygen.api import FoleyGen
from foleygen.cli import main
from foleygen.cli.commands.live import _allow_full
from foleygen.errors import ConfigError
from foleygen.io import probe, read_audio
from foleygen.outputs.incremental import WavWriter
from tests.media_factory import make_media

ROOT = Path(__file__).resolve().parents[1]
STEP = 1 / 32768  # one 16-bit step: the WAV's rounding


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """1.6 s at 25 fps: longer than the debug model's 1 s window, so generate streams it."""
    return make_media(tmp_path_factory.mktemp("clip") / "clip.mp4", duration=1.6, size=(48, 32)).path


def _live(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "foleygen", "live", *map(str, args), "--model", "debug"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_long_video_in_generate_equals_the_offline_path(clip, tmp_path, capsys, monkeypatch):
    got = []
    advance = lm_streaming.StreamingDecoder.advance
    monkeypatch.setattr(lm_streaming.StreamingDecoder, "advance", lambda self: got.append(advance(self)) or got[-1])
    assert main(["generate", str(clip), "-o", str(tmp_path), "--model", "debug", "-q", "--seed", "5"]) == 0
    monkeypatch.undo()
    assert got, "the streamed path was not taken"
    model = FoleyGen.from_pretrained("debug")
    assert torch.equal(torch.cat(got, dim=-1)[0], model.generate_codes([clip], seed=5)[0])
    offline = model.generate_list([clip], seed=5)[0]
    wav = read_audio(tmp_path / "clip.wav", model.sample_rate)
    assert wav.shape == offline.shape
    # the WAV's rounding (half a step) plus the streamed codec decode's float rounding at the joins
    assert (wav - offline).abs().max() <= STEP / 2 + 1e-5
    info = probe(tmp_path / "clip.mp4")
    assert info.video_codec == "h264" and info.audio_codec == "aac" and info.duration == pytest.approx(1.6, abs=0.05)
    with av.open(str(clip)) as a, av.open(str(tmp_path / "clip.mp4")) as b:  # video packets copied as they are
        src = [bytes(p) for p in a.demux(a.streams.video[0]) if p.size]
        out = [bytes(p) for p in b.demux(b.streams.video[0]) if p.size]
    assert src == out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_long_video_with_b_frames_is_muxed_in_decode_order(tmp_path_factory, tmp_path):
    """B-frames come in decode order, not presentation order: releasing each packet by its own time made
    decreasing DTS, which the MP4 muxer refused (every video longer than the model's window with B-frames,
    e.g. most phone videos and the bundled examples, failed with 'Invalid argument')."""
    clip = make_media(
        tmp_path_factory.mktemp("bframes") / "clip.mp4", duration=1.6, size=(48, 32), bframes=True, audio_rate=16000
    ).path
    with av.open(str(clip)) as c:  # the reordering is really there
        dts_pts = [(p.dts, p.pts) for p in c.demux(c.streams.video[0]) if p.size]
        assert [pts for _, pts in dts_pts] != sorted(pts for _, pts in dts_pts)
    assert main(["generate", str(clip), "-o", str(tmp_path), "--model", "debug", "-q"]) == 0
    with av.open(str(clip)) as a, av.open(str(tmp_path / "clip.mp4")) as b:  # video packets copied as they are
        src = [bytes(p) for p in a.demux(a.streams.video[0]) if p.size]
        out = [bytes(p) for p in b.demux(b.streams.video[0]) if p.size]
    assert src == out
    assert probe(tmp_path / "clip.mp4").duration == pytest.approx(1.6, abs=0.05)


def test_long_video_whose_codec_mp4_cannot_hold_is_re_encoded(tmp_path_factory, tmp_path):
    # FFV1 in Matroska, its audio stream first: the video is re-encoded to H.264 frame by frame, and the
    # source's packets (numbered differently from the output's streams) must not be copied beside it.
    mkv = make_media(tmp_path_factory.mktemp("mkv") / "clip.mkv", duration=1.6, size=(48, 32), audio_rate=16000).path
    with av.open(str(mkv)) as c:
        assert c.streams.video[0].codec_context.name == "ffv1" and c.streams.video[0].index != 0
    assert main(["generate", str(mkv), "-o", str(tmp_path), "--model", "debug", "-q"]) == 0
    info = probe(tmp_path / "clip.mp4")
    assert info.video_codec == "h264" and info.duration == pytest.approx(1.6, abs=0.05)
    with av.open(str(tmp_path / "clip.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 40


def test_wav_writer_is_valid_after_every_write(tmp_path):
    path = tmp_path / "g.wav"
    w = WavWriter(path, 16000, 1, staged=False)
    for n in (100, 0, 1600):
        w.write(torch.full((1, n), 0.25))
        assert read_audio(path, 16000).shape[-1] == w.data_bytes // 2  # readable before close
    w.close()
    assert read_audio(path, 16000).shape[-1] == 1700


def test_live_from_stdin_pcm_equals_the_offline_audio_and_a_stall_ends_it(clip, tmp_path):
    ts = tmp_path / "in.ts"
    make_media(ts, duration=1.6, size=(48, 32), codec="libx264")
    data = ts.read_bytes()
    model = FoleyGen.from_pretrained("debug")
    offline = model.generate_list([ts], seed=0)[0]
    out = tmp_path / "o.flac"
    p = _live(["-", "--pcm", "--out", out, "--mux", tmp_path / "o.mp4", "--stall-timeout", "2"], stdin=subprocess.PIPE)
    pcm, err = p.communicate(data, timeout=120)
    assert p.returncode == 0, err.decode()
    got = torch.frombuffer(bytearray(pcm), dtype=torch.int16).float()[None] / 32768
    assert got.shape == offline.shape and (got - offline).abs().max() <= STEP / 2 + 1e-5
    assert (read_audio(out, model.sample_rate) - offline).abs().max() <= STEP / 2 + 1e-5
    assert probe(tmp_path / "o.mp4").audio_codec == "aac"
    # the same stream cut halfway and held open: a clear line after the stall timeout, outputs finished
    p = _live(["-", "--out", tmp_path / "s.wav", "--stall-timeout", "1.5"], stdin=subprocess.PIPE)
    p.stdin.write(data[: len(data) // 2])
    p.stdin.flush()
    try:
        p.wait(timeout=120)  # stdin stays open (communicate would close it: an end, not a stall)
    finally:
        p.stdin.close()
    err = p.stderr.read().decode()
    assert p.returncode == 1 and "stalled" in err.splitlines()[-1]
    assert 0 < read_audio(tmp_path / "s.wav", model.sample_rate).shape[-1] < offline.shape[-1]


def test_ctrl_c_finishes_live_outputs(clip, tmp_path):
    wav, ts = tmp_path / "o.wav", tmp_path / "o.ts"
    p = _live([clip, "--realtime", "--out", wav, "--mux", ts, "-q"])
    deadline = time.monotonic() + 90
    while not (wav.exists() and wav.stat().st_size > 44 + 3200) and time.monotonic() < deadline:
        time.sleep(0.05)  # 0.1 s of audio written: the run is under way
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode()
    seconds = read_audio(wav, 16000).shape[-1] / 16000
    assert 0.1 <= seconds < 1.6
    info = probe(ts)
    assert info.has_video and info.audio_codec == "aac"


def test_full_mask_models_need_an_explicit_lookahead():
    full = FoleyGen._debug(visual_attention="full")
    with pytest.raises(ConfigError, match="--lookahead 1"):
        _allow_full(full, None)
    with pytest.raises(ConfigError, match="shorter"):
        _allow_full(full, 0.5)
    assert _allow_full(full, 1.0) is True
    assert _allow_full(FoleyGen._debug(), None) is False


def test_live_from_an_http_url_equals_the_offline_audio(tmp_path):
    """A network source (here HTTP from a server on loopback; RTSP/UDP/SRT open the same way, through
    FFmpeg's protocols) gives the offline audio; a URL nobody serves is one clear line."""
    import functools
    import http.server
    import threading

    ts = tmp_path / "www" / "in.ts"
    ts.parent.mkdir()
    make_media(ts, duration=1.2, size=(48, 32), codec="libx264")
    offline = FoleyGen.from_pretrained("debug").generate_list([ts], seed=0)[0]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ts.parent))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        out = tmp_path / "o.wav"
        p = _live([f"{url}/in.ts", "--out", out, "-q"])
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        assert (read_audio(out, 16000) - offline).abs().max() <= STEP / 2 + 1e-5
        p = _live([f"{url}/missing.ts", "--out", tmp_path / "m.wav", "-q"])
        _, err = p.communicate(timeout=120)
        lines = err.decode().strip().splitlines()
        assert p.returncode != 0 and len(lines) == 1 and "missing.ts" in lines[0], lines
        assert not (tmp_path / "m.wav").exists()
    finally:
        server.shutdown()
        server.server_close()


def test_a_frame_is_rendered_before_it_is_handed_on_to_another_thread(clip, monkeypatch):
    """PyAV keeps one scaler per frame and it is not thread-safe: the reader must be done scaling a frame
    before the muxer's thread may scale it to re-encode (both at once deadlocked in swscale in CI)."""
    import foleygen.io.video as video
    import foleygen.sources as sources

    log: list[tuple[str, int]] = []
    render, put = video._Plan.render, sources.FrameSource._put

    def logged_render(plan, frame, out):
        render(plan, frame, out)
        log.append(("rendered", id(frame)))

    def logged_put(source, item):
        if getattr(item, "kind", None) == "decoded":
            log.append(("handed on", id(item.payload)))
        put(source, item)

    monkeypatch.setattr(video._Plan, "render", logged_render)
    monkeypatch.setattr(sources.FrameSource, "_put", logged_put)
    with sources.FrameSource(str(clip), fps=25, decoded=True) as source:
        kinds = [event.kind for event in source.events()]
    handed = [i for i, (what, _) in enumerate(log) if what == "handed on"]
    assert kinds.count("decoded") == len(handed) >= 40 and kinds.count("frame") == 40
    for i in handed:  # the entry just before each hand-on is that very frame's rendering
        assert log[i - 1] == ("rendered", log[i][1])


def test_a_stream_arriving_faster_than_real_time_is_not_late(tmp_path):
    """A file piped to stdin arrives at once: its frames are due at their place on the source's clock,
    not at the moment they came in, so a machine that keeps ahead of real time is not 'behind' (before:
    the lag grew with the burst and the degrade rule dropped guidance), and no latency is negative."""
    import json

    ts = tmp_path / "in.ts"
    make_media(ts, duration=30.0, size=(48, 32), codec="libx264")  # ~2 s of work: arrived at once, its lag grew
    p = _live(["-", "--out", tmp_path / "o.wav", "--json", "--max-lag", "0.5"], stdin=subprocess.PIPE)
    _, err = p.communicate(ts.read_bytes(), timeout=120)
    assert p.returncode == 0, err.decode()
    summary = json.loads(err.decode().strip().splitlines()[-1])
    assert summary["real_time_factor"] > 1.5  # the debug model keeps well ahead of real time
    assert summary["degraded"] == [] and summary["latency_ms"]["p50"] >= 0.0
