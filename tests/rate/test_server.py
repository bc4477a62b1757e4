"""The rating server over real HTTP: the rater flow, resume, refusals (tokens, path tricks, bad answers),
ranges, the admin view, and a SIGKILL in the middle of answering."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from foleygen.rate.server import RateServer
from foleygen.rate.store import DB_NAME, Store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(study):
    srv = RateServer(study, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv_or_port, method, path, body=None, headers=None):
    port = srv_or_port if isinstance(srv_or_port, int) else srv_or_port.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    conn.request(method, path, body=data, headers=hdrs)
    response = conn.getresponse()
    out = response.status, dict(response.getheaders()), response.read()
    conn.close()
    return out


def tokens(study):
    return {r["name"]: r["token"] for r in Store(study / DB_NAME).raters()}


def answer_body(state, value=4, choice="left"):
    trial = state["trial"]
    if trial["kind"] == "mos":
        return {"position": trial["position"], "values": {q["key"]: value for q in trial["questions"]}, "elapsed_ms": 5}
    return {"position": trial["position"], "choice": choice, "elapsed_ms": 5}


def test_a_rater_answers_everything_and_resumes(server, study):
    token = tokens(study)["alice"]
    assert b"personal link" in request(server, "GET", "/")[2]
    status, headers, page = request(server, "GET", f"/r/{token}")
    assert status == 200 and b"/static/rate.js" in page and headers["Referrer-Policy"] == "no-referrer"
    state = json.loads(request(server, "GET", f"/api/r/{token}/state")[2])
    assert state["done"] == 0 and state["total"] == 17 and not state["finished"]
    for _ in range(3):
        status, _, body = request(server, "POST", f"/api/r/{token}/answer", answer_body(state))
        assert status == 200
        state = json.loads(body)
    # resume: a fresh load continues at the first unanswered trial
    again = json.loads(request(server, "GET", f"/api/r/{token}/state")[2])
    assert again["done"] == 3 and again["trial"] == state["trial"] and again["trial"]["position"] == 3
    choices = {}
    while not state["finished"]:
        if state["trial"]["kind"] == "ab":
            choices[state["trial"]["position"]] = "left" if state["trial"]["position"] % 2 else "right"
        body = answer_body(state, choice=choices.get(state["trial"]["position"], "left"))
        state = json.loads(request(server, "POST", f"/api/r/{token}/answer", body)[2])
    assert state["done"] == state["total"] == 17 and state["trial"] is None
    store = Store(study / DB_NAME)
    assert store.integrity_ok()
    # the stored A/B value names the trial's clip that was preferred, whatever side it was shown on
    rid = store.rater_by_token(token)["id"]
    for position, choice in choices.items():
        a = store.assignment(rid, position)
        value = store.query("SELECT value FROM answers WHERE rater_id = ? AND trial_id = ?", (rid, a["trial_id"]))
        assert value[0]["value"] == int((choice == "right") != bool(a["swapped"]))
    # the other rater is untouched and cannot see alice's progress
    bob = json.loads(request(server, "GET", f"/api/r/{tokens(study)['bob']}/state")[2])
    assert bob["done"] == 0 and bob["rater"] == "bob" and "alice" not in json.dumps(bob)


def test_media_are_served_with_ranges(server, study):
    token = tokens(study)["alice"]
    state = json.loads(request(server, "GET", f"/api/r/{token}/state")[2])
    clip = state["trial"]["clips"][0]
    status, headers, body = request(server, "GET", clip)
    assert status == 200 and headers["Content-Type"] == "video/mp4" and body[4:8] == b"ftyp"
    size = len(body)
    status, headers, part = request(server, "GET", clip, headers={"Range": "bytes=10-109"})
    assert status == 206 and part == body[10:110] and headers["Content-Range"] == f"bytes 10-109/{size}"
    status, _, tail = request(server, "GET", clip, headers={"Range": "bytes=-50"})
    assert status == 206 and tail == body[-50:]
    assert request(server, "GET", clip, headers={"Range": f"bytes={size}-"})[0] == 416
    # the clip's key is no use with another token that is not valid
    assert request(server, "GET", clip.replace(token, "x" * len(token)))[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/r/not-a-token", "/api/r/not-a-token/state", "/admin/wrong", "/api/admin/wrong/progress",
        "/static/../study.db", "/static/%2e%2e/study.db", "/static/..%2fstudy.db", "/study.db", "/media/0000-00.mp4",
        "/m/{token}/../../study.db", "/m/{token}/%2e%2e%2fstudy.db", "/m/{token}/0000-00.mp4", "/m/{token}/ffff",
        "//etc/passwd", "/static//etc/passwd", "/m/{token}//etc/passwd", "/m/{token}/%2Fetc%2Fpasswd",
        "/static/rate.js/..", "/r/{token}/../../../etc/passwd", "/r/{token}%00", "/api/r/{token}/../../admin",
    ],
)  # fmt: skip
def test_bad_tokens_and_path_tricks_are_404(server, study, path):
    token = tokens(study)["alice"]
    status, _, body = request(server, "GET", path.format(token=token))
    assert status == 404
    assert b"SQLite" not in body and b"root:" not in body


def test_absolute_request_target_is_refused(server):
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as s:
        s.sendall(b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b" 404 " in s.recv(200)
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as s:
        s.sendall(b"GET http://127.0.0.1/../study.db HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b" 404 " in s.recv(200)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"position": "0", "values": {}}, "position"),
        ({"position": 999, "values": {}}, "no such trial"),
        ({"position": 0, "values": {"quality": 3}}, "exactly"),
        ({"position": 0, "values": {"quality": 6, "relevance": 3, "sync": 3}}, "1 to 5"),
        ({"position": 0, "values": {"quality": True, "relevance": 3, "sync": 3}}, "1 to 5"),
        ({"position": 0, "values": {"quality": 3, "relevance": 3, "sync": 3}, "elapsed_ms": -1}, "elapsed"),
        (b"not json", "JSON object"),
        (b"[1, 2]", "JSON object"),
    ],
)
def test_bad_answers_are_400_and_store_nothing(server, study, body, message):
    token = tokens(study)["alice"]
    status, _, reply = request(server, "POST", f"/api/r/{token}/answer", body)
    assert status == 400 and message in json.loads(reply)["error"]
    assert Store(study / DB_NAME).query("SELECT COUNT(*) FROM answers")[0][0] == 0


def test_posting_with_a_bad_token_or_too_big_body(server, study):
    good = {"position": 0, "values": {"quality": 3, "relevance": 3, "sync": 3}}
    assert request(server, "POST", "/api/r/nope/answer", good)[0] == 404
    assert request(server, "POST", f"/api/admin/{server.meta['admin_secret']}/progress", good)[0] == 404
    token = tokens(study)["alice"]
    assert request(server, "POST", f"/api/r/{token}/answer", b"x" * 9000)[0] == 413


def test_admin_sees_progress_but_no_answers(server, study):
    token = tokens(study)["alice"]
    state = json.loads(request(server, "GET", f"/api/r/{token}/state")[2])
    request(server, "POST", f"/api/r/{token}/answer", answer_body(state, value=2))
    secret = server.meta["admin_secret"]
    assert request(server, "GET", f"/admin/{secret}")[0] == 200
    data = json.loads(request(server, "GET", f"/api/admin/{secret}/progress")[2])
    by_name = {r["name"]: r for r in data["raters"]}
    assert by_name["alice"]["done"] == 1 and by_name["bob"]["done"] == 0 and by_name["alice"]["last_answer"]
    assert by_name["alice"]["link"] == f"/r/{token}"
    assert "values" not in json.dumps(data) and "value" not in json.dumps(data)


def test_the_log_masks_tokens(study, capsys):
    srv = RateServer(study, "127.0.0.1", 0, quiet=False)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        token = tokens(study)["alice"]
        request(srv, "GET", f"/api/r/{token}/state")
        request(srv, "GET", f"/admin/{srv.meta['admin_secret']}")
    finally:
        srv.shutdown()
        srv.server_close()
    err = capsys.readouterr().err
    assert "/api/r/" in err and token not in err and srv.meta["admin_secret"] not in err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_sigkill_mid_answering_loses_nothing_committed(study):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "foleygen", "rate", "serve", str(study), "--port", str(port), "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    token = tokens(study)["alice"]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                state = json.loads(request(port, "GET", f"/api/r/{token}/state")[2])
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        acked: list[int] = []
        stop = threading.Event()

        def answer_loop(state):
            while not stop.is_set() and not state["finished"]:
                body = answer_body(state)
                try:
                    status, _, reply = request(port, "POST", f"/api/r/{token}/answer", body)
                except OSError:
                    return  # the server died while this request was in flight: not acknowledged
                assert status == 200
                acked.append(body["position"])
                state = json.loads(reply)

        worker = threading.Thread(target=answer_loop, args=(state,))
        worker.start()
        while len(acked) < 5 and worker.is_alive():
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # the process this test started, in the middle of the loop
        proc.wait(timeout=10)
        stop.set()
        worker.join(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(acked) >= 5
    store = Store(study / DB_NAME)
    assert store.integrity_ok()  # SQLite's check, and every stored trial has all its questions
    rid = store.rater_by_token(token)["id"]
    done, _, _ = store.progress_of(rid)
    assert done >= len(acked)  # every acknowledged answer is there (one in flight may be too)
    for position in acked:
        trial = store.assignment(rid, position)["trial_id"]
        assert store.query("SELECT COUNT(*) FROM answers WHERE rater_id = ? AND trial_id = ?", (rid, trial))[0][0] >= 1
