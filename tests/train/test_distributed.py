import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
def test_torchrun_two_processes_gloo_trains_the_lm_then_resumes(prepared_cache, tmp_path):
    cache, codec = prepared_cache
    out = tmp_path / "run"
    base = [
        TORCHRUN,
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "foleygen",
        "train",
        str(REPO / "configs" / "tiny_test.yaml"),
        f"data.cache={cache}",
        f"codec.path={codec}",
        "train.steps=6",
        "train.save_every=3",
        "train.val_every=3",
        "train.tensorboard=false",
        "-q",
        "--out",
        str(out),
    ]
    done = subprocess.run(base, env=_env(), timeout=240, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "final" / "model.safetensors").is_file() and (out / "final" / "codec").is_dir()
    state = torch.load(out / "checkpoints" / "step_00000006" / "trainer_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # one RNG state per rank
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # ranks drop differently
    assert state["param_checksums"][0] == state["param_checksums"][1]  # ...yet keep identical weights
    # 5 training clips, 2 ranks x 2 clips per step: the DistributedSampler gives an epoch of one step
    assert (state["epoch"], state["batch_in_epoch"]) == (5, 1)
    # the same command line continues the run under torchrun (late override after the flags)
    more = subprocess.run(base + ["--resume", "train.steps=9"], env=_env(), timeout=240, capture_output=True, text=True)
    assert more.returncode == 0, more.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "val"] == [3, 6, 9]
