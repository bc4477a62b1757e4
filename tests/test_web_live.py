"""The live page's server side without a browser: the timeline and degrade rule of ``LiveStream``, and
the ``/live`` routes over a real WebSocket (Starlette's test client).

Invariant: every segment the server produces is exactly ``FoleyGen.stream`` on the frames it used.
"""

import json
import time

import numpy as np
import pytest
import torch

from foleygen.api import FoleyGen
from foleygen.errors import MediaError
from foleygen.web_live import AUDIO_HEADER, FRAME_HEADER, LivePage, LiveStream, audio_message, parse_frame

starlette = pytest.importorskip("starlette")
from starlette.applications import Starlette  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

PERIOD_MS = 40.0  # the debug model's encoder reads 25 frames/s


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The debug model's tensors are tiny: a second thread only adds waiting (badly so on a busy machine).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    return FoleyGen._debug(duration=1.0)


def square(i, side=32):
    frame = torch.zeros(side, side, 3, dtype=torch.uint8)
    x = (i * 3) % (side - 8)
    frame[8:16, x : x + 8] = 255
    return frame


def offline(model, frames):
    return torch.cat(list(model.stream(iter(frames), fps=25.0, seed=0)), dim=-1)


def audio_by_offset(events):
    return [(e["offset"], e["wav"]) for e in events if e["type"] == "audio"]


def check_contiguous(chunks, start):
    at = start
    for offset, wav in chunks:
        assert offset == at
        at += wav.shape[-1]
    return at


def test_timeline_drops_repeats_and_skips(model, tmp_path):
    live = LiveStream(model, max_lag_s=0.2, record_dir=tmp_path)  # 5 frames of lag allowed
    events = []

    def feed(slot, image):
        live.offer(1000.0 + slot * PERIOD_MS, square(image))
        events.extend(live.step())

    for k in range(3):
        feed(k, k)
    feed(2, 99)  # rule 1: slot 2 is taken, dropped
    feed(5, 5)  # rule 2: slots 3 and 4 repeat frame 2
    feed(25, 25)  # rule 3: a 19-frame stall, so a new segment starts at slot 25
    for k in range(26, 31):
        feed(k, k)
    events += live.finish()
    counts = live.stats()
    assert (counts["used"], counts["repeated"], counts["dropped"]) == (10, 2, 1)
    assert (counts["resyncs"], counts["skipped_frames"], counts["segments"]) == (1, 19, 2)
    skips = [e for e in events if e["type"] == "skip"]
    assert skips == [{"type": "skip", "from_s": 6 / 25, "to_s": 1.0}]

    chunks = audio_by_offset(events)
    first = [c for c in chunks if c[0] < 16000]
    second = [c for c in chunks if c[0] >= 16000]
    assert check_contiguous(first, 0) == 6 * 640  # six frames of 640 samples (16 kHz / 25 fps)
    assert check_contiguous(second, 16000) == 16000 + 6 * 640

    records = sorted(tmp_path.glob("live_*.npz"))
    assert len(records) == 2
    expected_frames = [
        [square(0), square(1), square(2), square(2), square(2), square(5)],
        [square(k) for k in range(25, 31)],
    ]
    for record, frames, got in zip(records, expected_frames, (first, second), strict=True):
        data = np.load(record)
        assert bool(data["ended"]) and data["seed"] == 0
        assert torch.equal(torch.from_numpy(data["frames"]), torch.stack(frames))
        sent = torch.cat([w for _, w in got], dim=-1)
        assert torch.equal(torch.from_numpy(data["audio"]), sent)
        assert torch.allclose(sent, offline(model, frames), atol=1e-6, rtol=0)


def test_a_model_that_falls_behind_skips_to_the_newest_frame(model):
    live = LiveStream(model, max_lag_s=0.2)
    for k in range(20):  # twenty frames arrive while the first is processed
        live.offer(k * PERIOD_MS, square(k))
    events = live.step() + live.step()
    assert live.pending() == 0
    counts = live.stats()
    assert (counts["used"], counts["dropped"], counts["skipped_frames"], counts["resyncs"]) == (2, 18, 18, 1)
    assert [e for e in events if e["type"] == "skip"] == [{"type": "skip", "from_s": 1 / 25, "to_s": 19 / 25}]
    tail = audio_by_offset(live.finish())
    assert tail[-1][0] + tail[-1][1].shape[-1] == 20 * 640  # the audio ends where the newest frame does


def test_wire_formats_round_trip():
    frame = torch.arange(2 * 3 * 3, dtype=torch.uint8).reshape(2, 3, 3)
    t_ms, w, h, back = parse_frame(FRAME_HEADER.pack(12.5, 3, 2, 7) + frame.numpy().tobytes(), None, 0)
    assert (t_ms, w, h) == (12.5, 3, 2) and torch.equal(back, frame)
    with pytest.raises(MediaError, match="frame 4: 26 bytes, expected 34 for 3x2 RGB"):
        parse_frame(FRAME_HEADER.pack(0.0, 3, 2, 0) + b"\0" * 10, None, 4)
    with pytest.raises(MediaError, match="frame 1: 3x2, but the stream started at 4x4"):
        parse_frame(FRAME_HEADER.pack(0.0, 3, 2, 0) + frame.numpy().tobytes(), (4, 4), 1)
    wav = torch.tensor([[0.5, -0.25], [1.0, 0.0]])
    msg = audio_message(640, wav)
    offset, n, c = AUDIO_HEADER.unpack_from(msg)
    assert (offset, n, c) == (640.0, 2, 2)
    assert np.frombuffer(msg, "<f4", offset=AUDIO_HEADER.size).reshape(c, n).tolist() == wav.tolist()


