"""A bounded fuzzing run in CI (issue 37, item 2): 3000 inputs of atheris over probe, read_frames, read_audio, the CSV
lists and manifests, and checkpoint loading, seeded from the hostile corpus. Longer runs by hand:
``python scripts/fuzz.py --seconds 600``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parent.parent
# A number of inputs, not of seconds: with the fixed seed, CI tries about the inputs tried here, on a slow
# or a fast machine (libFuzzer is not exactly deterministic: a few coverage units differ run to run).
RUN = ("--runs", "3000", "--seconds", "100")


def test_a_short_fuzzing_run_finds_no_crash(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz.py"), *RUN, "--artifacts", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert run.returncode == 0 and not crashes, run.stderr[-3000:]
