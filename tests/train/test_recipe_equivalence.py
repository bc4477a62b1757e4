"""The SynthFoley recipe's loss terms train exactly as they did inside the LM task.

A tiny LM run with every recipe term on (clip labels, onset-weighted codes, the visual onset loss and the
visual onset-class loss) trains 4 optimiser steps through the real :class:`Trainer` on a synthetic frames
cache, and its logged losses and final weights are compared with numbers recorded from the code before
the terms were moved out of ``foleygen/train/lm_task.py`` (commit of the first ``recipe:`` change, by
running this file with ``FOLEYGEN_RECORD_RECIPE=1``, which prints the measured numbers as Python instead
of asserting them). The checkpoint's weight names are compared too: runs saved before the move resume
after it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from foleygen.data.cache import ShardWriter, init_cache, make_fingerprint
from foleygen.train.lm_task import LMTask

SR, RATE, FPS = 16000, 50.0, 10.0
CODEC = {"name": "clicks", "sample_rate": SR, "frame_rate": RATE, "num_codebooks": 2, "cardinality": 16, "channels": 1}
VISUAL = {
    "kind": "compact",
    "path": None,
    "fps": FPS,
    "input_fps": FPS,
    "dim": 8,
    "image_size": 16,
    "trainable": True,
    "store": "frames",
}
COMPACT = {"fps": FPS, "image_size": 16, "dim": 8, "channels": [8], "groups": 4}
#: audio frames (50 Hz) of each clip's impacts, and their classes (clip 5 is the validation clip)
HITS = [[6, 31], [17], [42, 12], [26], [3, 36], [21]]
CLASSES = [["glass", "wood"], ["wood"], ["glass", "glass"], ["wood"], ["wood", "glass"], ["glass"]]
COLOURS = {"glass": (250, 40, 40), "wood": (40, 40, 250)}


def burst_decode(codes: torch.Tensor) -> torch.Tensor:
    """A stand-in codec's decoder: a decaying noise burst at every frame whose codebook-0 code is 7."""
    B, _, T = codes.shape
    hop = int(SR / RATE)
    wav = torch.zeros(B, 1, T * hop)
    burst = torch.randn(hop * 4, generator=torch.Generator().manual_seed(0)) * torch.exp(-torch.arange(hop * 4) / 80.0)
    for b in range(B):
        for t in torch.nonzero(codes[b, 0] == 7).flatten().tolist():
            seg = wav[b, 0, t * hop : t * hop + len(burst)]
            seg += 0.5 * burst[: len(seg)]
    return wav


class BurstCodec(nn.Module):
    sample_rate, frame_rate, num_codebooks, cardinality = SR, RATE, 2, 16

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return burst_decode(codes)


@pytest.fixture
def recipe_cache(tmp_path):
    """6 labelled frames clips of 1 s with coloured flash frames at their impacts, and their event files."""
    init_cache(tmp_path / "cache", make_fingerprint(codec=CODEC, visual=VISUAL, duration=1.0))
    w = ShardWriter(tmp_path / "cache", 0, 1)
    rng = np.random.default_rng(7)
    for i, (hits, classes) in enumerate(zip(HITS, CLASSES, strict=True)):
        codes = np.zeros((2, 50), dtype=np.int64)
        codes[0, hits] = 7
        codes[1] = rng.integers(0, 16, 50)
        frames = np.full((10, 16, 16, 3), 60, dtype=np.uint8)
        events = [{"time": 0.55, "class": "metal", "kind": "impact", "offscreen": True}]
        for a, name in zip(hits, classes, strict=True):
            frames[int(a / RATE * FPS)] = COLOURS[name]
            events.append({"time": a / RATE, "class": name, "kind": "impact", "offscreen": False})
        label = "+".join(sorted(set(classes)))
        w.add(f"r{i}", codes, frames, split="val" if i == 5 else "train", label=label, seconds=1.0)
        path = tmp_path / "events" / f"r{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"duration": 1.0, "events": events}))
    w.finalize()
    return tmp_path / "cache"