def client_for(model, **options):
    page = LivePage(lambda: model, model_name="debug", **options)
    return TestClient(Starlette(routes=page.routes())), page


def frame_message(slot, image):
    return FRAME_HEADER.pack(slot * PERIOD_MS, 32, 32, slot) + square(image).numpy().tobytes()


def test_the_socket_streams_the_offline_model(model):
    client, page = client_for(model, max_lag_s=5.0)  # the frames come in one burst: no skipping here
    html = client.get("/live").text
    assert 'src="/live/live.js"' in html and 'data-base="/live"' in html
    assert "getUserMedia" in client.get("/live/live.js").text
    info = client.get("/live/info").json()
    assert info["refused"] is None and info["fps"] == 25.0 and info["frame"] == {"mode": "crop", "side": 32}
    assert info["latency"]["total"] == pytest.approx(sum(v for k, v in info["latency"].items() if k != "total"))

    chunks, texts = [], []
    with client.websocket_connect("/live/ws") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["sample_rate"] == 16000
        for k in range(30):
            ws.send_bytes(frame_message(k, k))
        ws.send_text(json.dumps({"type": "stop"}))
        while True:
            msg = ws.receive()
            if msg.get("bytes") is not None:
                offset, n, c = AUDIO_HEADER.unpack_from(msg["bytes"])
                pcm = np.frombuffer(msg["bytes"], "<f4", offset=AUDIO_HEADER.size).reshape(c, n)
                chunks.append((int(offset), torch.from_numpy(pcm.copy())))
            else:
                texts.append(json.loads(msg["text"]))
                if texts[-1]["type"] == "ended":
                    break
    assert check_contiguous(chunks, 0) == 30 * 640
    assert texts[-1]["used"] == 30 and texts[-1]["resyncs"] == 0
    streamed = torch.cat([w for _, w in chunks], dim=-1)
    assert torch.allclose(streamed, offline(model, [square(k) for k in range(30)]), atol=1e-6, rtol=0)
    assert page.active == 0  # the session was released


def test_one_session_at_a_time_and_bad_frames_get_a_clear_message(model):
    client, page = client_for(model, max_sessions=1)
    with client.websocket_connect("/live/ws") as first:
        assert first.receive_json()["type"] == "hello"
        with client.websocket_connect("/live/ws") as second:
            busy = second.receive_json()
            assert busy["type"] == "busy" and "busy: 1 live session already running" in busy["message"]
        first.send_bytes(b"\0" * 10)
        error = first.receive_json()
        assert error == {"type": "error", "message": "frame 0: a message of 10 bytes is shorter than its header"}
    assert page.active == 0


def test_a_full_mask_model_is_refused_clearly():
    client, _ = client_for(FoleyGen._debug(visual_attention="full"))
    info = client.get("/live/info").json()
    assert info["refused"].startswith("model 'debug' cannot run live: this model's visual attention is 'full'")
    with client.websocket_connect("/live/ws") as ws:
        msg = ws.receive_json()
    assert msg["type"] == "error" and "generate offline instead" in msg["message"]


def test_a_page_that_goes_away_frees_its_session(model, tmp_path):
    client, page = client_for(model, max_lag_s=5.0, record_dir=tmp_path)
    with client.websocket_connect("/live/ws") as ws:
        ws.receive_json()
        for k in range(12):
            ws.send_bytes(frame_message(k, k))
        first = ws.receive()  # some audio came back; then the page closes without "stop"
        assert first.get("bytes") is not None
    deadline = time.monotonic() + 10
    while (page.active or not list(tmp_path.glob("live_*.npz"))) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert page.active == 0
    (record,) = tmp_path.glob("live_*.npz")
    data = np.load(record)
    assert not bool(data["ended"])
    frames = torch.from_numpy(data["frames"])
    sent = torch.from_numpy(data["audio"])
    # What it sent before the page left is the start of what the offline model makes of those frames.
    assert torch.allclose(sent, offline(model, list(frames))[..., : sent.shape[-1]], atol=1e-6, rtol=0)
    with client.websocket_connect("/live/ws") as ws:  # the slot is free again
        assert ws.receive_json()["type"] == "hello"


def test_sockets_opened_by_other_sites_are_refused(model):
    client, page = client_for(model)
    with client.websocket_connect("/live/ws", headers={"origin": "http://evil.example"}) as ws:
        assert ws.receive_json() == {"type": "error", "message": "the live page only serves pages from this server"}
    assert page.active == 0
