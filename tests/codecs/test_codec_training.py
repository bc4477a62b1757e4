from pathlib import Path

import pytest
import torch

from foleygen.codecs import load_codec
from foleygen.codecs.training import CodecTask, RandomCrops
from foleygen.config import load_yaml
from foleygen.errors import ConfigError
from foleygen.train.task import TASKS

TINY = Path(__file__).resolve().parents[2] / "configs" / "codec_tiny.yaml"


def test_task_is_registered_and_validates_config():
    assert "codec" in TASKS
    with pytest.raises(ConfigError, match="data.train"):
        CodecTask({"task": "codec"})
    with pytest.raises(ConfigError, match="unknown source"):
        CodecTask({"data": {"train": [{"kind": "nope"}]}}).build_datasets()


def test_a_few_steps_by_hand_reduce_the_loss_and_export(tmp_path):
    torch.manual_seed(0)
    task = TASKS["codec"](load_yaml(TINY))
    model = task.build_model()
    train, val = task.build_datasets()
    assert len(train) == 4 and val is not None
    item = train[0]
    assert item.shape == (1, 6400) and item.dtype == torch.float32  # 0.4 s of 16 kHz, whole frames
    batch = task.collate([train[i] for i in range(2)])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses, metrics = [], {}
    for step in range(8):  # 3 unquantised warm-up steps, then k-means init and quantised steps
        loss, metrics = task.loss(model, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert model.codec.quantizer.initialised
    assert metrics["quantized"] == 1.0 and 0 < metrics["usage"] <= 1 and metrics["perplexity"] >= 1
    # a fixed batch: the reconstruction loss (without commitment) must fall
    rec = losses[-1] - 0.25 * metrics["commit"]
    assert rec < losses[0]
    val_metrics = task.validate(model, batch)
    assert {"mel", "si_sdr", "sc"} <= set(val_metrics)
    task.save_pretrained(model, tmp_path / "codec")
    codec = load_codec(str(tmp_path / "codec"))
    assert codec.encode(batch).shape == (2, 2, 20)


def test_random_crops_depend_on_epoch_only():
    source = [torch.arange(100.0)[None]]
    crops = RandomCrops(source, 10, seed=1)
    a = crops[0]
    assert torch.equal(a, crops[0])
    crops.set_epoch(5)
    assert a.shape == crops[0].shape == (1, 10)
    short = RandomCrops([torch.ones(1, 4)], 10, seed=1)[0]
    assert short.shape == (1, 10) and short[0, 4:].abs().sum() == 0


def test_discriminator_is_trained_by_its_own_optimiser_only():
    torch.manual_seed(0)
    config = load_yaml(TINY, ["codec_train.discriminator=true", "codec_train.disc_start=0",
                              "codec_train.warmup_steps=0"])
    task = TASKS["codec"](config)
    model = task.build_model()
    assert model.discriminator is not None
    batch = torch.randn(2, 1, 3200) * 0.1
    before = [p.detach().clone() for p in model.discriminator.parameters()]
    loss, metrics = task.loss(model, batch, step=0)
    assert {"d_loss", "g_adv", "g_fm"} <= set(metrics)
    # the discriminator took its own step inside loss() ...
    assert any(not torch.equal(a, b) for a, b in zip(before, model.discriminator.parameters(), strict=True))
    loss.backward()
    # ... and the generator's loss leaves it without gradients for the trainer's optimiser
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert model.codec.encoder[0].weight.grad is not None


def test_synthfoley_source_cache_dir(tmp_path):
    from foleygen.codecs.training import SOURCES

    entry = {"kind": "synthfoley", "num": 1, "duration": 0.5, "cache_dir": str(tmp_path)}
    first = SOURCES["synthfoley"](entry, 16000, 1)[0]
    assert first.shape == (1, 8000) and len(list(tmp_path.glob("*.npy"))) == 1
    again = SOURCES["synthfoley"](entry, 16000, 1)[0]  # a fresh process/worker reads the file
    assert torch.equal(first, again)
