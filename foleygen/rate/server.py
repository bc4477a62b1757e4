"""The rating web server (standard library ``http.server``, one thread per request).

Routes (nothing in a request is ever used as a file path: pages come from a fixed table loaded at
start, media are looked up by opaque key in the database and must belong to the asking rater):

* ``GET /r/TOKEN``: the rating page; ``GET /api/r/TOKEN/state``: progress and the next trial;
  ``POST /api/r/TOKEN/answer``: ``{"position", "values": {question: 1..5}}`` (MOS) or
  ``{"position", "choice": "left"|"right"}`` (A/B), plus ``elapsed_ms``; replies with the next state
  only after the answer is committed. ``GET /m/TOKEN/KEY``: a clip (HTTP ranges, for seeking).
* ``GET /admin/SECRET``: the progress page; ``GET /api/admin/SECRET/progress``: its data.

Unknown tokens, other raters' clips, ``..``, percent-encoding and anything else not in the table are
the same plain 404. Tokens are masked in the request log.
"""

from __future__ import annotations

import hmac
import json
import re
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from foleygen.rate.store import DB_NAME, Store

MAX_BODY = 8192
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what tokens, secrets and keys are made of
_SECRET_IN_PATH = re.compile(r"(/(?:r|m|admin|api/r|api/admin)/)([A-Za-z0-9_-]{4})[A-Za-z0-9_-]*")
_STATIC = {
    "rate.js": "text/javascript; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
    "rate.css": "text/css; charset=utf-8",
}
_PAGES = ("rater.html", "admin.html", "index.html")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never send it to anyone else
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; media-src 'self'; object-src 'none'; frame-ancestors 'none'",
}


def _load_assets() -> dict[str, bytes]:
    root = resources.files("foleygen.rate") / "static"
    return {name: (root / name).read_bytes() for name in (*_STATIC, *_PAGES)}


class RateServer(ThreadingHTTPServer):
    """Serves one study folder. ``quiet`` turns off the request log."""

    daemon_threads = True

    def __init__(self, study: str | Path, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> None:
        self.study = Path(study)
        self.store = Store(self.study / DB_NAME)
        self.meta = self.store.meta()
        self.assets = _load_assets()
        self.quiet = quiet
        self._log_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    # -- the answers' logic, kept apart from HTTP so that it reads as a list of rules ------------------------
    def state(self, rater: Any) -> dict[str, Any]:
        """What the page shows next for ``rater``: progress, and the first unanswered trial (or none)."""
        done, total, position = self.store.progress_of(rater["id"])
        out: dict[str, Any] = {
            "rater": rater["name"],
            "done": done,
            "total": total,
            "title": self.meta.get("title", ""),
            "instructions": self.meta.get("instructions", ""),
            "finished": position is None,
            "trial": None,
        }
        if position is not None:
            out["trial"] = self._trial(rater, position)
        return out

    def _trial(self, rater: Any, position: int) -> dict[str, Any]:
        a = self.store.assignment(rater["id"], position)
        keys = [a["key_a"]] if a["kind"] == "mos" else [a["key_a"], a["key_b"]]
        if a["kind"] == "ab" and a["swapped"]:
            keys.reverse()
        trial = {
            "position": position,
            "kind": a["kind"],
            "clips": [f"/m/{rater['token']}/{k}" for k in keys],
        }
        if a["kind"] == "mos":
            trial["questions"] = self.meta["questions"]
            trial["scale"] = self.meta["scale"]
        else:
            trial["question"] = self.meta["ab_question"]
        return trial

    def answer(self, rater: Any, body: dict[str, Any]) -> str | None:
        """Validate and store one trial's answer; returns a problem (for a 400) or None once committed."""
        position = body.get("position")
        if not isinstance(position, int) or isinstance(position, bool):
            return "position must be an integer"
        a = self.store.assignment(rater["id"], position)
        if a is None:
            return "no such trial for this rater"
        elapsed = body.get("elapsed_ms")
        if elapsed is not None and not (isinstance(elapsed, int) and 0 <= elapsed < 10**9):
            return "elapsed_ms must be a non-negative integer"
        if a["kind"] == "mos":
            values = body.get("values")
            keys = [q["key"] for q in self.meta["questions"]]
            if not isinstance(values, dict) or sorted(values) != sorted(keys):
                return f"values must answer exactly {keys}"
            scale = len(self.meta["scale"])
            if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= scale for v in values.values()):
                return f"each value must be an integer from 1 to {scale}"
        else:
            choice = body.get("choice")
            if choice not in ("left", "right"):
                return "choice must be 'left' or 'right'"
            # store which of the trial's clips won, whichever side it was shown on
            values = {"preference": int((choice == "right") != bool(a["swapped"]))}
        self.store.save_answers(rater["id"], a["trial_id"], values, elapsed)
        return None

    def progress(self) -> dict[str, Any]:
        """The admin page's data: each rater's progress, last activity and attention checks so far."""
        from foleygen.rate.report import rater_checks

        checks = rater_checks(self.store.answer_rows(), self.meta)
        raters = []
        for r in self.store.raters():
            done, total, _ = self.store.progress_of(r["id"])
            last = self.store.query("SELECT MAX(answered_at) AS t FROM answers WHERE rater_id = ?", (r["id"],))[0]["t"]
            c = checks.get(r["name"], {})
            raters.append(
                {
                    "name": r["name"],
                    "link": f"/r/{r['token']}",
                    "done": done,
                    "total": total,
                    "last_answer": None if last is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(last)),
                    "checks_passed": c.get("passed"),
                    "checks_total": c.get("total", 0),
                }
            )
        return {"title": self.meta.get("title", ""), "raters": raters}


