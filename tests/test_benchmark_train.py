"""benchmarks/train.py still runs end to end (a tiny model, three steps): it drives the LM task's model."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_train_benchmark_runs_and_reports_throughput():
    args = [
        "--dim",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--cardinality",
        "16",
        "--visual-dim",
        "8",
        "--seconds",
        "0.5",
        "--batch",
        "2",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--precisions",
        "fp32",
    ]
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    runs = next(v for v in report.values() if isinstance(v, list))
    assert runs and all(math.isfinite(r["final_loss"]) and r["audio_seconds_per_s"] > 0 for r in runs)
