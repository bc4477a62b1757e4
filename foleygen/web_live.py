"""The web demo's live page: the browser's camera in, the generated soundtrack out while you watch.

``/live`` (served by the demo's own server, see :func:`foleygen.app.launch`) is a plain HTML/JS page
(``foleygen/assets/live/``). The browser grabs camera frames on the model's frame grid, shrinks them
on a canvas to what the visual encoder reads (the rule of :mod:`foleygen.vision.frames`), and sends
them over a WebSocket (``/live/ws``); the server feeds them to a :class:`foleygen.stream.StreamSession`
and sends back each audio chunk as soon as it is final, placed on the live timeline, which the page
plays gaplessly with WebAudio.

Wire format (little-endian):

* page -> server, one binary message per frame: :data:`FRAME_HEADER` (capture time in ms on the page's
  clock, width, height, sequence number) then ``height * width * 3`` RGB bytes; the text message
  ``{"type": "stop"}`` ends the stream (the server finishes the audio and answers ``ended``).
* server -> page: text JSON ``hello`` (frame size rule, sample rate, algorithmic latency), ``stats``
  (about twice a second), ``skip``, ``ended``, or ``busy`` / ``error`` (then it closes); binary
  audio chunks: :data:`AUDIO_HEADER` (first sample on the timeline, samples per channel, channels)
  then ``float32 [C, n]``, channel-major.

The timeline and the degrade rule live in :class:`LiveStream` (plain Python, tested without a browser).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import os
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from foleygen.atomic import atomic_file
from foleygen.errors import ConfigError, FoleyGenError, MediaError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute
    from starlette.websockets import WebSocket

    from foleygen.api import FoleyGen

log = logging.getLogger(__name__)

__all__ = ["AUDIO_HEADER", "FRAME_HEADER", "LivePage", "LiveStream", "frame_spec"]

#: Frame message header: capture time (ms, the page's ``performance.now()`` clock), width, height, seq.
FRAME_HEADER = struct.Struct("<dHHI")
#: Audio message header: first sample on the live timeline, samples per channel, channels.
AUDIO_HEADER = struct.Struct("<dII")
#: Set to a directory to keep every live segment's frames and audio as ``.npz`` (tests, debugging).
RECORD_ENV = "FOLEYGEN_LIVE_RECORD"
ASSETS = Path(__file__).parent / "assets" / "live"
MAX_FRAME_SIDE = 1024  # bounds the memory one frame message may ask for
STATS_PERIOD_S = 0.5


def frame_spec(model: FoleyGen) -> dict[str, Any]:
    """How the page must shrink camera frames for ``model`` (the rule of :mod:`foleygen.vision.frames`).

    ``{"mode": "crop", "side": S}``: a square centre crop scaled to ``S x S`` (trainable encoders);
    ``{"mode": "shrink", "short_side": L}``: aspect kept, short side scaled down to at most ``L``.
    """
    from foleygen.vision.frames import PRESHRINK_FACTOR

    enc = model.visual_encoder
    side = int(enc.image_size)
    if enc.trainable:
        return {"mode": "crop", "side": side}
    return {"mode": "shrink", "short_side": PRESHRINK_FACTOR * side}


@dataclass
class _Segment:
    """One run of consecutive timeline frames fed to one :class:`StreamSession`."""

    session: Any
    index: int
    start_slot: int  # timeline frame of its first frame
    next_slot: int  # the timeline frame it expects next
    first_sample: int  # timeline sample of its first audio sample
    emitted: int = 0  # audio samples handed out so far
    frames: list[torch.Tensor] | None = None  # kept only when recording
    audio: list[torch.Tensor] = field(default_factory=list)


class LiveStream:
    """One live connection: timestamped frames in, audio chunks placed on the live timeline out.

    Timeline frame ``k`` is the one captured ``k / fps`` seconds after the first frame (``fps`` = the
    encoder's ``input_fps``); its audio starts at timeline sample ``round(k / fps * sample_rate)``.
    Each frame that arrives is placed by its timestamp, never by its arrival order, so the audio cannot
    drift from the video. The degrade rule, checked at every frame:

    1. a frame whose timeline slot is already filled (late, duplicate, out of order) is **dropped**;
    2. a gap of up to ``max_lag_s`` (frames the browser did not send) is filled by **repeating** the
       previous frame, so the audio goes on in step;
    3. when the model falls behind (the newest frame received is more than ``max_lag_s`` ahead of the
       one being processed) or the gap is longer than that (a stalled camera), it **skips**: the
       current segment ends (its audio is finished), the waiting frames are dropped, and a new segment
       starts at the newest frame. The skipped stretch stays silent and is reported.

    Every segment is exactly ``FoleyGen.stream(its frames, fps=fps, seed=seed)``. ``step``/``finish``
    run in a worker thread; ``offer`` may be called from another thread at the same time.
    """

    def __init__(
        self,
        model: FoleyGen,
        *,
        seed: int = 0,
        max_lag_s: float = 1.0,
        record_dir: str | Path | None = None,
    ) -> None:
        from foleygen.stream import StreamSession

        self.model = model
        self.fps = float(model.visual_encoder.input_fps)
        self.sample_rate = int(model.sample_rate)
        self.seed = int(seed)
        # Snapshot: the offline demo changes the shared model's settings for each of its requests.
        self.params = dataclasses.replace(model.generation)
        self.max_lag = max(1, round(max_lag_s * self.fps))  # in timeline frames
        self.max_lag_s = self.max_lag / self.fps
        self.record_dir = Path(record_dir) if record_dir else None
        self.id = uuid.uuid4().hex[:12]
        # Raises ConfigError for models that cannot stream (a full mask, prefix conditioning).
        self.latency = StreamSession(model, fps=self.fps, seed=self.seed, params=self.params).latency_seconds()
        self._inbox: deque[tuple[float, torch.Tensor]] = deque()
        self._inbox_lock = threading.Lock()
        self._work_lock = threading.Lock()  # one step at a time, and none after the end
        self._t0: float | None = None  # capture time (ms) of timeline frame 0
        self._segment: _Segment | None = None
        self._segments = 0
        self._last: torch.Tensor | None = None
        self.closed = False
        self.counts = {"received": 0, "used": 0, "repeated": 0, "dropped": 0, "skipped_frames": 0, "resyncs": 0}
        self.compute_s = 0.0
        self.samples_out = 0

    # -- input (any thread) ------------------------------------------------------------------------

    def offer(self, t_ms: float, frame: torch.Tensor) -> None:
        """Queue one frame ``uint8 [H, W, 3]`` captured at ``t_ms`` (page clock, milliseconds)."""
        with self._inbox_lock:
            self.counts["received"] += 1
            # Memory bound: frames this far behind would be skipped by rule 3 anyway.
            if len(self._inbox) > 4 * self.max_lag + 8:
                self._inbox.popleft()
                self.counts["dropped"] += 1
            self._inbox.append((float(t_ms), frame))

    def pending(self) -> int:
        """Frames received and not processed yet."""
        return len(self._inbox)

    def _slot(self, t_ms: float) -> int:
        return round((t_ms - self._t0) * self.fps / 1000.0)

    # -- work (one worker thread) -----------------------------------------------------------------

    def step(self) -> list[dict[str, Any]]:
        """Process the oldest waiting frame -> events: ``{"type": "audio", "offset": sample, "wav":
        [C, n]}`` and ``{"type": "skip", "from_s": ..., "to_s": ...}`` (empty when nothing was final)."""
        with self._work_lock:
            if self.closed:
                return []
            with self._inbox_lock:
                if not self._inbox:
                    return []
                t_ms, frame = self._inbox.popleft()
                newest = self._inbox[-1][0] if self._inbox else t_ms
            t_start = time.perf_counter()
            try:
                return self._place(t_ms, frame, newest)
            finally:
                self.compute_s += time.perf_counter() - t_start

    def _place(self, t_ms: float, frame: torch.Tensor, newest_ms: float) -> list[dict[str, Any]]:
        if self._t0 is None:
            self._t0 = t_ms
        events: list[dict[str, Any]] = []
        slot = self._slot(t_ms)
        seg = self._segment
        if seg is None:
            self._start(slot)
        elif slot < seg.next_slot:  # rule 1
            self.counts["dropped"] += 1
            return events
        elif self._slot(newest_ms) - seg.next_slot > self.max_lag or slot - seg.next_slot > self.max_lag:  # rule 3
            with self._inbox_lock:
                waiting = list(self._inbox)
                self._inbox.clear()
            if waiting:  # jump to the newest frame; the current one and the others are dropped
                self.counts["dropped"] += len(waiting)
                t_ms, frame = waiting[-1]
                slot = self._slot(t_ms)
            gap_from = seg.next_slot
            events += self._end_segment(ended=True)
            self.counts["skipped_frames"] += slot - gap_from
            self.counts["resyncs"] += 1
            events.append({"type": "skip", "from_s": gap_from / self.fps, "to_s": slot / self.fps})
            self._start(slot)
        else:
            for _ in range(slot - seg.next_slot):  # rule 2
                events += self._push(self._last)
                self.counts["repeated"] += 1
        self.counts["used"] += 1
        return events + self._push(frame)

    def _start(self, slot: int) -> None:
        from foleygen.stream import StreamSession

        session = StreamSession(self.model, fps=self.fps, seed=self.seed, params=self.params)
        first = round(slot / self.fps * self.sample_rate)
        frames: list[torch.Tensor] | None = [] if self.record_dir else None
        self._segment = _Segment(session, self._segments, slot, slot, first, frames=frames)
        self._segments += 1

    def _push(self, frame: torch.Tensor) -> list[dict[str, Any]]:
        seg = self._segment
        with self.model._eval_mode():  # as FoleyGen.stream runs each push
            wav = seg.session.push(frame)
        seg.next_slot += 1
        self._last = frame
        if seg.frames is not None:
            seg.frames.append(frame)
        return self._emit(seg, wav)

    def _emit(self, seg: _Segment, wav: torch.Tensor) -> list[dict[str, Any]]:
        if wav.shape[-1] == 0:
            return []
        offset = seg.first_sample + seg.emitted
        seg.emitted += wav.shape[-1]
        self.samples_out += wav.shape[-1]
        if seg.frames is not None:
            seg.audio.append(wav)
        return [{"type": "audio", "offset": offset, "wav": wav}]

    def _end_segment(self, *, ended: bool) -> list[dict[str, Any]]:
        seg, self._segment = self._segment, None
        if seg is None:
            return []
        events = []
        if ended:
            with self.model._eval_mode():
                events = self._emit(seg, seg.session.end())
        self._save(seg, ended=ended)
        return events

    def finish(self) -> list[dict[str, Any]]:
        """The stream has ended: process what is waiting, finish the audio; the last events."""
        events: list[dict[str, Any]] = []
        while self.pending():
            events += self.step()
        with self._work_lock:
            if not self.closed:
                events += self._end_segment(ended=True)
                self.closed = True
        return events

    def abandon(self) -> None:
        """The page went away: stop at once (the segment's audio so far is kept when recording)."""
        with self._work_lock:
            if not self.closed:
                self._end_segment(ended=False)
                self.closed = True
            with self._inbox_lock:
                self._inbox.clear()

    # -- reporting ---------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts and speeds for the page: ``rtf`` = seconds of video processed per second of compute."""
        pushed = self.counts["used"] + self.counts["repeated"]
        with self._inbox_lock:
            backlog = (
                (self._slot(self._inbox[-1][0]) - self._segment.next_slot) / self.fps
                if (self._inbox and self._segment is not None)
                else 0.0
            )
        return {
            **self.counts,
            "rtf": (pushed / self.fps) / self.compute_s if self.compute_s > 0 else None,
            "compute_ms_per_frame": 1000.0 * self.compute_s / pushed if pushed else None,
            "backlog_s": max(0.0, backlog),
            "skipped_s": self.counts["skipped_frames"] / self.fps,
            "audio_s": self.samples_out / self.sample_rate,
            "segments": self._segments,
        }

    def _save(self, seg: _Segment, *, ended: bool) -> None:
        """Debug hook (``$FOLEYGEN_LIVE_RECORD``): the segment's frames and audio, written atomically."""
        if self.record_dir is None or not seg.frames:
            return
        self.record_dir.mkdir(parents=True, exist_ok=True)
        final = self.record_dir / f"live_{self.id}_{seg.index:03d}.npz"
        audio = torch.cat(seg.audio, dim=-1) if seg.audio else torch.zeros(self.model.channels, 0)
        with atomic_file(final, fsync=False) as tmp:
            np.savez(
                tmp,
                frames=torch.stack(seg.frames).numpy(),
                audio=audio.float().numpy(),
                fps=self.fps,
                seed=self.seed,
                start_slot=seg.start_slot,
                first_sample=seg.first_sample,
                ended=ended,
            )


def parse_frame(data: bytes, expect: tuple[int, int] | None, index: int) -> tuple[float, int, int, torch.Tensor]:
    """One frame message -> ``(t_ms, width, height, uint8 [H, W, 3])``; MediaError on a bad message."""
    if len(data) < FRAME_HEADER.size:
        raise MediaError(f"frame {index}: a message of {len(data)} bytes is shorter than its header")
    t_ms, width, height, _seq = FRAME_HEADER.unpack_from(data)
    if not math.isfinite(t_ms):
        raise MediaError(f"frame {index}: its timestamp is {t_ms}")
    if not (0 < width <= MAX_FRAME_SIDE and 0 < height <= MAX_FRAME_SIDE):
        raise MediaError(f"frame {index}: {width}x{height} is outside 1..{MAX_FRAME_SIDE} pixels a side")
    if expect is not None and (width, height) != expect:
        raise MediaError(f"frame {index}: {width}x{height}, but the stream started at {expect[0]}x{expect[1]}")
    need = FRAME_HEADER.size + width * height * 3
    if len(data) != need:
        raise MediaError(f"frame {index}: {len(data)} bytes, expected {need} for {width}x{height} RGB")
    pixels = np.frombuffer(data, dtype=np.uint8, offset=FRAME_HEADER.size).reshape(height, width, 3)
    return t_ms, width, height, torch.from_numpy(pixels.copy())


def audio_message(offset: int, wav: torch.Tensor) -> bytes:
    """An audio chunk ``[C, n]`` starting at timeline sample ``offset`` -> one binary message."""
    pcm = wav.detach().to(torch.float32).cpu().contiguous().numpy()
    return AUDIO_HEADER.pack(float(offset), pcm.shape[1], pcm.shape[0]) + pcm.astype("<f4").tobytes()


class LivePage:
    """The ``/live`` routes (page, script, ``info`` and the WebSocket) for any Starlette/FastAPI app.

    Args:
        load_model: returns the :class:`FoleyGen` to run (called per connection; cache it yourself).
        model_name: shown on the page.
        max_sessions: live connections served at once; more get a "busy" message. On a CPU each
            session needs its own cores to keep up, so the default is one.
        max_lag_s: how far behind the newest frame the model may fall before it skips (rule 3 of
            :class:`LiveStream`).
        record_dir: keep each segment's frames and audio there (default ``$FOLEYGEN_LIVE_RECORD``).
    """

    def __init__(
        self,
        load_model: Callable[[], FoleyGen],
        *,
        model_name: str = "demo",
        max_sessions: int = 1,
        max_lag_s: float = 1.0,
        seed: int = 0,
        prefix: str = "/live",
        record_dir: str | Path | None = None,
    ) -> None:
        if max_sessions < 1:
            raise ConfigError(f"max_sessions must be at least 1, got {max_sessions}")
        self.load_model = load_model
        self.model_name = model_name
        self.max_sessions = int(max_sessions)
        self.max_lag_s = float(max_lag_s)
        self.seed = int(seed)
        self.prefix = "/" + prefix.strip("/")
        self.record_dir = record_dir if record_dir is not None else (os.environ.get(RECORD_ENV) or None)
        self.active = 0
        self._lock = threading.Lock()

    def routes(self) -> list[BaseRoute]:
        """Starlette routes: pass them as ``FastAPI(routes=...)`` or add them to an app's router."""
        from starlette.responses import RedirectResponse
        from starlette.routing import Route, WebSocketRoute

        p = self.prefix
        return [
            Route(p, self.page, methods=["GET"]),
            Route(p + "/", lambda _request: RedirectResponse(p), methods=["GET"]),
            Route(p + "/live.js", self.script, methods=["GET"]),
            Route(p + "/info", self.info, methods=["GET"]),
            WebSocketRoute(p + "/ws", self.socket),
        ]

    # -- HTTP ---------------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        from starlette.responses import HTMLResponse

        html = (ASSETS / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(html.replace("{{BASE}}", self.prefix), headers={"Cache-Control": "no-store"})

    async def script(self, request: Request) -> Response:
        from starlette.responses import Response

        js = (ASSETS / "live.js").read_text(encoding="utf-8")
        return Response(js, media_type="text/javascript", headers={"Cache-Control": "no-store"})

    async def info(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse(await asyncio.to_thread(self._describe))

    def _describe(self) -> dict[str, Any]:
        """What the page shows before it asks for the camera (and ``refused`` when it cannot run)."""
        base = {"model": self.model_name, "max_sessions": self.max_sessions, "active": self.active}
        try:
            model = self.load_model()
            probe = LiveStream(model, seed=self.seed, max_lag_s=self.max_lag_s)
        except FoleyGenError as err:
            return {**base, "refused": f"model {self.model_name!r} cannot run live: {err.message}"}
        hello = self._hello(model, probe)
        del hello["type"]
        return {**base, **hello, "refused": None}

    def _hello(self, model: FoleyGen, live: LiveStream) -> dict[str, Any]:
        return {
            "type": "hello",
            "model": self.model_name,
            "fps": live.fps,
            "frame": frame_spec(model),
            "sample_rate": live.sample_rate,
            "channels": int(model.channels),
            "latency": live.latency,
            "max_lag_s": live.max_lag_s,
        }

    # -- WebSocket ----------------------------------------------------------------------------------

    def _acquire(self) -> bool:
        with self._lock:
            if self.active >= self.max_sessions:
                return False
            self.active += 1
            return True

    def _release(self) -> None:
        with self._lock:
            self.active -= 1

    async def socket(self, ws: WebSocket) -> None:
        """One live session: hello, then frames in / audio out until ``stop`` or disconnect."""
        await ws.accept()
        if not _same_origin(ws):
            # Another site's page could open this socket from a visitor's browser and spend our CPU.
            await ws.send_json({"type": "error", "message": "the live page only serves pages from this server"})
            await ws.close(code=1008)
            return
        if not self._acquire():
            n = self.max_sessions
            await ws.send_json(
                {
                    "type": "busy",
                    "message": f"the live page is busy: {n} live session{'s' * (n > 1)} already running, "
                    "the most this server takes at once; try again in a moment",
                }
            )
            await ws.close(code=1013)  # "try again later"
            return
        live: LiveStream | None = None
        try:
            try:
                model = await asyncio.to_thread(self.load_model)
                live = LiveStream(model, seed=self.seed, max_lag_s=self.max_lag_s, record_dir=self.record_dir)
            except FoleyGenError as err:
                message = f"model {self.model_name!r} cannot run live: {err.message}"
                log.warning("refused a live session: %s", message)
                await ws.send_json({"type": "error", "message": message})
                await ws.close(code=1008)
                return
            await ws.send_json(self._hello(model, live))
            log.info("live session %s started (%d of %d)", live.id, self.active, self.max_sessions)
            await self._serve(ws, live)
        finally:
            self._release()
            if live is not None:
                # Not awaited: a server may cancel this handler when the page leaves, and the cleanup
                # must run all the same (it waits for a step still running in its thread).
                asyncio.get_running_loop().run_in_executor(None, _close, live)

    async def _serve(self, ws: WebSocket, live: LiveStream) -> None:
        wake = asyncio.Event()
        stop = asyncio.Event()

        async def receive() -> str:
            size: tuple[int, int] | None = None
            index = 0
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return "gone"
                if msg.get("bytes") is not None:
                    t_ms, width, height, frame = parse_frame(msg["bytes"], size, index)
                    size = (width, height)
                    index += 1
                    live.offer(t_ms, frame)
                    wake.set()
                elif msg.get("text") is not None:
                    try:
                        kind = json.loads(msg["text"]).get("type")
                    except (ValueError, AttributeError):
                        kind = None
                    if kind == "stop":
                        return "stop"
                    raise MediaError(f"unknown message {msg['text'][:60]!r}: expected frames or {{'type': 'stop'}}")

        async def process() -> None:
            last_stats = time.monotonic()
            while True:
                await wake.wait()
                wake.clear()
                while live.pending():
                    await self._send(ws, await asyncio.to_thread(live.step))
                    if time.monotonic() - last_stats >= STATS_PERIOD_S:
                        last_stats = time.monotonic()
                        await ws.send_json({"type": "stats", **live.stats()})
                if stop.is_set():
                    await self._send(ws, await asyncio.to_thread(live.finish))
                    await ws.send_json({"type": "ended", **live.stats()})
                    return

        receiver = asyncio.create_task(receive())
        worker = asyncio.create_task(process())
        try:
            done, _ = await asyncio.wait({receiver, worker}, return_when=asyncio.FIRST_COMPLETED)
            if worker in done:  # it only ends by itself on an error (a send to a closed socket, a bug)
                worker.result()
                return
            try:
                reason = receiver.result()
            except MediaError as err:
                log.warning("live session %s: %s", live.id, err.message)
                await ws.send_json({"type": "error", "message": err.message})
                await ws.close(code=1003)
                return
            if reason == "stop":
                stop.set()
                wake.set()
                await worker
                await ws.close()
        except Exception as err:
            if not _is_disconnect(err):
                log.error("live session %s failed: %s: %s", live.id, type(err).__name__, err)
        finally:
            for task in (receiver, worker):
                task.cancel()

    async def _send(self, ws: WebSocket, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event["type"] == "audio":
                await ws.send_bytes(audio_message(event["offset"], event["wav"]))
            else:
                await ws.send_json(event)


def _close(live: LiveStream) -> None:
    live.abandon()  # a no-op after a clean stop
    log.info("live session %s closed: %s", live.id, json.dumps(live.stats()))


def _same_origin(ws: WebSocket) -> bool:
    """True unless the browser says the page that opened the socket came from another host."""
    from urllib.parse import urlsplit

    origin = ws.headers.get("origin")
    if not origin:  # not a browser (scripts, tests): nothing to protect a visitor from
        return True
    return urlsplit(origin).netloc.lower() == ws.headers.get("host", "").lower()


def _is_disconnect(err: BaseException) -> bool:
    # The page closed while we were sending: not a server fault.
    from starlette.websockets import WebSocketDisconnect

    return isinstance(err, WebSocketDisconnect) or (isinstance(err, RuntimeError) and "close" in str(err).lower())
