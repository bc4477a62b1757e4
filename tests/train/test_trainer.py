import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import foleygen_tiny_task  # registers the "tiny_test" task
import pytest
import torch
from safetensors.torch import load_file

from foleygen.errors import ConfigError, DataError
from foleygen.train.ema import EMA
from foleygen.train.optim import build_optimizer, lr_factor, split_decay_params
from foleygen.train.trainer import TrainConfig, Trainer, find_latest_checkpoint, train

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def tiny_config(out, **train):
    cfg = {
        "task": "tiny_test",
        "task_module": "foleygen_tiny_task",
        "seed": 3,
        "out": str(out),
        "tiny": {"n": 48},
        "train": {
            "steps": 30,
            "batch_size": 8,
            "lr": 1e-2,
            "warmup_steps": 3,
            "log_every": 5,
            "save_every": 10,
            "tensorboard": False,
            "device": "cpu",
            **train,
        },
    }
    return cfg


def test_param_groups_split_norms_biases_embeddings():
    model = foleygen_tiny_task.TinyNet(8, 16, 4)
    decay, no_decay = split_decay_params(model)
    decay_ids = {id(p) for p in decay}
    assert decay_ids == {id(model.inp.weight), id(model.out.weight)}
    assert {id(p) for p in no_decay} == {
        id(model.inp.bias),
        id(model.out.bias),
        id(model.bias_emb.weight),
        id(model.norm.weight),
        id(model.norm.bias),
    }
    opt = build_optimizer(model, 1e-3, 0.1)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_lr_schedule_warmup_then_cosine():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(50, 100, 10, schedule="constant") == 1.0


def test_ema_tracks_weights():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, 0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # effective decay min(0.5, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.shadow["weight"], d * start + (1 - d) * model.weight)
    with ema.swapped_in(model):
        assert torch.equal(model.weight, ema.shadow["weight"])
    assert torch.equal(model.weight, start + 1.0)


def test_train_config_rejects_bad_values():
    with pytest.raises(ConfigError):
        TrainConfig(steps=0)
    with pytest.raises(ConfigError, match="unknown key"):
        Trainer({"task": "tiny_test", "train": {"stepz": 3}})
    with pytest.raises(ConfigError, match="unknown task"):
        Trainer({"task": "no_such_task", "train": {"device": "cpu"}})


def test_train_single_process_learns_and_checkpoints(tmp_path):
    cfg = tiny_config(tmp_path / "run", steps=40, ema_decay=0.9, grad_accum=2, val_every=20)
    trainer = train(cfg, quiet=True)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in records if r["split"] == "train"]
    assert train_losses[-1] < 0.5 * train_losses[0]
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [20, 40]
    assert val[-1]["acc"] > 0.8 and "ema_loss" in val[-1]
    assert find_latest_checkpoint(tmp_path / "run").name == "step_00000040"
    assert len(list((tmp_path / "run" / "checkpoints").glob("step_*"))) == 2  # keep_checkpoints
    final = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    # with EMA on, the exported weights are the averaged ones, the raw ones stay in the checkpoint
    assert torch.equal(final["out.weight"], trainer.ema.shadow["out.weight"])
    assert trainer.epoch >= 1  # 40 steps x 2 micro-batches of 8 > 48 items: several epochs


def test_training_set_smaller_than_a_batch(tmp_path):
    cfg = tiny_config(tmp_path, batch_size=64)
    with pytest.raises(DataError, match="fewer than one global batch"):
        Trainer(cfg, quiet=True)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _write_yaml(path, cfg):
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_exact(tmp_path):
    train_cfg = {
        "steps": 60,
        "batch_size": 4,
        "grad_accum": 2,
        "save_every": 7,
        "ema_decay": 0.8,
        "num_threads": 1,
        "keep_checkpoints": 3,
    }
    cfg = tiny_config("unused", **train_cfg)
    cfg["tiny"] = {"n": 20, "sleep": 0.04}  # 20 items / 8 per step: epochs end mid-step, mid-checkpoint
    yaml_path = _write_yaml(tmp_path / "tiny.yaml", cfg)
    cmd = [sys.executable, "-m", "foleygen", "train", str(yaml_path), "-q"]
    full = subprocess.Popen(cmd + ["--out", str(tmp_path / "full")], env=_env())
    killed_out = tmp_path / "killed"
    victim = subprocess.Popen(cmd + ["--out", str(killed_out)], env=_env())
    deadline = time.time() + 120
    while find_latest_checkpoint(killed_out) is None:
        assert victim.poll() is None, "run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)
    time.sleep(random.Random().uniform(0.0, 1.0))  # any step, possibly mid-checkpoint
    assert victim.poll() is None, "run finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = find_latest_checkpoint(killed_out)
    assert killed_at is not None and killed_at.name != "step_00000060"
    assert not (killed_out / "final").exists()
    resumed = subprocess.run(cmd + ["--out", str(killed_out), "--resume"], env=_env(), timeout=300)
    assert resumed.returncode == 0
    assert full.wait(timeout=300) == 0
    for name in (
        "final/model.safetensors",
        "checkpoints/step_00000060/model.safetensors",
        "checkpoints/step_00000060/ema.safetensors",
    ):
        a = load_file(str(tmp_path / "full" / name))
        b = load_file(str(killed_out / name))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs after kill + resume"


