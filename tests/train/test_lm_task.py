import json
from pathlib import Path

import numpy as np
import pytest
import torch

from foleygen.cli import main
from foleygen.config import load_yaml
from foleygen.data.cache import ShardWriter, init_cache, make_fingerprint
from foleygen.errors import CheckpointError, ConfigError
from foleygen.train.lm_task import LMTask, masked_codebook_metrics
from foleygen.train.optim import build_optimizer

REPO = Path(__file__).resolve().parents[2]
CODEC = {
    "name": "unused",
    "sample_rate": 16000,
    "frame_rate": 50.0,
    "num_codebooks": 2,
    "cardinality": 16,
    "channels": 1,
}
VISUAL = {
    "kind": "clip",
    "path": "models/clip",
    "fps": 10.0,
    "input_fps": 10.0,
    "dim": 8,
    "image_size": 16,
    "trainable": False,
}


@pytest.fixture
def feature_cache(tmp_path):
    """A frozen-feature cache: 6 clips of 1 s (codes follow the features, so they are learnable)."""
    init_cache(tmp_path / "c", make_fingerprint(codec=CODEC, visual=VISUAL, duration=1.0))
    w = ShardWriter(tmp_path / "c", 0, 1)
    rng = np.random.default_rng(0)
    for i in range(6):
        feats = rng.standard_normal((10, 8)).astype(np.float32)
        codes = np.stack([np.repeat((feats[:, :2].sum(1) > 0) * 7 + k, 5) for k in range(2)]) % 16
        w.add(f"v{i}", codes, feats, split="val" if i == 5 else "train", label=None, seconds=1.0)
    w.finalize()
    return tmp_path / "c"


def lm_config(cache, **lm):
    return {
        "task": "lm",
        "seed": 0,
        "data": {"cache": str(cache), "duration": 1.0},
        "lm": {"dim": 32, "num_layers": 2, "num_heads": 4, "cfg_dropout": 0.1, **lm},
    }


def test_lm_config_takes_data_numbers_from_the_cache(feature_cache):
    task = LMTask(lm_config(feature_cache))
    c = task.lm_config
    assert (c.num_codebooks, c.cardinality, c.frame_rate, c.fps, c.visual_dim) == (2, 16, 50.0, 10.0, 8)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"num_codebooks": 4}, "cache has codec num_codebooks = 2, the model expects 4"),
        ({"cardinality": 2048}, "cache has codec cardinality = 16, the model expects 2048"),
        ({"visual_dim": 512}, "cache has visual dim = 8, the model expects 512"),
        ({"fps": 25}, "cache has visual fps = 10.0, the model expects 25"),
    ],
)
def test_cache_model_mismatch_is_a_config_error_naming_both(feature_cache, override, message):
    with pytest.raises(ConfigError, match=message) as err:
        LMTask(lm_config(feature_cache, **override))
    assert str(feature_cache) in str(err.value)


def test_compact_encoder_needs_a_frames_cache(feature_cache):
    cfg = lm_config(feature_cache)
    cfg["visual"] = {
        "kind": "compact",
        "config": {"fps": 10.0, "image_size": 16, "dim": 8, "channels": [8], "groups": 4},
    }
    with pytest.raises(ConfigError, match="visual store = features, the model expects frames"):
        LMTask(cfg)


def test_masked_loss_ignores_padding():
    logits = torch.randn(2, 2, 6, 16)
    codes = torch.randint(0, 16, (2, 2, 6))
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    loss, metrics = masked_codebook_metrics(logits, codes, mask)
    noisy = logits.clone()
    noisy[1, :, 3:] = 100 * torch.randn(2, 3, 16)
    codes2 = codes.clone()
    codes2[1, :, 3:] = 0
    loss2, _ = masked_codebook_metrics(noisy, codes2, mask)
    assert torch.allclose(loss, loss2)
    ce = torch.nn.functional.cross_entropy(
        logits[0, 1], codes[0, 1], reduction="sum"
    ) + torch.nn.functional.cross_entropy(logits[1, 1, :3], codes[1, 1, :3], reduction="sum")
    assert metrics["loss_cb1"] == pytest.approx(float(ce) / 9, rel=1e-5)
    assert set(metrics) >= {"acc", "ppl", "loss_cb0", "acc_cb0", "acc_cb1"}


def test_lm_loss_goes_down_on_a_fixed_batch(feature_cache):
    task = LMTask(lm_config(feature_cache))
    torch.manual_seed(0)
    model = task.build_model()
    train, val = task.build_datasets()
    assert len(train) == 5 and len(val) == 1
    batch = task.collate([train[i] for i in range(4)])
    assert batch["codes"].shape == (4, 2, 50) and batch["visual"].shape == (4, 10, 8)
    opt = build_optimizer(model, 3e-3, 0.0)
    losses = []
    for step in range(40):
        loss, _ = task.loss(model, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]
    model.eval()
    assert task.validate(model, batch)["acc"] > 0.9