class _Handler(BaseHTTPRequestHandler):
    server: RateServer
    server_version = "foleygen-rate"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    # -- plumbing ---------------------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- the base class's name
        if self.server.quiet:
            return
        line = _SECRET_IN_PATH.sub(r"\1\2…", format % args)
        with self.server._log_lock:
            print(f"{self.address_string()} - {line}", file=sys.stderr, flush=True)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = 200) -> None:
        body = json.dumps(data).encode()
        self._send(status, body, "application/json", {"Cache-Control": "no-store"})

    def _not_found(self) -> None:
        if self._parts and self._parts[0] == "api":
            self._json({"error": "not found"}, 404)
        else:
            self._send(404, b"<!doctype html><title>Not found</title><p>Not found.</p>", "text/html; charset=utf-8")

    def _page(self, name: str) -> None:
        self._send(200, self.server.assets[name], "text/html; charset=utf-8", {"Cache-Control": "no-store"})

    def _route(self) -> list[str] | None:
        """The path's segments, or None when any of them is not a plain name (no ``..``, no ``%``, no ``.``
        except in the fixed static file names)."""
        path = urlsplit(self.path).path
        if not path.startswith("/") or "//" in path:
            return None
        parts = [p for p in path.split("/") if p]
        if any(not (_SEGMENT.match(p) or p in _STATIC) for p in parts):
            return None
        return parts

    def _checked_route(self) -> list[str]:
        parts = self._route()
        return ["-"] if parts is None else parts  # "-" matches no route: a 404

    def _rater(self, token: str) -> Any:
        return self.server.store.rater_by_token(token)

    def _admin_ok(self, secret: str) -> bool:
        return hmac.compare_digest(secret.encode(), str(self.server.meta["admin_secret"]).encode())

    # -- methods ----------------------------------------------------------------------------------------------
    def do_HEAD(self) -> None:  # noqa: N802 -- http.server's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        parts = self._parts = self._checked_route()
        match parts:
            case []:
                self._page("index.html")
            case ["static", name] if name in _STATIC:
                self._send(200, self.server.assets[name], _STATIC[name], {"Cache-Control": "no-cache"})
            case ["r", token] if self._rater(token):
                self._page("rater.html")
            case ["api", "r", token, "state"] if rater := self._rater(token):
                self._json(self.server.state(rater))
            case ["m", token, key] if rater := self._rater(token):
                path = self.server.store.media_file_for(rater["id"], key)
                self._media(path) if path else self._not_found()
            case ["admin", secret] if self._admin_ok(secret):
                self._page("admin.html")
            case ["api", "admin", secret, "progress"] if self._admin_ok(secret):
                self._json(self.server.progress())
            case _:
                self._not_found()

    def do_POST(self) -> None:  # noqa: N802
        parts = self._parts = self._checked_route()
        match parts:
            case ["api", "r", token, "answer"] if rater := self._rater(token):
                pass
            case _:
                self._not_found()
                return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            self._json({"error": f"a body of at most {MAX_BODY} bytes is needed"}, 413)
            self.close_connection = True
            return
        try:
            body = json.loads(self.rfile.read(int(length)) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            self._json({"error": "the body must be a JSON object"}, 400)
            return
        problem = self.server.answer(rater, body)
        if problem:
            self._json({"error": problem}, 400)
        else:
            self._json(self.server.state(rater))

    def _media(self, path: Path) -> None:
        """Send an mp4, honouring one ``Range: bytes=a-b`` (browsers need it to seek)."""
        size = path.stat().st_size
        start, end = 0, size - 1
        status = HTTPStatus.OK
        header = self.headers.get("Range")
        if header:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
            if m and (m[1] or m[2]):
                if m[1]:
                    start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
                else:  # a suffix: the last N bytes
                    start = max(0, size - int(m[2]))
            if not m or start > end or start >= size:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Cache-Control", "private, max-age=3600")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        for k, v in _SECURITY_HEADERS.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            with open(path, "rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    chunk = f.read(min(65536, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):  # the browser moved on (seek, next trial)
            self.close_connection = True


def serve(study: str | Path, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> None:
    """Serve ``study`` until Ctrl-C, printing the admin link and every rater's link first."""
    from foleygen.rate.study import links

    server = RateServer(study, host, port, quiet=quiet)
    try:
        print(f"serving {server.study} on {server.url} (Ctrl-C stops)", flush=True)
        for name, url in links(server.store, server.url):
            print(f"  {name}: {url}", flush=True)
        server.serve_forever()
    finally:
        server.server_close()
