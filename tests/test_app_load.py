"""The web demo under load and attack (issue 37, item 4), on loopback with the tiny debug model.

Upload and duration limits over HTTP, non-video uploads, a full queue (429 "busy", the rest served,
queue positions seen), temporary files gone after each request and at shutdown, and path traversal in
any path or query parameter.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
gradio_client = pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.utils import Status  # noqa: E402
from test_app import make_video  # noqa: E402

from foleygen.app import MB, launch  # noqa: E402
from foleygen.app_server import DemoGuard, busy_message, is_traversal, publish_results  # noqa: E402

SECRET = "the-secret-content-4c1f9e"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


class Server:
    """The demo on a free loopback port, with its own Gradio cache folder under ``tmp_path``."""

    def __init__(self, tmp_path: Path, **kwargs) -> None:
        self.cache = tmp_path / "gradio-cache"
        self.previous = os.environ.get("GRADIO_TEMP_DIR")
        os.environ["GRADIO_TEMP_DIR"] = str(self.cache)
        self.port = _free_port()
        settings = {"max_upload_mb": 1, "max_duration_s": 2, "examples": 0, **kwargs}
        self.app = launch(
            "127.0.0.1", self.port, "debug", work_root=tmp_path / "root", block=False, quiet=True, **settings
        )
        self.service = self.app.foleygen_service
        self.url = f"http://127.0.0.1:{self.port}/"

    def client(self, downloads: Path) -> Client:
        return Client(self.url, verbose=False, analytics_enabled=False, download_files=str(downloads))

    def raw(self, method: str, target: str, body: bytes | None = None, headers: dict | None = None):
        """One request with the target sent exactly as written (no client-side ``..`` clean-up)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for key, value in (headers or {}).items():
                conn.putheader(key, value)
            conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def close(self) -> None:
        self.app.close(verbose=False)
        if self.previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = self.previous


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    try:
        yield srv
    finally:
        srv.close()


def _generate(client: Client, video: Path, seed: int = 0, **kwargs):
    return client.submit(handle_file(str(video)), "debug", 3.0, 50, 1.0, seed, 0, api_name="/generate", **kwargs)


def _multipart(name: str, data: bytes) -> tuple[bytes, dict]:
    boundary = "foleygenboundary7d3a"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# ---- limits and bad uploads over HTTP ---------------------------------------------------------------


def test_an_oversize_upload_is_413_with_the_limit_and_leaves_nothing(server):
    body, headers = _multipart("big.mp4", b"\0" * (MB + 1))
    status, _, reply = server.raw("POST", "/gradio_api/upload", body, headers)
    assert status == 413
    assert json.loads(reply)["detail"] == "upload refused: the file is larger than this demo's limit of 1 MB"
    assert _files(server.cache) == []  # the partial upload was deleted
    body, headers = _multipart("fits.mp4", b"\0" * MB)  # exactly at the limit: accepted
    status, _, reply = server.raw("POST", "/gradio_api/upload", body, headers)
    assert status == 200 and len(json.loads(reply)) == 1