def test_cli_accepts_overrides_before_and_after_flags():
    from foleygen.cli import build_parser

    args = build_parser().parse_args(["train", "c.yaml", "a=1", "-q", "--resume", "--out", "o", "train.steps=3"])
    assert args.overrides == ["a=1", "train.steps=3"] and args.out == "o" and args.resume and args.quiet


def test_init_from_a_pretrained_directory(tmp_path):
    first = train(tiny_config(tmp_path / "a", steps=5), quiet=True)
    cfg = tiny_config(tmp_path / "b", steps=5, init_from=str(tmp_path / "a" / "final"))
    second = Trainer(cfg, quiet=True)
    for name, value in first.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[name], value)


@pytest.mark.parametrize(
    ("precision", "native", "bf16", "warned"),
    [
        ("auto", True, True, False),
        ("auto", False, False, False),
        ("bf16", True, True, False),
        ("bf16", False, True, True),  # honoured, but the user is told it is emulated
        ("fp32", True, False, False),
    ],
)
def test_precision_auto_takes_bf16_only_where_native(tmp_path, monkeypatch, capsys, precision, native, bf16, warned):
    import foleygen.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "native_bf16", lambda device: native)
    trainer = Trainer(tiny_config(tmp_path / "run", precision=precision, steps=1), quiet=True)
    assert trainer.bf16 is bf16
    with trainer._autocast():
        y = torch.nn.functional.linear(torch.randn(2, 3), torch.randn(4, 3))
    assert y.dtype == (torch.bfloat16 if bf16 else torch.float32)
    assert ("no native bf16" in capsys.readouterr().err) is warned


def test_native_bf16_follows_the_devices_own_report(monkeypatch):
    from foleygen.utils import native_bf16

    cpu = torch.device("cpu")
    for answer in (True, False):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda answer=answer: answer)
        assert native_bf16(cpu) is (answer and torch.backends.mkldnn.is_available())

    def no_onednn():
        raise RuntimeError("built without oneDNN")

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", no_onednn)
    assert native_bf16(cpu) is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_bf16(torch.device("cuda")) is False
    assert native_bf16(torch.device("meta")) is False


def _losses(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["split"] == "train"]


@pytest.mark.slow
def test_compiled_training_matches_eager_and_saves_the_same_names(tmp_path, monkeypatch):
    import torch._inductor.config

    # the tiny net has dropout: draw its masks as eager does, so that the two runs can be compared
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    eager = train(tiny_config(tmp_path / "eager", steps=10, log_every=1), quiet=True)
    compiled = train(tiny_config(tmp_path / "compiled", steps=10, log_every=1, compile=True), quiet=True)
    assert compiled._step_model is not compiled.model  # it really ran compiled (no fallback)
    assert _losses(tmp_path / "compiled") == pytest.approx(_losses(tmp_path / "eager"), rel=1e-4, abs=1e-6)
    saved = load_file(str(tmp_path / "compiled" / "final" / "model.safetensors"))
    reference = load_file(str(tmp_path / "eager" / "final" / "model.safetensors"))
    assert saved.keys() == reference.keys()  # no "_orig_mod." prefixes
    for name in saved:
        torch.testing.assert_close(saved[name], reference[name], rtol=1e-3, atol=1e-5)
    assert eager.step == compiled.step == 10


def test_a_failing_compilation_falls_back_to_eager_with_one_warning(tmp_path, monkeypatch, capsys):
    import foleygen.train.trainer as trainer_module

    class Broken(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args, **kwargs):
            raise RuntimeError("InductorError: no working C++ compiler found\nmore detail")

    monkeypatch.setattr(trainer_module.torch, "compile", lambda model: Broken(model))
    train(tiny_config(tmp_path / "eager", steps=6, log_every=1), quiet=True)
    trainer = train(tiny_config(tmp_path / "fallback", steps=6, log_every=1, compile=True), quiet=True)
    err = capsys.readouterr().err
    assert err.count("train.compile: the compiled step failed") == 1 and "no working C++ compiler" in err
    assert trainer._step_model is trainer.model
    assert _losses(tmp_path / "fallback") == _losses(tmp_path / "eager")  # the same run, bit for bit


def test_an_error_in_a_proven_compiled_step_is_raised(tmp_path, monkeypatch):
    import foleygen.train.trainer as trainer_module

    calls = {"n": 0}

    class FailsLater(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("a real error in step 3")
            return self.inner(*args, **kwargs)

    monkeypatch.setattr(trainer_module.torch, "compile", lambda model: FailsLater(model))
    with pytest.raises(RuntimeError, match="a real error in step 3"):
        train(tiny_config(tmp_path / "run", steps=6, compile=True), quiet=True)
