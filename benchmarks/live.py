"""Live generation: frame-in to audio-out latency and the sustained real-time factor (JSON).

For each thread count, in its own subprocess, with the demo model on a synthetic 64x64 25 fps clip:

* ``compute_only``: frames pushed into a :class:`foleygen.stream.StreamSession` back to back; per
  frame, the seconds ``push`` takes (the compute a frame adds on top of the algorithmic latency) and
  the sustained real-time factor (seconds of video per second of compute);
* ``end_to_end``: the same clip as a paced source (``FrameSource(realtime=True)``: each frame handed
  on at its own time, as a camera would) through :class:`foleygen.streamio.StreamRun` into a WAV:
  per frame, from the moment its source frame was read to the moment the audio of its period was
  written (this includes the algorithmic latency), and whether the degrade rule acted;
* ``algorithmic_ms``: :meth:`StreamSession.latency_seconds`, the floor no machine removes.

Target (issue #35): sustains 25 fps on 2 cores with p95 end-to-end latency within 100 ms of the
algorithmic minimum.

    python benchmarks/live.py                   # 1 and 2 threads, 20 s clip
    python benchmarks/live.py --threads 1 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _stats(values: list[float]) -> dict:
    v = sorted(values)
    if not v:
        return {}
    return {
        "p50_ms": round(1000 * v[len(v) // 2], 1),
        "p95_ms": round(1000 * v[min(len(v) - 1, int(0.95 * len(v)))], 1),
        "max_ms": round(1000 * v[-1], 1),
        "frames": len(v),
    }


def worker(video: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from foleygen.api import FoleyGen
    from foleygen.sources import FrameSource
    from foleygen.stream import StreamSession
    from foleygen.streamio import StreamRun, audio_writer
    from foleygen.vision.frames import decode_size

    model = FoleyGen.from_pretrained("demo")
    enc = model.visual_encoder
    fps = float(enc.input_fps)

    def source(realtime: bool) -> FrameSource:
        return FrameSource(video, fps=fps, size_for=lambda w, h: decode_size(enc, w, h), realtime=realtime)

    frames = [ev.frame for ev in source(False).events() if ev.kind == "frame"]
    # warm-up: the first decoding measures the CPU's fastest path (cached), the codec its context
    with model._eval_mode():
        warm = StreamSession(model, fps=fps)
        for f in frames[:50]:
            warm.push(f)
        warm.end()
        session = StreamSession(model, fps=fps, seed=0)
        algorithmic = session.latency_seconds()
        pushes = []
        t0 = time.perf_counter()
        for f in frames:
            a = time.perf_counter()
            session.push(f)
            pushes.append(time.perf_counter() - a)
        session.end()
        busy = time.perf_counter() - t0
    seconds = len(frames) / fps
    with tempfile.TemporaryDirectory() as tmp:
        wav = audio_writer(Path(tmp) / "live.wav", model.sample_rate, model.channels, staged=False)
        run = StreamRun(model, source(True), [wav], seed=0, max_lag=1.0)
        stats = run.run()
        wav.close()
    return {
        "threads": threads,
        "video_seconds": seconds,
        "algorithmic_ms": {k: round(1000 * v, 1) for k, v in algorithmic.items()},
        "compute_only": {"push": _stats(pushes), "real_time_factor": round(seconds / busy, 2)},
        "end_to_end": {
            "latency": _stats(stats.latencies),
            "real_time_factor": round(stats.real_time_factor, 2),
            "degraded": stats.degraded,
            "p95_over_algorithmic_ms": round(
                1000 * sorted(stats.latencies)[int(0.95 * (len(stats.latencies) - 1))] - 1000 * algorithmic["total"], 1
            )
            if stats.latencies
            else None,
        },
    }


def main() -> None:
    from benchmarks.long_video import make_video
    from foleygen.machine import machine_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--worker", nargs=2, metavar=("VIDEO", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "live.mp4", args.seconds)
        runs = []
        for n in args.threads:
            env = {**os.environ, "OMP_NUM_THREADS": str(n), "PYTHONPATH": str(ROOT)}
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", str(video), str(n)], env=env, capture_output=True, text=True
            )
            found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            runs.append(json.loads(found[-1][7:]) if found else {"threads": n, "error": proc.stderr[-500:]})
    print(
        json.dumps(
            {
                "benchmark": "live",
                "model": "demo",
                "video": f"{args.seconds:g} s, 64x64, 25 fps, H.264 (synthetic)",
                "machine": machine_report(),
                "target": "25 fps sustained on 2 cores, p95 end-to-end within 100 ms of the algorithmic minimum",
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