def test_an_overlong_video_and_non_videos_get_one_clear_line(server, tmp_path):
    from foleygen.io import write_audio

    rng = np.random.default_rng(0)
    cases = {
        make_video(tmp_path / "long.mp4", seconds=3.0): "long.mp4: video is 3.0 s long; this demo accepts at most 2 s",
        tmp_path / "noise.mp4": "noise.mp4: not a readable video",
        tmp_path / "notes.txt": "notes.txt: is a text file, not a video",
        tmp_path / "sound.wav": "sound.wav: has no video stream",
    }
    (tmp_path / "noise.mp4").write_bytes(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    (tmp_path / "notes.txt").write_text("just some text, not a video\n" * 100)
    import torch

    write_audio(tmp_path / "sound.wav", torch.zeros(1, 16000), 16000)
    client = server.client(tmp_path / "downloads")
    for path, expected in cases.items():
        with pytest.raises(Exception) as err:  # gradio_client's AppError carries the page's message
            _generate(client, path).result(timeout=120)
        message = str(err.value)
        assert expected in message and "\n" not in message and str(tmp_path) not in message
    # The server is fine: a good video is served right after.
    out_video, *_ = _generate(client, make_video(tmp_path / "ok.mp4")).result(timeout=120)
    assert Path(out_video["video"] if isinstance(out_video, dict) else out_video).is_file()


# ---- many users at once ------------------------------------------------------------------------------


def test_a_full_queue_refuses_with_429_and_serves_everyone_it_accepted(tmp_path):
    srv = Server(tmp_path, queue_size=2, workers=1)
    service = srv.service
    started, release = threading.Event(), threading.Event()
    real_generate = service.generate

    def held_generate(*args, **kwargs):
        started.set()
        assert release.wait(120), "the test never released the first generation"
        return real_generate(*args, **kwargs)

    service.generate = held_generate  # the first request holds the worker until every client has asked
    try:
        video = make_video(tmp_path / "clip.mp4")
        clients = [srv.client(tmp_path / f"downloads{i}") for i in range(7)]
        first = _generate(clients[0], video, seed=0)
        assert started.wait(60)
        service.generate = real_generate
        others = [_generate(c, video, seed=i) for i, c in enumerate(clients[1:], start=1)]
        deadline = time.monotonic() + 60
        while not all(j.done() or j.status().code == Status.IN_QUEUE for j in others):
            assert time.monotonic() < deadline, "requests neither queued nor refused"
            time.sleep(0.05)
        ranks = {i: j.status().rank for i, j in enumerate(others) if not j.done()}
        refused, waiting = [], []
        for job in others:
            if job.done():
                refused.append(job)
            else:
                waiting.append(job)
        release.set()
        served = [job.result(timeout=120) for job in [first, *waiting]]
        # Still up: a new visitor is served once the queue has room again.
        after = _generate(srv.client(tmp_path / "downloads-after"), video, seed=99).result(timeout=120)
        status, headers, body = srv.raw(
            "POST", "/gradio_api/queue/join", json.dumps({}).encode(), {"Content-Type": "application/json"}
        )
    finally:
        release.set()
        srv.close()
    # One generation running and queue_size=2 waiting: the other four were refused at once.
    assert len(waiting) == 2 and len(refused) == 4
    assert sorted(ranks.values()) == [0, 1]  # each waiting client saw its own place in the queue
    for job in refused:
        err = job.exception()
        assert err.response.status_code == 429
        assert err.response.headers["retry-after"] == "30"
        assert err.response.json()["detail"] == busy_message(2)
    assert busy_message(2).startswith("the demo is busy: 2 requests are already waiting")
    for out_video, _, out_audio, plot, summary in [*served, after]:
        assert Path(out_video["video"] if isinstance(out_video, dict) else out_video).is_file()
        assert Path(out_audio).suffix == ".wav" and Path(plot).suffix == ".png" and "Done" in summary
    assert status != 200 and status != 500  # a malformed join is refused, not a crash


# ---- temporary files ---------------------------------------------------------------------------------


def test_no_temporary_file_outlives_a_request_or_the_server(tmp_path):
    srv = Server(tmp_path)
    service = srv.service
    try:
        client = srv.client(tmp_path / "downloads")
        out_video, _, out_audio, _, _ = _generate(client, make_video(tmp_path / "clip.mp4")).result(timeout=120)
        # The visitor got the files; the demo's own folders are already empty.
        assert Path(out_audio).is_file() and Path(out_audio).stat().st_size > 44
        assert _files(service.work_dir) == [] and _files(service.results_dir) == []
        kept = _files(srv.cache)  # the upload and the served results, until delete_cache's age or shutdown
        assert any(p.name.endswith("_foley.wav") for p in kept) and any(p.name == "clip.mp4" for p in kept)
        leftover = service.work_dir / "req-crashed" / "input.mp4"  # what a killed request could leave
        leftover.parent.mkdir()
        leftover.write_bytes(b"x")
    finally:
        srv.close()
    assert _files(service.work_dir) == [] and _files(service.results_dir) == []
    assert _files(srv.cache) == []
    assert [p for p in srv.cache.rglob("*")] == []  # no empty per-file folders either


def test_publish_results_moves_and_leaves_no_result_folder(tmp_path):
    from foleygen.app import DemoResult

    results = tmp_path / "results"
    folder = results / "abc"
    folder.mkdir(parents=True)
    files = [folder / name for name in ("x_foley.mp4", "x_foley.wav", "x_alignment.png")]
    for f in files:
        f.write_bytes(f.name.encode())
    moved = publish_results(DemoResult(*files, summary="s"), tmp_path / "cache", results)
    assert not folder.exists() and moved.audio.read_bytes() == b"x_foley.wav"
    assert moved.video.parent.parent == (tmp_path / "cache").resolve()
    with pytest.raises(ValueError, match="not a result folder"):
        publish_results(DemoResult(*[tmp_path / "x"] * 3, summary="s"), tmp_path / "cache", results)


# ---- paths -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, bad",
    [
        ("/gradio_api/file=../../etc/passwd", True),
        ("/gradio_api/file=%2e%2e/%2e%2e/etc/passwd", True),
        ("/gradio_api/file=%252e%252e%252fetc", True),
        ("/static/..\\..\\win.ini", True),
        ("upload_id=..&x=1", True),
        ("name=%2E%2E%2Fsecret", True),
        ("/a%00b", True),
        ("/gradio_api/file=/tmp/gradio/abc/clip..mp4", False),
        ("/gradio_api/file=/tmp/gradio/abc/.../x", False),
        ("session_hash=abc&fn_index=2", False),
        ("", False),
    ],
)
def test_traversal_is_recognised(text, bad):
    assert is_traversal(text) is bad


