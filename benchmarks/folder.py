"""Whole-folder throughput of ``foleygen generate``: clips/s at several batch sizes, stages overlapped or not.

Writes ``--clips`` SynthFoley validation clips (4 s, 128 px, H.264 + ALAC, the demo model's data) into a
work folder, then for each ``--batch-sizes`` value runs ``foleygen generate CLIPS/ -o OUT --batch-size B
--json`` in a fresh subprocess twice: with the stages overlapped (``--overlap on``) and with ``--overlap off``
(load, LM and codec+write one after another). Prints one JSON object: per run the clips/s, the busy
seconds of each stage, their sum (the time of the stages run one after another) and the wall time;
``overlap_gain`` = sum of stages / wall. The model's loading is outside the timed part.

    python benchmarks/folder.py                              # 100 clips, batch 1, 8, 32
    python benchmarks/folder.py --clips 16 --batch-sizes 1 8 # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_clips(folder: Path, count: int) -> list[Path]:
    """``count`` SynthFoley validation clips in ``folder`` (kept between runs of the benchmark)."""
    from foleygen.data.synthfoley import SynthFoleyConfig, generate_clip, write_clip

    folder.mkdir(parents=True, exist_ok=True)
    config = SynthFoleyConfig(size=128, duration=4.0)
    have = sorted(folder.glob("*.mp4"))
    if len(have) >= count:
        return have[:count]
    for old in folder.iterdir():
        old.unlink()
    for i in range(count):
        write_clip(generate_clip("val", 1, i, config), folder)
    return sorted(folder.glob("*.mp4"))[:count]


def run_generate(clips: Path, out: Path, batch: int, overlap: bool, threads: int) -> dict:
    """One ``foleygen generate`` subprocess; its JSON summary's throughput fields."""
    argv = [sys.executable, "-m", "foleygen", "generate", str(clips), "-o", str(out), "--model", "demo"]
    argv += ["--batch-size", str(batch), "--json", "--overlap", "on" if overlap else "off"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    summary = json.loads(proc.stdout)
    return {
        "clips": len(summary["generated"]),
        "failed": len(summary["failed"]),
        "clips_per_second": summary["clips_per_second"],
        **summary["stages"],
    }


def main() -> None:
    from foleygen.machine import machine_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", default=None, help="keep the clips here (default: a temporary folder)")
    args = parser.parse_args()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="foleygen-folder-"))
    clips = work / "clips"
    make_clips(clips, args.clips)
    # warm-up: the first generate on a machine measures its decoding paths (cached per CPU) and builds
    # the native kernels; no timed run should pay for that
    run_generate(clips, work / "out_warmup", 1, False, args.threads)
    runs = {}
    for batch in args.batch_sizes:
        for overlap in (True, False):
            name = f"batch{batch}_{'overlapped' if overlap else 'sequential'}"
            runs[name] = run_generate(clips, work / f"out_{name}", batch, overlap, args.threads)
            print(f"{name}: {runs[name]}", file=sys.stderr, flush=True)
    speedups = {}
    for batch in args.batch_sizes:
        a, b = runs[f"batch{batch}_overlapped"], runs[f"batch{batch}_sequential"]
        if a.get("clips_per_second") and b.get("clips_per_second"):
            speedups[f"batch{batch}"] = round(a["clips_per_second"] / b["clips_per_second"], 3)
    base = runs.get(f"batch{args.batch_sizes[0]}_sequential", {}).get("clips_per_second")
    print(
        json.dumps(
            {
                "benchmark": "folder",
                "command": "foleygen generate CLIPS/ -o OUT --model demo --batch-size B --json --overlap on|off",
                "clips": args.clips,
                "clip": "SynthFoley val, 4 s, 128x128 H.264 + ALAC",
                "threads": args.threads,
                "machine": machine_report(),
                "runs": runs,
                "overlapped_over_sequential": speedups,
                "clips_per_second_over_first_sequential": {
                    k: round(v["clips_per_second"] / base, 3)
                    for k, v in runs.items()
                    if base and v.get("clips_per_second")
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
