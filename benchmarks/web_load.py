"""The web demo under load: many visitors at once on loopback (JSON).

Starts ``foleygen.app.launch`` on a free loopback port with the embedded ``demo`` model (or
``--model debug``), then ``--clients`` threads, each its own ``gradio_client.Client`` (its own
session, as separate browsers would be), send ``--requests`` generations in all through the page's
``/generate`` endpoint, each with its own short clip (a square moving over a dark background), as fast
as answers come back. Reported:

* ``served`` / ``refused`` (429 "busy": the queue held ``--queue-size`` already) / ``errors``
  (anything else: a lost request);
* latency per served request, from submitting to having the result files (upload, wait in the
  queue, generation, download): p50, p95, max; and the generation alone (inside the server);
* the highest queue position a client was shown while waiting;
* afterwards: whether the server still answers, files left in the demo's work folders after the
  last request, and files left anywhere (work folders, Gradio's cache) after shutdown;
* the CPU (``/proc/cpuinfo``), its cores and the torch threads used.

    python benchmarks/web_load.py                          # 32 requests, 8 clients, demo model
    python benchmarks/web_load.py --requests 24 --queue-size 4 --model debug
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _percentiles(values: list[float]) -> dict:
    v = sorted(values)
    if not v:
        return {}
    return {
        "p50_s": round(v[len(v) // 2], 3),
        "p95_s": round(v[min(len(v) - 1, int(0.95 * len(v)))], 3),
        "max_s": round(v[-1], 3),
    }


def _clip(path: Path, seconds: float, offset: int) -> Path:
    """A small H.264 .mp4 (64x96, 25 fps, no audio): a square moving right, starting at ``offset``."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(round(seconds * 25)):
            img = np.full((64, 96, 3), 30, np.uint8)
            x = (offset + 3 * i) % 80
            img[20:36, x : x + 16] = (240, 120, 20)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def run(args: argparse.Namespace) -> dict:
    import httpx
    import torch
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    from foleygen.app import launch
    from foleygen.machine import machine_report

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="foleygen-web-load-"))
    cache = tmp / "gradio-cache"
    os.environ["GRADIO_TEMP_DIR"] = str(cache)  # this run's own Gradio cache: what is left is countable
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = launch(
        "127.0.0.1",
        port,
        args.model,
        work_root=tmp / "root",
        block=False,
        quiet=True,
        examples=0,
        max_duration_s=max(args.seconds, 1.0),
        queue_size=args.queue_size,
        workers=args.workers,
    )
    service = app.foleygen_service
    url = f"http://127.0.0.1:{port}/"
    generation_s: list[float] = []
    real_generate = service.generate

    def timed_generate(*a, **k):
        start = time.perf_counter()
        result = real_generate(*a, **k)
        generation_s.append(time.perf_counter() - start)
        return result

    service.generate = timed_generate
    clips = [_clip(tmp / f"clip{i}.mp4", args.seconds, 7 * i) for i in range(args.clients)]
    lock = threading.Lock()
    todo = list(range(args.requests))
    outcomes: list[dict] = []

    def client_loop(index: int) -> None:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp / f"dl{index}"))
        while True:
            with lock:
                if not todo:
                    return
                n = todo.pop()
            start = time.perf_counter()
            job = client.submit(handle_file(str(clips[index])), args.model, 3.0, 250, 1.0, n, 0, api_name="/generate")
            rank = None
            while not job.done():
                status = job.status()
                if status.code == Status.IN_QUEUE and status.rank is not None:
                    rank = max(rank or 0, status.rank + 1)  # 1 = next in line
                time.sleep(0.05)
            try:
                video, _, audio, plot, summary = job.result()
                ok = all(Path(p["video"] if isinstance(p, dict) else p).is_file() for p in (video, audio, plot))
                outcome = {"kind": "served" if ok and "Done" in summary else "error", "detail": summary[:80]}
            except httpx.HTTPStatusError as err:
                code = err.response.status_code
                outcome = {"kind": "refused" if code == 429 else "error", "detail": f"HTTP {code}"}
            except Exception as err:  # a lost request: counted, with its message
                outcome = {"kind": "error", "detail": f"{type(err).__name__}: {err}"[:200]}
            outcome.update(latency=time.perf_counter() - start, position=rank)
            with lock:
                outcomes.append(outcome)

    # One request first, alone: the first generation of a process pays one-off costs.
    warm = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp / "dl-warm"))
    warm.predict(handle_file(str(clips[0])), args.model, 3.0, 250, 1.0, 0, 0, api_name="/generate")
    generation_s.clear()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    up = httpx.get(url, timeout=30).status_code == 200
    left_after_requests = _files(service.work_dir) + _files(service.results_dir)
    app.close(verbose=False)
    left_after_shutdown = _files(service.work_dir) + _files(service.results_dir) + _files(cache)
    served = [o for o in outcomes if o["kind"] == "served"]
    errors = [o["detail"] for o in outcomes if o["kind"] == "error"]
    positions = [o["position"] for o in outcomes if o["position"]]
    return {
        "benchmark": "web_load",
        "model": args.model,
        "clip_seconds": args.seconds,
        "clients": args.clients,
        "requests": args.requests,
        "queue_size": args.queue_size,
        "workers": args.workers,
        "served": len(served),
        "refused_busy_429": sum(o["kind"] == "refused" for o in outcomes),
        "errors": len(errors),
        "error_messages": sorted(set(errors))[:5],
        "latency_served": _percentiles([o["latency"] for o in served]),
        "latency_refused": _percentiles([o["latency"] for o in outcomes if o["kind"] == "refused"]),
        "generation_in_server": _percentiles(generation_s),
        "highest_queue_position_shown": max(positions) if positions else None,
        "wall_s": round(wall, 2),
        "served_per_minute": round(60 * len(served) / wall, 1),
        "server_up_after": up,
        "files_left_after_requests": left_after_requests,
        "files_left_after_shutdown": left_after_shutdown,
        "machine": machine_report(),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demo", help="demo (default) or debug")
    parser.add_argument("--requests", type=int, default=32, help="generations in all (default 32)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each clip (default 1 s)")
    parser.add_argument("--queue-size", type=int, default=32, help="the demo's queue bound (default 32)")
    parser.add_argument("--workers", type=int, default=1, help="generations at once (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
