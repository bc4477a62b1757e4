"""``scripts/recipe_sweep.py``: variants parse, train from scratch on one cache, and every kept
checkpoint is scored, finals included, with the reached step in the summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from script_loader import load_script

ROOT = Path(__file__).resolve().parent.parent


def test_a_variant_is_a_name_and_its_overrides() -> None:
    sweep = load_script("recipe_sweep")
    assert sweep.parse_variant("small=lm.dim=192,lm.num_layers=4") == ("small", ["lm.dim=192", "lm.num_layers=4"])
    assert sweep.parse_variant("base=") == ("base", [])
    for bad in ("no-equals", "=lm.dim=2", "bad name=x=1", "v=lm.dim"):
        with pytest.raises(SystemExit, match="--variant"):
            sweep.parse_variant(bad)


def test_onsets_are_prepared_once_per_cache_of_the_variants_that_weight_by_them() -> None:
    sweep = load_script("recipe_sweep")
    variants = {
        "a": ["train.steps=3"],
        "b": ["data.cache=c48", "lm.dim=8"],
        "c": ["data.cache=c48"],
        "d": ["data.cache=c32", "onsets.weight=0", "onsets.visual_weight=0"],
    }
    config = "configs/synthfoley_demo_model.yaml"  # onset weights on
    assert sweep.caches_needing_onsets(config, variants, Path("c64")) == [Path("c64"), Path("c48")]
    assert sweep.caches_needing_onsets("configs/synthfoley_demo.yaml", variants, Path("c64")) == []  # off there


def foleygen(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "foleygen", *args], cwd=ROOT, check=True, capture_output=True)


@pytest.mark.slow
def test_two_variants_train_and_their_checkpoints_are_scored(tmp_path: Path) -> None:
    sweep = load_script("recipe_sweep")
    data, test = tmp_path / "data", tmp_path / "test"
    for split, folder, num in (("train", data / "train", 4), ("val", data / "val", 2), ("test", test, 2)):
        foleygen("synth", str(folder), "--split", split, "--num", str(num), "--duration", "1", "--quiet")
    codec = ROOT / "foleygen" / "assets" / "demo" / "codec"
    cache = tmp_path / "cache"
    foleygen(
        "prepare", str(data), "--codec", str(codec), "--visual", "compact", "--image-size", "32",
        "--visual-fps", "25", "--duration", "1", "-o", str(cache), "--device", "cpu", "--quiet",
    )  # fmt: skip
    tiny = "lm.dim=32,lm.num_layers=1,lm.num_heads=2,visual.config.image_size=32,visual.config.dim=32"
    common = f"data.duration=1.0,train.batch_size=2,train.warmup_steps=1,{tiny}"
    out = tmp_path / "sweep"
    argv = [
        "--cache", str(cache), "--clips", str(test), "--codec", str(codec), "--out", str(out), "--device", "cpu",
        "--events", str(data),
        "--save-every", "2", "--eval-at", "2", "--eval-batch", "2", "--eval-threads", "1", "--threads", "1",
        "--num-workers", "0", "--parallel", "2", "--eval-parallel", "2", "--temperature", "0.3", "--cfg", "1.5",
        "--variant", f"four=train.steps=4,{common}", "--variant", f"three=train.steps=3,{common}",
    ]  # fmt: skip
    assert sweep.main(argv) == 0
    assert (cache / "onsets.json").is_file()  # written once, before the variants started

    summary = json.loads((out / "sweep.json").read_text())
    four, three = summary["variants"]["four"], summary["variants"]["three"]
    assert four["status"] == three["status"] == "done"
    assert sorted(four["scores"]) == ["2", "4"] and sorted(three["scores"]) == ["2", "3"]
    generated = four["scores"]["4"]["generated"]
    assert 0.0 <= generated["f1"] <= 1.0 and 0.0 <= generated["precision"] <= 1.0
    assert four["steps_per_s"] > 0
    scored_with = json.loads((out / "four@4.json").read_text())["generation"]
    assert (scored_with["temperature"], scored_with["cfg_coef"]) == (0.3, 1.5)

    # a second run finds everything done: nothing is trained or scored again
    before = {p: p.stat().st_mtime_ns for p in out.glob("*@*.json")}
    assert sweep.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*@*.json")} == before
