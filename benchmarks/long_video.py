"""Long videos in ``foleygen generate``: peak memory and wall time against the video's length (JSON).

Makes synthetic videos itself (a square moving over a gradient, 64x64, 25 fps, H.264), then runs
``foleygen generate VIDEO -o OUT --model demo`` on each in its own subprocess, so the peak RSS
(``ru_maxrss`` of that process) is per run. Videos longer than the model's window take the streamed
path (window by window), so memory should not grow with the length.

Targets (issue #34): peak RSS for 60 min within 1.2x of that for 1 min; 10 min at least 5x faster
than real time with the demo model (on 2 cores).

    python benchmarks/long_video.py                      # 1, 10 and 60 minutes
    python benchmarks/long_video.py --minutes 1 10       # quick run
    python benchmarks/long_video.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WORKER = """
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
from foleygen.cli import main
t = time.perf_counter()
rc = main(["generate", sys.argv[2], "-o", sys.argv[3], "--model", "demo", "-q"] + sys.argv[4:])
wall = time.perf_counter() - t
print("RESULT " + json.dumps({"rc": rc, "wall_s": wall,
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), file=sys.stderr)
"""


def make_video(path: Path, seconds: float, size: int = 64, fps: int = 25) -> Path:
    """A ``seconds`` long H.264 video: a bright square sweeping over a gradient (cheap to encode)."""
    import av
    import numpy as np

    base = np.tile(np.linspace(0, 120, size, dtype=np.uint8)[None, :, None], (size, 1, 3))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28", "g": "250"}
        for i in range(round(seconds * fps)):
            img = base.copy()
            x = (i * 2) % (size - 12)
            img[20:32, x : x + 12] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def run_one(video: Path, outdir: Path, threads: int, extra: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER, str(threads), str(video), str(outdir), *extra],
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["no output"]}
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    from foleygen.machine import machine_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="keep the videos here (default: a temporary folder)")
    args = parser.parse_args()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="foleygen-long-"))
    work.mkdir(parents=True, exist_ok=True)
    runs = {}
    for minutes in args.minutes:
        video = work / f"long_{minutes:g}min.mp4"
        if not video.exists():
            make_video(video, 60 * minutes)
        result = run_one(video, work / f"out_{minutes:g}", args.threads, [])
        if "wall_s" in result:
            result["real_time_factor"] = round(60 * minutes / result["wall_s"], 2)
            result["wall_s"] = round(result["wall_s"], 1)
            result["peak_rss_mb"] = round(result["peak_rss_mb"], 1)
        runs[f"{minutes:g}min"] = result
    summary: dict = {
        "benchmark": "long_video",
        "command": "foleygen generate VIDEO -o OUT --model demo -q (one subprocess per length)",
        "video": "64x64, 25 fps, H.264 (synthetic)",
        "threads": args.threads,
        "machine": machine_report(),
        "runs": runs,
    }
    rss = {k: v.get("peak_rss_mb") for k, v in runs.items()}
    if rss.get("1min") and rss.get("60min"):
        summary["rss_60_over_1"] = round(rss["60min"] / rss["1min"], 3)
        summary["target_rss_ratio_at_most"] = 1.2
    if rss.get("1min") and rss.get("10min"):
        summary["rss_10_over_1"] = round(rss["10min"] / rss["1min"], 3)
    if "10min" in runs and "real_time_factor" in runs["10min"]:
        summary["target_10min_real_time_factor_at_least"] = 5.0
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