def recipe_config(cache, codec, out):
    return {
        "task": "lm",
        "seed": 5,
        "data": {"cache": str(cache), "duration": 0.8},
        "codec": {"path": str(codec)},
        "visual": {"kind": "compact", "config": COMPACT},
        "lm": {"dim": 16, "num_layers": 1, "num_heads": 2, "cfg_dropout": 0.3},
        "labels": {"weight": 0.5},
        "onsets": {"weight": 2.0, "visual_weight": 1.0, "class_weight": 3.0, "events": str(cache.parent / "events")},
        "samples": {"num": 0},
        "train": {
            "steps": 4,
            "batch_size": 2,
            "lr": 3e-3,
            "warmup_steps": 0,
            "log_every": 1,
            "sample_every": -1,
            "tensorboard": False,
            "device": "cpu",
        },
        "out": str(out),
    }


#: Measured on the code before the move (see the module docstring): per step, the logged training metrics
#: named in LOGGED; then the validation metrics; then, per weight of the final checkpoint, (sum, sum of |w|).
LOGGED = ("loss", "code_loss", "weighted_loss", "label_loss", "visual_onset_loss", "visual_onset_class_loss")
RECORDED_TRAIN: list[dict[str, float]] = [
    {
        "loss": 6.520303726196289,
        "code_loss": 2.783559203147888,
        "weighted_loss": 2.782510280609131,
        "label_loss": 0.9064538478851318,
        "visual_onset_loss": 0.681637167930603,
        "visual_onset_class_loss": 0.8676429390907288,
    },
    {
        "loss": 5.426750183105469,
        "code_loss": 2.7078765630722046,
        "weighted_loss": 2.7142696380615234,
        "label_loss": 0.2785463333129883,
        "visual_onset_loss": 0.5785773396492004,
        "visual_onset_class_loss": 0.6648766994476318,
    },
    {
        "loss": 5.091519355773926,
        "code_loss": 2.6551411151885986,
        "weighted_loss": 2.654412269592285,
        "label_loss": 0.5727436542510986,
        "visual_onset_loss": 0.523386538028717,
        "visual_onset_class_loss": 0.5424496531486511,
    },
    {
        "loss": 4.982451438903809,
        "code_loss": 2.6227176189422607,
        "weighted_loss": 2.627855062484741,
        "label_loss": 0.892086386680603,
        "visual_onset_loss": 0.505195677280426,
        "visual_onset_class_loss": 0.4677858352661133,
    },
]
RECORDED_VAL: dict[str, float] = {
    "acc": 0.512499988079071,
    "ppl": 13.96582317352295,
    "loss_cb0": 2.463688373565674,
    "acc_cb0": 0.9750000238418579,
    "loss_cb1": 2.809537887573242,
    "acc_cb1": 0.05000000074505806,
    "loss": 2.636613130569458,
    "label_loss": 0.849134087562561,
    "label_acc": 0.5,
    "visual_onset_loss": 0.5222840905189514,
    "visual_onset_f1": 0.0,
    "visual_onset_class_loss": 0.4584185779094696,
    "visual_onset_class_acc": 0.0,
}
RECORDED_WEIGHTS: dict[str, tuple[float, float]] = {
    "label_head.bias": (-0.38733553886413574, 0.38733553886413574),
    "label_head.weight": (-1.146904956549406, 3.5143845193088055),
    "lm.embed.weight": (-0.25530502981564496, 8.74899103284406),
    "lm.head.weight": (-0.12043461005669087, 8.715022727788892),
    "lm.null_condition": (-0.17665346572175622, 0.383806727360934),
    "lm.transformer.blocks.0.attn.out.weight": (-0.03656849182152655, 3.0192932562931674),
    "lm.transformer.blocks.0.attn.qkv.weight": (-1.1051715871690249, 12.712607526362262),
    "lm.transformer.blocks.0.cross.kv.weight": (0.3849276874534553, 8.187912802924984),
    "lm.transformer.blocks.0.cross.out.weight": (-0.2159179929003585, 3.1535111465200316),
    "lm.transformer.blocks.0.cross.q.weight": (0.0855881031966419, 4.094946861026983),
    "lm.transformer.blocks.0.mlp.fc.weight": (-0.3272553376009455, 17.184092011200846),
    "lm.transformer.blocks.0.mlp.proj.weight": (0.2775114846881479, 12.528454251179937),
    "lm.transformer.blocks.0.norm1.bias": (-0.0031482900376431644, 0.08551895275013521),
    "lm.transformer.blocks.0.norm1.weight": (16.012040436267853, 16.012040436267853),
    "lm.transformer.blocks.0.norm2.bias": (0.011636230919975787, 0.07080840499838814),
    "lm.transformer.blocks.0.norm2.weight": (16.03124302625656, 16.03124302625656),
    "lm.transformer.blocks.0.norm_cross.bias": (0.000282217467429291, 0.0016398320103689912),
    "lm.transformer.blocks.0.norm_cross.weight": (16.000209033489227, 16.000209033489227),
    "lm.transformer.norm.bias": (-0.0029810587875545025, 0.1083200047723949),
    "lm.transformer.norm.weight": (16.013920426368713, 16.013920426368713),
    "lm.visual_norm.bias": (-0.005578559183049947, 0.03765991231193766),
    "lm.visual_norm.weight": (8.00689297914505, 8.00689297914505),
    "lm.visual_proj.bias": (-0.03594560269266367, 0.08642971911467612),
    "lm.visual_proj.weight": (0.19738690674421377, 1.8951086735760327),
    "onset_class_head.bias": (0.1605706661939621, 0.1605706661939621),
    "onset_class_head.weight": (1.6194853207562119, 7.030410825973377),
    "onset_head.bias": (0.06462576240301132, 0.06462576240301132),
    "onset_head.weight": (0.22656132490374148, 3.4822202234063298),
    "visual.backbone.0.bias": (0.05473658815026283, 0.6020851694047451),
    "visual.backbone.0.weight": (-3.03490246241563, 41.09429329636623),
    "visual.backbone.1.bias": (-0.004193249857053161, 0.051720848539844155),
    "visual.backbone.1.weight": (7.9961400628089905, 7.9961400628089905),
    "visual.norm.bias": (-0.022603261284530163, 0.054419209249317646),
    "visual.norm.weight": (8.000426411628723, 8.000426411628723),
    "visual.proj.bias": (0.23263439419679344, 0.2535741243045777),
    "visual.proj.weight": (-4.348669697297737, 44.08090886141872),
}


