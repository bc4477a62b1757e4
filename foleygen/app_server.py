"""The web demo's server side: clear refusals under load, no path outside its files, nothing left behind.

Kept apart from :mod:`foleygen.app` (the service and the page). Three pieces, all plain ASGI/Python:

* :class:`DemoGuard`, an ASGI middleware in front of Gradio's routes:

  - a request address (path or query, after up to three rounds of percent-decoding) with a ``..``
    segment or a NUL byte is refused with 400 before any route sees it;
  - Gradio's "queue is full" (503 from ``queue/join``) becomes **429** with a "busy, try again"
    message and a ``Retry-After`` header, so a visitor and a script both know to come back. The page
    shows that line as it is (Gradio's client puts a failed join's ``detail`` in its error pop-up);
    for the check that runs on upload it also says the video is uploaded (so the visitor knows only
    the check, not the upload, was refused);
  - Gradio's oversize-upload refusal (413 from ``upload``) says the limit in MB, as the page does.

* :func:`publish_results`: moves a request's result files into Gradio's cache (where Gradio serves
  them from and deletes them after ``delete_cache``'s age or at shutdown), so the demo's own working
  folders are empty again as soon as a request ends.

* :func:`cleanup_lifespan`: at shutdown, empties the demo's working folders and deletes the files
  Gradio keeps for this app (uploads, results) with their folders.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from foleygen.app import DemoResult, DemoService

__all__ = [
    "DemoGuard",
    "busy_message",
    "cleanup_lifespan",
    "clear_work_dirs",
    "is_traversal",
    "publish_results",
    "upload_check_ids",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Seconds a refused visitor is told to wait (the Retry-After header of a 429).
RETRY_AFTER_S = 30
TRAVERSAL_MESSAGE = "refused: the address names a path outside the demo's files ('..' or a NUL byte)"
# The concurrency group of the page's upload check (foleygen.app.build_app).
UPLOAD_CHECK_GROUP = "upload-check"
# A queue/join body larger than this is not parsed (Gradio's are a few hundred bytes: files travel apart).
MAX_JOIN_BODY = 1 << 20


def busy_message(queue_size: int, *, upload: bool = False) -> str:
    """The one line a visitor gets when the queue is full; ``upload``: for the check run on upload."""
    waiting = "1 request is" if queue_size == 1 else f"{queue_size} requests are"
    then = f"press Generate soundtrack in {RETRY_AFTER_S} s" if upload else f"try again in {RETRY_AFTER_S} s"
    head = f"the demo is busy: {waiting} already waiting, the most it queues; "
    return head + (f"your video is uploaded, {then}" if upload else then)


def upload_check_ids(blocks: Any) -> frozenset[int]:
    """The ``fn_index`` of each event of ``blocks`` (a ``gr.Blocks``) in the upload check's group."""
    return frozenset(i for i, fn in blocks.fns.items() if getattr(fn, "concurrency_id", None) == UPLOAD_CHECK_GROUP)


def is_traversal(text: str) -> bool:
    """Whether a request path or query string tries to leave a folder.

    True for a ``..`` segment (separated by ``/``, ``\\``, ``=``, ``&``, ``?`` or ``;``) or a NUL
    byte, also when percent-encoded up to three times (``%2e%2e``, ``%252e%252e``). A name that merely
    contains dots (``a..b.mp4``, ``...``) is fine.
    """
    for _ in range(4):
        if "\0" in text:
            return True
        segments = text.replace("\\", "/")
        for sep in "=&?;":
            segments = segments.replace(sep, "/")
        if any(part.strip() == ".." for part in segments.split("/")):
            return True
        decoded = unquote(text)
        if decoded == text:
            return False
        text = decoded
    return True  # still encoded after three rounds: nobody legitimate does that


