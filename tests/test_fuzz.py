"""A bounded fuzzing run in CI (issue 37, item 2): atheris over probe, read_frames, read_audio, the CSV
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


def test_a_short_fuzzing_run_finds_no_crash(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--seconds", "8", "--artifacts", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert run.returncode == 0 and not crashes, run.stderr[-3000:]
