import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from foleygen.cli import main

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "codec_tiny.yaml"


@pytest.mark.slow
def test_trainer_trains_the_codec_task(tmp_path):
    out = tmp_path / "codec"
    assert main(["train", str(CONFIG), "train.steps=4", "train.save_every=2", "--out", str(out), "-q"]) == 0
    assert (out / "checkpoints" / "step_00000004" / "trainer_state.pt").is_file()
    from foleygen.codecs import load_codec

    codec = load_codec(str(out / "final"))
    assert codec.num_codebooks == 2 and codec.cardinality == 64
    # resuming a finished run is a no-op that still exits cleanly
    assert main(["train", str(CONFIG), "train.steps=4", "--out", str(out), "--resume", "-q"]) == 0


def test_trainer_fine_tunes_the_decoder_of_a_codec_directory(tmp_path):
    """`train.init_from=<codec dir> codec_train.train_only=decoder`: same codes, new decoder."""
    from foleygen.codecs import load_codec

    base_out = tmp_path / "base"
    assert main(["train", str(CONFIG), "train.steps=4", "--out", str(base_out), "-q"]) == 0
    out = tmp_path / "tuned"
    args = [f"train.init_from={base_out / 'final'}", "codec_train.train_only=decoder", "train.steps=3"]
    assert main(["train", str(CONFIG), *args, "--out", str(out), "-q"]) == 0
    base, tuned = load_codec(str(base_out / "final")), load_codec(str(out / "final"))
    wav = 0.3 * torch.sin(torch.arange(8000) / 7.0)[None, None]
    assert torch.equal(tuned.encode(wav), base.encode(wav))
    assert not torch.equal(tuned.decode(base.encode(wav)), base.decode(base.encode(wav)))


DISC = ["codec_train.discriminator=true", "codec_train.disc_start=2", "codec_train.warmup_steps=2"]


class _Killed(Exception):
    """Stands for a process killed right after a checkpoint."""


def _states_equal(a, b, where=""):
    """Recursive bit-exact comparison of two checkpoint states (tensors, numbers, containers)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _states_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _states_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.slow
def test_resume_with_the_discriminator_is_exact(tmp_path, monkeypatch):
    """8 steps straight == 4 steps, a kill after the checkpoint, a resume and 4 more: codec, discriminator
    and both optimisers' states bit for bit."""
    from safetensors.torch import load_file

    from foleygen.config import load_yaml
    from foleygen.train.trainer import Trainer, train

    config = load_yaml(CONFIG, [*DISC, "train.steps=8", "train.save_every=4"])
    train(config, out_dir=tmp_path / "full", quiet=True)

    original = Trainer.save_checkpoint

    def save_then_die(self):
        path = original(self)
        if self.step == 4:
            raise _Killed
        return path

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        train(config, out_dir=tmp_path / "part", quiet=True)
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    resumed = train(config, out_dir=tmp_path / "part", resume=True, quiet=True)
    assert resumed.resumed_from is not None and resumed.resumed_from.name == "step_00000004"

    final = "checkpoints/step_00000008"
    a = load_file(str(tmp_path / "full" / final / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / final / "model.safetensors"))
    assert any(k.startswith("discriminator.") for k in a) and any(k.startswith("codec.") for k in a)
    _states_equal(a, b, "weights")
    sa = torch.load(tmp_path / "full" / final / "trainer_state.pt", weights_only=True)
    sb = torch.load(tmp_path / "part" / final / "trainer_state.pt", weights_only=True)
    assert sa["extra_optimizers"]["discriminator"]["state"]  # the discriminator's Adam has moments
    for key in ("optimizer", "extra_optimizers", "scheduler", "rng"):
        _states_equal(sa[key], sb[key], key)


TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")
def test_two_processes_keep_codec_and_discriminator_identical(tmp_path):
    """Under torchrun (gloo), the discriminator's gradients are averaged like the codec's: every process
    ends with the same weights and the same optimiser states, the discriminator's included."""
    repo = CONFIG.parents[1]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    out = tmp_path / "run"
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "foleygen", "train", str(CONFIG), *DISC]
    cmd += ["train.steps=4", "train.save_every=2", "train.keep_checkpoints=2", "-q", "--out", str(out)]
    done = subprocess.run(cmd, env=env, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "differ between processes" not in done.stderr
    first = torch.load(out / "checkpoints" / "step_00000002" / "trainer_state.pt", weights_only=True)
    state = torch.load(out / "checkpoints" / "step_00000004" / "trainer_state.pt", weights_only=True)
    assert state["world_size"] == 2
    assert state["param_checksums"][0] == state["param_checksums"][1]
    assert state["optimizer_checksums"][0] == state["optimizer_checksums"][1]
    assert not first["extra_optimizers"]["discriminator"]["state"]  # disc_start=2: not stepped yet
    assert state["extra_optimizers"]["discriminator"]["state"]  # ... and stepped since