class DemoGuard:
    """ASGI middleware: refuses traversal, and rewrites Gradio's queue-full and oversize refusals.

    Args:
        app: the ASGI app behind (Gradio's routes).
        queue_size: the queue's bound (for the busy message).
        max_upload_mb: the upload limit (for the 413 message).
        upload_checks: ``fn_index`` of the events that check an upload (:func:`upload_check_ids`):
            their refusal says that the video is uploaded.
    """

    def __init__(
        self, app: ASGIApp, *, queue_size: int, max_upload_mb: float, upload_checks: frozenset[int] = frozenset()
    ) -> None:
        self.app = app
        self.busy = busy_message(queue_size)
        self.busy_upload = busy_message(queue_size, upload=True)
        self.upload_checks = frozenset(upload_checks)
        self.too_big = f"upload refused: the file is larger than this demo's limit of {max_upload_mb:g} MB"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = bytes(scope.get("raw_path") or b"").decode("latin-1")
        query = bytes(scope.get("query_string") or b"").decode("latin-1")
        if any(is_traversal(text) for text in (scope.get("path", ""), raw, query)):
            await _refuse_traversal(kind, receive, send)
            return
        path = scope.get("path", "")
        if kind == "http" and scope.get("method") == "POST":
            if path.endswith("/queue/join"):
                receive, fn_index = await _read_fn_index(receive)
                busy = self.busy_upload if fn_index in self.upload_checks else self.busy
                await self._rewrite(scope, receive, send, 503, 429, busy, b"Queue is full")
                return
            if path.endswith("/upload"):
                await self._rewrite(scope, receive, send, 413, 413, self.too_big, b"")
                return
        await self.app(scope, receive, send)

    async def _rewrite(
        self, scope: Scope, receive: Receive, send: Send, status: int, new_status: int, text: str, marker: bytes
    ) -> None:
        """Run the request; a response with ``status`` whose body contains ``marker`` is replaced by
        ``new_status`` and ``{"detail": text}``. Other responses pass unchanged."""
        held: Message | None = None
        body = bytearray()

        async def watch(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] == status:
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            if marker not in body:  # another refusal with the same status (e.g. "Queue is stopped")
                await send(held)
                await send({"type": "http.response.body", "body": bytes(body)})
                return
            payload = json.dumps({"detail": text, "error": text}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            if new_status == 429:
                headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
            await send({"type": "http.response.start", "status": new_status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})

        await self.app(scope, receive, watch)


async def _read_fn_index(receive: Receive) -> tuple[Receive, int | None]:
    """Read a request's body; return a ``receive`` that replays it, and the body's ``fn_index``
    (None when the body is not JSON with a whole-number ``fn_index``, or is over MAX_JOIN_BODY)."""
    messages: list[Message] = []
    body = bytearray()
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        body.extend(message.get("body", b""))
        if not message.get("more_body") or len(body) > MAX_JOIN_BODY:
            break  # past the bound: not parsed, and the rest is left for Gradio to read (not held twice)
    fn_index = None
    if len(body) <= MAX_JOIN_BODY:
        try:
            value = json.loads(bytes(body)).get("fn_index")
        except (ValueError, AttributeError, RecursionError):  # not JSON, not an object, or nested too deep
            value = None
        fn_index = value if isinstance(value, int) and not isinstance(value, bool) else None

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay, fn_index


async def _refuse_traversal(kind: str, receive: Receive, send: Send) -> None:
    if kind == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": TRAVERSAL_MESSAGE})
        return
    payload = json.dumps({"detail": TRAVERSAL_MESSAGE}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def publish_results(result: DemoResult, cache_dir: str | Path, results_dir: Path) -> DemoResult:
    """Move one request's results from ``results_dir/<id>/`` into ``cache_dir/<new id>/``.

    ``cache_dir`` is Gradio's cache: files already there are served as they are (not copied again)
    and Gradio deletes them on its ``delete_cache`` schedule and at shutdown. The result folder under
    ``results_dir`` is removed, also when a move fails (then nothing is left in ``cache_dir`` either).
    Returns the same result with the new paths.
    """
    source = result.video.parent.resolve()
    if source.parent != results_dir.resolve():
        raise ValueError(f"{source} is not a result folder of {results_dir}")
    target = Path(cache_dir).resolve() / uuid.uuid4().hex
    target.mkdir(parents=True)
    try:
        moved = {
            field: Path(shutil.move(str(getattr(result, field)), target / getattr(result, field).name))
            for field in ("video", "audio", "plot")
        }
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(source, ignore_errors=True)
    return dataclasses.replace(result, **moved)


def clear_work_dirs(service: DemoService) -> int:
    """Delete everything under the service's ``work/`` and ``results/`` folders; return how many
    entries were removed. The example clips (``examples/``, made once and reused) stay."""
    removed = 0
    for folder in (service.work_dir, service.results_dir):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    return removed


def delete_app_files(blocks: Any, cache_dir: str | Path) -> int:
    """Delete the files Gradio keeps for ``blocks`` (uploads, served results) inside ``cache_dir``,
    with the folders left empty; return how many files were deleted. Files outside ``cache_dir`` and
    those Gradio was asked to keep are left alone."""
    root = Path(cache_dir).resolve()
    keep: set[str] = set()
    for component in blocks.blocks.values():
        keep.update(getattr(component, "keep_in_cache", set()))
    deleted = 0
    for files in blocks.temp_file_sets:
        for name in list(files):
            path = Path(name).resolve()
            if name in keep or path == root or not path.is_relative_to(root):
                continue
            if path.is_file():
                path.unlink(missing_ok=True)
                deleted += 1
            files.discard(name)
            parent = path.parent
            while parent != root and parent.is_relative_to(root):
                try:
                    parent.rmdir()
                except OSError:  # not empty: another file of this or another app lives there
                    break
                parent = parent.parent
    return deleted


def cleanup_lifespan(service: DemoService, cache_dir: str | Path) -> Callable[[Any], Any]:
    """A lifespan for the Gradio app (``app_kwargs={"lifespan": ...}``): at shutdown, empty the demo's
    working folders and delete this app's files in Gradio's cache."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            clear_work_dirs(service)
            delete_app_files(app.get_blocks(), cache_dir)

    return lifespan