def run_recipe(tmp_path, recipe_cache, monkeypatch):
    from media_helpers import tiny_codec_dir

    from foleygen.train.trainer import Trainer

    codec = tiny_codec_dir(tmp_path / "codec")
    cfg = recipe_config(recipe_cache, codec, tmp_path / "run")
    # The onsets come from the stand-in codec (bursts where the codes say), computed when the task is
    # made; the checkpoint then saves the real tiny codec.
    with monkeypatch.context() as patch:
        patch.setattr(LMTask, "codec", lambda self: BurstCodec())
        task = LMTask(cfg)
    trainer = Trainer(cfg, task=task, out_dir=tmp_path / "run", quiet=True)
    val = trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [{k: r[k] for k in LOGGED} for r in records if r["split"] == "train"]
    weights = load_file(str(tmp_path / "run" / "checkpoints" / "step_00000004" / "model.safetensors"))
    sums = {k: (float(v.double().sum()), float(v.double().abs().sum())) for k, v in sorted(weights.items())}
    return train, val, sums


def test_recipe_terms_train_as_before_the_move(tmp_path, recipe_cache, monkeypatch):
    train, val, sums = run_recipe(tmp_path, recipe_cache, monkeypatch)
    if os.environ.get("FOLEYGEN_RECORD_RECIPE"):
        print(f"RECORDED_TRAIN = {train!r}\nRECORDED_VAL = {val!r}\nRECORDED_WEIGHTS = {sums!r}")
        return
    assert len(train) == 4
    for got, want in zip(train, RECORDED_TRAIN, strict=True):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-7)
    assert set(val) == set(RECORDED_VAL)
    assert val == pytest.approx(RECORDED_VAL, rel=1e-5, abs=1e-7)
    # the same weight names (heads included: a run saved before the move resumes after it), the same values
    assert list(sums) == list(RECORDED_WEIGHTS)
    for name, (total, size) in sums.items():
        assert total == pytest.approx(RECORDED_WEIGHTS[name][0], rel=1e-4, abs=1e-5), name
        assert size == pytest.approx(RECORDED_WEIGHTS[name][1], rel=1e-5, abs=1e-6), name
