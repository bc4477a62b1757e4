"""The SynthFoley recipe's clip-label term (foleygen.train.recipes.synthfoley.labels) inside the LM task."""

import pytest
import torch

# fixtures and config helpers shared with the LM task's own tests
from test_lm_task import feature_cache, labelled_config, labelled_frames_cache, lm_config  # noqa: F401

from foleygen.errors import ConfigError
from foleygen.train.lm_task import LMTask
from foleygen.train.optim import build_optimizer
from foleygen.train.recipes.synthfoley import ClipLabelTerm


def test_label_targets_are_multi_hot_over_the_training_vocabulary(labelled_frames_cache):  # noqa: F811
    term = LMTask(labelled_config(labelled_frames_cache)).term("labels")
    assert isinstance(term, ClipLabelTerm) and term.classes == ["blue", "red"]
    targets, known = term.targets(["red", "blue+red", None, "green"])
    assert targets.tolist() == [[0, 1], [1, 1], [0, 0], [0, 0]]  # "green": not a training class
    assert known.tolist() == [True, True, False, True]
    off = LMTask(labelled_config(labelled_frames_cache, weight=0.0))
    assert off.terms == []
    with pytest.raises(KeyError, match="no loss term 'labels' in this run"):
        off.term("labels")


def test_label_loss_needs_a_trained_encoder(feature_cache):  # noqa: F811
    cfg = lm_config(feature_cache)
    cfg["labels"] = {"weight": 1.0}
    with pytest.raises(ConfigError, match="set visual.kind: compact"):
        LMTask(cfg)


def test_label_loss_trains_the_visual_encoder_to_see_the_classes(labelled_frames_cache):  # noqa: F811
    task = LMTask(labelled_config(labelled_frames_cache))
    torch.manual_seed(0)
    model = task.build_model()
    assert model.head_names == ("label_head",) and model.label_head.out_features == 2
    train, _ = task.build_datasets()
    batch = task.collate([train[i] for i in range(len(train))])
    assert batch["labels"] == ["red", "blue", "blue+red", "red", "blue", "blue+red", None]
    loss, metrics = task.loss(model, batch, 0)
    assert {"code_loss", "label_loss", "label_acc"} <= set(metrics)
    assert float(loss.detach()) == pytest.approx(metrics["code_loss"] + metrics["label_loss"], rel=1e-5)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.visual.parameters())
    opt = build_optimizer(model, 3e-3, 0.0)
    for step in range(60):
        loss, metrics = task.loss(model, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert metrics["label_acc"] == 1.0 and metrics["label_loss"] < 0.2
    model.eval()
    assert task.validate(model, batch)["label_acc"] == 1.0


def test_clip_score_is_the_best_real_frame(labelled_frames_cache):  # noqa: F811
    task = LMTask(labelled_config(labelled_frames_cache))
    model = task.build_model()
    with torch.no_grad():
        model.label_head.weight.zero_()
        model.label_head.weight[:, 0] = 1.0
        model.label_head.bias.zero_()
    feats = torch.zeros(1, 4, 8)
    feats[0, :, 0] = torch.tensor([1.0, 5.0, 2.0, 9.0])
    mask = torch.tensor([[True, True, True, False]])  # frame 3 is padding
    assert model.label_head(feats, mask).tolist() == [[5.0, 5.0]]
    assert model.label_head(feats).tolist() == [[9.0, 9.0]]


def test_init_from_a_checkpoint_without_the_label_head(labelled_frames_cache, tmp_path):  # noqa: F811
    from media_helpers import tiny_codec_dir

    cfg = labelled_config(labelled_frames_cache, weight=0.0)
    cfg["codec"] = {"path": str(tiny_codec_dir(tmp_path / "codec"))}
    plain = LMTask(cfg)
    torch.manual_seed(1)
    source = plain.build_model()
    plain.save_pretrained(source, tmp_path / "ckpt")
    task = LMTask(labelled_config(labelled_frames_cache))
    model = task.build_model()
    task.load_pretrained(model, tmp_path / "ckpt")
    for name, p in source.state_dict().items():
        assert torch.equal(model.state_dict()[name], p), name
