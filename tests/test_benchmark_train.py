"""benchmarks/train.py still runs end to end (a tiny model, three steps): it drives the LM task's model."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(args: list[str], env: dict[str, str] | None = None) -> dict:
    """``benchmarks/train.py ARGS`` in a subprocess; its JSON report."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


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
    report = run_benchmark(args)
    runs = next(v for v in report.values() if isinstance(v, list))
    assert runs and all(math.isfinite(r["final_loss"]) and r["audio_seconds_per_s"] > 0 for r in runs)


@pytest.mark.slow
def test_train_benchmark_compares_the_compact_encoder_step_eager_and_compiled():
    args = ["--dim", "32", "--layers", "1", "--heads", "2", "--cardinality", "16", "--visual-dim", "16",
            "--visual", "compact", "--image-size", "16", "--seconds", "0.5", "--batch", "2", "--steps", "2",
            "--warmup", "1", "--threads", "1", "--precisions", "fp32", "--compile"]  # fmt: skip
    # condition dropout draws inside the compiled graph: as eager does, so the losses can be compared
    report = run_benchmark(args, env={"TORCHINDUCTOR_FALLBACK_RANDOM": "1"})
    assert report["model"]["visual"] == "compact 16x16"
    assert [r["compiled"] for r in report["results"]] == [False, True]
    eager, compiled = report["results"]
    # the same steps on the same data: compiling changes the speed, not the arithmetic's result (beyond rounding)
    assert compiled["final_loss"] == pytest.approx(eager["final_loss"], rel=1e-3)
    assert report["compile_speedup"]["fp32"] > 0
