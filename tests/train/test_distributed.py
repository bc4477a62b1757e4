import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")
def test_torchrun_two_processes_gloo_then_resume(tmp_path):
    cfg = {
        "task": "tiny_test",
        "task_module": "foleygen_tiny_task",
        "seed": 5,
        "tiny": {"n": 40},
        "train": {
            "steps": 10,
            "batch_size": 4,
            "lr": 0.01,
            "warmup_steps": 2,
            "log_every": 5,
            "save_every": 5,
            "tensorboard": False,
            "device": "cpu",
            "num_threads": 1,
        },
    }
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    base = [
        TORCHRUN,
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "foleygen",
        "train",
        str(config),
        "-q",
        "--out",
        str(out),
    ]
    done = subprocess.run(base, env=_env(), timeout=180, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "final" / "model.safetensors").is_file()
    state_dir = out / "checkpoints" / "step_00000010"
    import torch

    state = torch.load(state_dir / "trainer_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # one RNG state per rank
    # 40 items, 2 ranks x 4 per step: an epoch is 5 steps
    assert (state["epoch"], state["batch_in_epoch"]) == (2, 0) or (state["epoch"], state["batch_in_epoch"]) == (1, 5)
    # the same command line continues the run under torchrun
    more = subprocess.run(
        base + ["--resume", "train.steps=15"], env=_env(), timeout=180, capture_output=True, text=True
    )
    assert more.returncode == 0, more.stderr[-2000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "val"] == [10, 15]
