"""A killed training run leaves no temporaries and no duplicate metrics after it is resumed (#40 item 6)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from foleygen.train.run_log import trim_jsonl
from foleygen.train.trainer import find_latest_checkpoint

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _steps(path):
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if '"train"' in line]


def test_trim_jsonl_drops_redone_steps_and_a_torn_last_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"split": "train", "step": s, "loss": 1.0 / s}) for s in (1, 2, 3, 4)]
    log.write_text("\n".join(lines) + '\n{"split": "train", "st')
    assert trim_jsonl(log, 2) == 3
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]  # no temporary left
    assert trim_jsonl(log, 2) == 0
    assert trim_jsonl(tmp_path / "missing.jsonl", 5) == 0 and not (tmp_path / "missing.jsonl").exists()


@pytest.mark.slow
def test_sigkill_then_resume_leaves_no_temporaries_and_logs_each_step_once(tmp_path):
    cfg = {
        "task": "tiny_test",
        "task_module": "foleygen_tiny_task",
        "seed": 3,
        "tiny": {"n": 16, "sleep": 0.05},
        "train": {
            "steps": 24,
            "batch_size": 4,
            "lr": 1e-2,
            "warmup_steps": 2,
            "log_every": 1,
            "save_every": 6,
            "tensorboard": False,
            "device": "cpu",
            "num_threads": 1,
        },
    }
    yaml_path = tmp_path / "tiny.yaml"
    yaml_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "foleygen", "train", str(yaml_path), "-q", "--out", str(out)]
    victim = subprocess.Popen(cmd, env=_env())
    deadline = time.time() + 120
    # Kill once steps past the first checkpoint are logged: those the resumed run redoes.
    while True:
        assert victim.poll() is None, "run ended before it could be killed"
        assert time.time() < deadline
        latest = find_latest_checkpoint(out)
        log = out / "metrics.jsonl"
        if latest is not None and log.exists() and max(_steps(log), default=0) > int(latest.name[5:]):
            break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = int(find_latest_checkpoint(out).name[5:])
    assert killed_at < 24
    # Also what a kill in the middle of a save leaves (too brief a moment to hit reliably by timing):
    # a half-written step folder, and a half-copied final/, both unheld and older than the grace period.
    stale = [out / "checkpoints" / ".step_00000030.abcd1234.tmp", out / ".final.wxyz5678.tmp"]
    for folder in stale:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half")
        os.utime(folder / "model.safetensors", (time.time() - 600,) * 2)
        os.utime(folder, (time.time() - 600,) * 2)
    with log.open("a") as fh:
        fh.write('{"split": "train", "step": 9')  # the line the kill tore
    resumed = subprocess.run(cmd + ["--resume"], env=_env(), timeout=300)
    assert resumed.returncode == 0
    steps = _steps(log)
    assert steps == list(range(1, 25)), f"killed at checkpoint {killed_at}: {steps}"
    leftovers = [p for p in [*out.iterdir(), *(out / "checkpoints").iterdir()] if p.name.startswith(".")]
    assert leftovers == []
    assert (out / "final").is_dir()
