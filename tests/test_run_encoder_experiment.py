"""``scripts/run_encoder_experiment.py``: one LM budget for every encoder arm, the manifest a user would
write for their clips, the shuffled floor's inputs and the summary table (the commands themselves are
the CLI's, tested on their own)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from script_loader import load_script

ROOT = Path(__file__).resolve().parent.parent


def test_every_arm_trains_one_lm_budget() -> None:
    from foleygen.config import load_yaml
    from foleygen.train.lm_config import LMRunConfig
    from foleygen.train.task import parse_run_config

    exp = load_script("run_encoder_experiment")
    kinds = {arm: [] if arm == "compact" else [f"visual.kind={arm}"] for arm in exp.CONFIGS}
    configs = {arm: load_yaml(ROOT / path, kinds[arm]) for arm, path in exp.CONFIGS.items()}
    compact = configs["compact"]
    for arm, config in configs.items():
        assert isinstance(parse_run_config(config), LMRunConfig)  # every key is one the LM task knows
        for section in ("lm", "train", "generation", "codec", "seed"):
            assert config[section] == compact[section], (arm, section)
        assert config["data"]["duration"] == compact["data"]["duration"]
        assert config["visual"]["kind"] == arm
    for arm in ("mobilenet_v2", "efficientnet_lite0"):  # what trains the encoder is off for a frozen one
        c = configs[arm]
        assert c["labels"]["weight"] == c["onsets"]["visual_weight"] == c["onsets"]["class_weight"] == 0
        assert c["data"]["hflip"] == 0 and c["onsets"]["weight"] == compact["onsets"]["weight"] > 0


def _clip(folder: Path, stem: str, split: str, events: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.mp4").write_bytes(b"")
    (folder / f"{stem}.json").write_text(json.dumps({"split": split, "events": events}))


def test_manifest_shuffled_inputs_and_summary(tmp_path: Path) -> None:
    from foleygen.data.manifest import load_manifest

    exp = load_script("run_encoder_experiment")
    clips = tmp_path / "synthfoley"
    _clip(clips / "train", "00000", "train", [{"class": "wood"}, {"class": "glass", "offscreen": True}])
    _clip(clips / "train", "00001", "train", [{"class": "metal"}, {"class": "drum"}])
    _clip(clips / "val", "00000", "val", [])
    (clips / "train" / "synthfoley.json").write_text("{}")  # the synthesiser's summary: not a clip
    assert exp.write_manifest(clips, tmp_path / "manifest.csv") == 3
    manifest = load_manifest(tmp_path / "manifest.csv")
    assert [(c.id, c.split, c.label) for c in manifest.entries] == [
        ("train/00000", "train", "wood"),
        ("train/00001", "train", "drum+metal"),
        ("val/00000", "val", None),
    ]

    test = tmp_path / "test"
    for stem in ("00000", "00001", "00002"):
        _clip(test, stem, "test", [])
    exp.shuffled_inputs(test, tmp_path / "shuffled")
    exp.shuffled_inputs(test, tmp_path / "shuffled")  # resumable
    assert {p.name: p.resolve().name for p in (tmp_path / "shuffled").iterdir()} == {
        "00000.mp4": "00001.mp4",
        "00001.mp4": "00002.mp4",
        "00002.mp4": "00000.mp4",
    }

    def report(f1: float, acc: float, fd: float) -> dict:
        onsets = {"precision": f1, "recall": f1, "f1": f1, "class_accuracy": acc}
        return {"metrics": {"onsets": onsets, "fad-aisfx": {"value": fd}, "fad-synthfoley": {"value": fd / 10}}}

    work = tmp_path / "work"
    (work / "mobilenet_v2").mkdir(parents=True)
    (work / "eval_codec.json").write_text(json.dumps(report(0.98, 0.95, 180.0)))
    (work / "mobilenet_v2" / "eval_generated.json").write_text(json.dumps(report(0.5, 0.4, 300.0)))
    (work / "mobilenet_v2" / "eval_shuffled.json").write_text(json.dumps(report(0.2, 0.25, 320.0)))
    (work / "mobilenet_v2" / "prepare.json").write_text(json.dumps({"frames_per_s": 15.0}))
    final = work / "mobilenet_v2" / "run" / "final"
    final.mkdir(parents=True)
    (final.parent / "config.json").write_text(
        json.dumps({"train": {"steps": 600}})
    )  # the budget the model was trained to
    args = argparse.Namespace(num_train=2, num_val=1, num_test=3, duration=2.0, steps=10, seed=0)
    result = exp.summary(work, args)
    assert list(result["arms"]) == ["mobilenet_v2"]  # arms that have not finished are left out
    assert result["arms"]["mobilenet_v2"]["generated"]["onset_f1"] == 0.5
    table = (work / "results.md").read_text().splitlines()
    assert result["arms"]["mobilenet_v2"]["lm_steps"] == 600
    assert table[2] == "| mobilenet_v2 | 600 | 0.500 | 0.400 | 300.000 | 30.000 | 0.200 / 0.250 | 15.0 |"
    assert table[3].startswith("| codec ceiling | | 0.980 | 0.950 | 180.000 |")