@pytest.mark.slow
def test_train_lm_end_to_end_then_load_and_generate(prepared_cache, tmp_path, capsys):
    cache, codec = prepared_cache
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            str(REPO / "configs" / "tiny_test.yaml"),
            f"data.cache={cache}",
            f"codec.path={codec}",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert rc == 0
    assert "sample logging failed" not in capsys.readouterr().err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [6, 12] and {"loss_cb0", "acc_cb1", "ppl"} <= set(val[-1])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (out / "tb").glob("events.out.tfevents.*")
    tb = EventAccumulator(str(events), size_guidance={"audio": 0, "tensors": 0})
    tb.Reload()
    assert "sample_0/generated" in tb.Tags()["audio"] and "val/loss_cb1" in tb.Tags()["scalars"]
    from foleygen.api import FoleyGen

    model = FoleyGen.from_pretrained(out / "final")
    assert model.visual_encoder.trainable and model.lm.num_codebooks == 2 and model.duration == 0.8
    frames = torch.randint(0, 255, (8, 16, 16, 3), dtype=torch.uint8)
    wav = model.generate([frames], fps_of_tensors=10.0, seed=0)
    assert wav.shape == (1, 1, 12800) and torch.isfinite(wav).all()
    # fine-tuning starts from the exported weights
    cfg = load_yaml(
        REPO / "configs" / "tiny_test.yaml",
        [f"data.cache={cache}", f"codec.path={codec}", f"train.init_from={out / 'final'}", "lm.cfg_dropout=0.2"],
    )
    from foleygen.train.trainer import Trainer

    ft = Trainer(cfg, out_dir=tmp_path / "ft", quiet=True)
    for name, value in model.lm.state_dict().items():
        assert torch.equal(ft.model.lm.state_dict()[name], value)
    # another visual attention mask (or lookahead) shapes no weight: fine-tuning may convert a model to it
    other_mask = "frame_specific" if model.lm.config.visual_attention != "frame_specific" else "full"
    cfg = load_yaml(
        REPO / "configs" / "tiny_test.yaml",
        [
            f"data.cache={cache}",
            f"train.init_from={out / 'final'}",
            f"lm.visual_attention={other_mask}",
            "lm.visual_lookahead=1",
        ],
    )
    ft = Trainer(cfg, out_dir=tmp_path / "ft_mask", quiet=True)
    assert ft.model.lm.config.visual_attention == other_mask and ft.model.lm.config.visual_lookahead == 1
    for name, value in model.lm.state_dict().items():
        assert torch.equal(ft.model.lm.state_dict()[name], value)
    bad = load_yaml(
        REPO / "configs" / "tiny_test.yaml",
        [f"data.cache={cache}", f"train.init_from={out / 'final'}", "lm.num_layers=3"],
    )
    with pytest.raises(CheckpointError, match="num_layers: 2 vs 3"):
        Trainer(bad, out_dir=tmp_path / "ft2", quiet=True)


COMPACT = {"fps": 10.0, "image_size": 16, "dim": 8, "channels": [8], "groups": 4}


@pytest.fixture
def labelled_frames_cache(tmp_path):
    """A frames cache of 8 clips of 1 s: a red or a blue square in some frames, labelled ``red``/``blue``/both."""
    visual = {**VISUAL, "kind": "compact", "path": None, "dim": 8, "trainable": True, "store": "frames"}
    init_cache(tmp_path / "f", make_fingerprint(codec=CODEC, visual=visual, duration=1.0))
    w = ShardWriter(tmp_path / "f", 0, 1)
    rng = np.random.default_rng(0)
    labels = ["red", "blue", "blue+red", "red", "blue", "blue+red", "red", None]
    for i, label in enumerate(labels):
        frames = np.full((10, 16, 16, 3), 90, dtype=np.uint8)
        for name, channel, at in (("red", 0, slice(1, 8)), ("blue", 2, slice(8, 15))):
            if label and name in label.split("+"):
                f0 = int(rng.integers(0, 6))  # the object is on screen in frames f0 .. f0 + 3 only
                frames[f0 : f0 + 4, at, at] = 0
                frames[f0 : f0 + 4, at, at, channel] = 255
        codes = rng.integers(0, 16, (2, 50))
        w.add(f"v{i}", codes, frames, split="val" if i == 6 else "train", label=label, seconds=1.0)
    w.finalize()
    return tmp_path / "f"


def labelled_config(cache, weight=1.0):
    cfg = lm_config(cache)
    cfg["visual"] = {"kind": "compact", "config": COMPACT}
    cfg["labels"] = {"weight": weight}
    return cfg


def test_data_hflip_reaches_the_training_crops_only(labelled_frames_cache, feature_cache):
    cfg = labelled_config(labelled_frames_cache)
    cfg["data"]["hflip"] = 1.0
    train, val = LMTask(cfg).build_datasets()
    plain_train, _ = LMTask(labelled_config(labelled_frames_cache)).build_datasets()
    plain = plain_train[0]["visual"]  # [F, S, S, 3], a red square left of centre in some frames
    assert not torch.equal(plain, plain.flip(2)) and torch.equal(train[0]["visual"], plain.flip(2))
    assert train.hflip == 1.0 and val.hflip == 0.0
    bad = lm_config(feature_cache)
    bad["data"]["hflip"] = 0.5
    with pytest.raises(ConfigError, match="data.hflip mirrors stored frames"):
        LMTask(bad).build_datasets()