def test_no_path_parameter_reaches_outside_the_temp_dirs(server, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    private = server.service.work_dir / "private.txt"  # inside the work root, but never served
    private.write_text(SECRET)
    cache = server.cache.resolve()
    rel = os.path.relpath(secret, cache)
    targets = [
        f"/gradio_api/file={secret}",
        f"/gradio_api/file={private}",
        f"/gradio_api/file={cache}/../secret.txt",
        f"/gradio_api/file={cache}/%2e%2e/secret.txt",
        f"/gradio_api/file={cache}/%252e%252e/secret.txt",
        f"/gradio_api/file={rel}",
        "/gradio_api/file=" + rel.replace("..", "%2e%2e").replace("/", "%2f"),
        f"/gradio_api/file={cache}\\..\\secret.txt",
        f"/gradio_api/file=http://127.0.0.1:{server.port}/gradio_api/file={secret}",
        f"/file={secret}",
        "/static/../../../../../../" + str(secret).lstrip("/"),
        "/assets/..%2f..%2f..%2f..%2f..%2f..%2f" + str(secret).lstrip("/"),
        f"/gradio_api/upload_progress?upload_id=../../{rel}",
        f"/gradio_api/stream/..%2f..%2f{rel}/playlist.m3u8",
        f"/live/..%2f..%2f{rel}",
        f"/custom_component/x/client/../../../../{rel}",
        f"/favicon.ico?path={secret}%00",
    ]
    for target in targets:
        status, _, body = server.raw("GET", target)
        assert SECRET.encode() not in body, target
        assert status in (400, 403, 404, 405), (target, status)
    # Writing: an upload named with directory parts lands inside Gradio's cache, nowhere else.
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    for name in ("../../../evil.mp4", "/tmp/evil.mp4", "..%2f..%2fevil.mp4", "..\\..\\evil.mp4"):
        body, headers = _multipart(name, b"not a video")
        status, _, reply = server.raw("POST", "/gradio_api/upload", body, headers)
        assert status == 200, name
        (stored,) = json.loads(reply)
        assert Path(stored).resolve().is_relative_to(cache), (name, stored)
    status, _, _ = server.raw("POST", "/gradio_api/upload?upload_id=../../evil", *_multipart("a.mp4", b"x"))
    assert status == 400
    new = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert all(p.resolve().is_relative_to(cache) for p in new), new
    assert not Path("/tmp/evil.mp4").exists()


def test_guard_refuses_traversal_and_rewrites_only_a_full_queue():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    async def join(request):
        body = await request.body()  # what the guard read must still reach the route, unchanged
        if "detail" not in request.query_params:
            return JSONResponse({"echo": body.decode()})
        return JSONResponse({"detail": request.query_params["detail"]}, status_code=503)

    async def echo(websocket):
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    inner = Starlette(
        routes=[
            Route("/gradio_api/queue/join", join, methods=["POST"]),
            Route("/ok", lambda r: PlainTextResponse("fine")),
            WebSocketRoute("/ws", echo),
        ]
    )
    client = TestClient(DemoGuard(inner, queue_size=5, max_upload_mb=2, upload_checks=frozenset({3})))
    full_url = "/gradio_api/queue/join?detail=Queue is full. Max size is 5 and size is 5."
    full = client.post(full_url)
    assert full.status_code == 429 and full.headers["retry-after"] == "30"
    assert full.json()["detail"] == busy_message(5)
    # The upload check's refusal says the video is uploaded; other events (and odd bodies) get the plain line.
    for body, expected in [
        ({"fn_index": 3, "data": [None]}, busy_message(5, upload=True)),
        ({"fn_index": 1}, busy_message(5)),
        ({"fn_index": "3"}, busy_message(5)),
        ([3], busy_message(5)),
    ]:
        refused = client.post(full_url, json=body)
        assert refused.status_code == 429 and refused.json()["detail"] == expected, body
    for junk in (b"not json", b"\xff\xfe", b"[" * 200_000, b"x" * (2 << 20)):
        refused = client.post(full_url, content=junk)
        assert refused.status_code == 429 and refused.json()["detail"] == busy_message(5)
    assert busy_message(5, upload=True).endswith("your video is uploaded, press Generate soundtrack in 30 s")
    assert busy_message(1).startswith("the demo is busy: 1 request is already waiting")
    echoed = client.post("/gradio_api/queue/join", json={"fn_index": 3, "data": ["x" * 70_000]})
    assert echoed.status_code == 200 and json.loads(echoed.json()["echo"]) == {"fn_index": 3, "data": ["x" * 70_000]}
    big = {"fn_index": 3, "data": ["x" * (2 << 20)]}  # past the guard's parse bound: passed on whole, unparsed
    echoed = client.post("/gradio_api/queue/join", json=big)
    assert echoed.status_code == 200 and json.loads(echoed.json()["echo"]) == big
    stopped = client.post("/gradio_api/queue/join?detail=Queue is stopped.")
    assert stopped.status_code == 503 and stopped.json()["detail"] == "Queue is stopped."
    assert client.get("/ok?name=clip..mp4").text == "fine"
    refused = client.get("/ok?path=%2e%2e%2fsecret")
    assert refused.status_code == 400 and "outside the demo's files" in refused.json()["detail"]
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "hello"
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/ws?f=../x") as ws:
        ws.receive_text()
    assert closed.value.code == 1008
