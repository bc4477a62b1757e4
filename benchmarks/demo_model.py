"""End-to-end speed of the embedded demo model on a 4 s example clip, as `foleygen generate` runs it.

Times each stage (reading frames, the whole `generate` call: visual encoder + LM with CFG + codec decode)
over a few repetitions and prints JSON with the real-time factor (audio seconds per wall-clock second;
> 1 is faster than real time). Target (issue 7): faster than real time on this CPU.

    python benchmarks/demo_model.py [--threads 2] [--repeats 3] [--video examples/....mp4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from foleygen import FoleyGen
from foleygen.io import probe, read_frames
from foleygen.machine import machine_report

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo")
    p.add_argument("--video", type=Path, default=sorted((ROOT / "examples").glob("*.mp4"))[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = FoleyGen.from_pretrained(args.model)
    load_s = time.perf_counter() - t0
    enc = model.visual_encoder
    seconds = probe(args.video).duration
    model.generate_list([args.video], seed=0)  # warm-up (allocator, first-call overheads)
    read_s, total_s = [], []
    for i in range(args.repeats):
        t = time.perf_counter()
        read_frames(args.video, enc.fps, enc.image_size)
        read_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.generate_list([args.video], seed=i)
        total_s.append(time.perf_counter() - t)
    median = statistics.median(total_s)
    print(
        json.dumps(
            {
                "benchmark": "demo_model_generate",
                "machine": machine_report(),
                "threads": args.threads,
                "clip_seconds": round(seconds, 3),
                "load_model_s": round(load_s, 3),
                "read_frames_s_median": round(statistics.median(read_s), 4),
                "generate_s_median": round(median, 3),
                "generate_s_all": [round(x, 3) for x in total_s],
                "real_time_factor": round(seconds / median, 2),
                "faster_than_real_time": seconds / median > 1.0,
                "generation_params": {k: getattr(model.generation, k) for k in ("top_k", "temperature", "cfg_coef")},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
