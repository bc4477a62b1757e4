import json
import shlex
from pathlib import Path

import pytest

from foleygen.config import from_dict, load_yaml
from foleygen.lm.model import LMConfig
from foleygen.train.lm_config import LMDataConfig
from foleygen.train.trainer import TrainConfig

CONFIGS = sorted(
    p for p in (Path(__file__).resolve().parents[2] / "configs").glob("*.yaml") if not p.name.startswith("codec_")
)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_lm_config_parses(path):
    cfg = load_yaml(path)
    assert cfg["task"] == "lm"
    train = from_dict(TrainConfig, cfg.get("train", {}), "train")
    assert train.steps >= 1
    if cfg["data"]["cache"] is not None:
        from_dict(LMDataConfig, cfg["data"], "data")
    # the data-side numbers come from the cache at run time; any valid values do here
    lm = from_dict(
        LMConfig,
        {"num_codebooks": 4, "cardinality": 2048, "frame_rate": 50.0, "fps": 25.0, "visual_dim": 512, **cfg["lm"]},
        "lm",
    )
    assert lm.conditioning in ("cross", "prefix")
    if cfg.get("visual", {}).get("kind") == "compact":
        from foleygen.vision.compact import CompactVisualConfig

        from_dict(CompactVisualConfig, cfg["visual"]["config"], "visual.config")


def test_paper_setting_and_variants():
    root = CONFIGS[0].parent
    paper = load_yaml(root / "paper_vggsound_clip.yaml")
    assert (paper["lm"]["num_layers"], paper["lm"]["dim"], paper["lm"]["num_heads"]) == (24, 1024, 16)
    assert paper["lm"]["cfg_dropout"] == 0.1 and paper["generation"]["top_k"] == 250
    assert paper["generation"]["cfg_coef"] == 3.0 and paper["data"]["duration"] == 10.0
    assert load_yaml(root / "paper_vggsound_clip_frame_specific.yaml")["lm"]["visual_attention"] == "frame_specific"
    prefix = load_yaml(root / "paper_vggsound_clip_prefix.yaml")
    assert prefix["lm"]["conditioning"] == "prefix" and prefix["lm"]["num_layers"] == 24  # inherited
    assert load_yaml(root / "paper_vggsound_videomae.yaml")["visual"]["kind"] == "videomae"
    demo = load_yaml(root / "synthfoley_demo.yaml")
    assert demo["visual"]["config"]["image_size"] == 64 and demo["lm"]["visual_attention"] == "causal"
    assert (demo["lm"]["dim"], demo["lm"]["num_layers"], demo["lm"]["num_heads"]) == (256, 6, 4)


def test_the_demo_model_recipe_matches_the_shipped_model():
    """``foleygen/assets/demo`` is ``make demo-model``'s output: its architecture, decoding and step count
    are the default recipe's, and its training log says the one command made it."""
    root = CONFIGS[0].parent
    recipe = load_yaml(root / "synthfoley_demo_model.yaml")
    shipped_dir = root.parent / "foleygen" / "assets" / "demo"
    shipped = json.loads((shipped_dir / "config.json").read_text())
    assert recipe["visual"] == shipped["visual"]
    for key, value in recipe["lm"].items():
        assert shipped["lm"][key] == value, key
    for key in ("top_k", "temperature", "cfg_coef"):
        assert shipped["generation"][key] == recipe["generation"][key], key
    assert recipe["labels"]["weight"] > 0 and recipe["onsets"]["weight"] > 0 and recipe["onsets"]["class_weight"] > 0
    log = json.loads((shipped_dir / "training_log.json").read_text())
    for command in [log["command"], *(part["command"] for part in log["parts"])]:
        flags = {arg for arg in shlex.split(command) if arg.startswith("--")}
        assert flags <= {"--workdir", "--install-to", "--workers", "--quiet"}, command  # none changes the recipe
    assert log["plan"]["lm_steps"] == recipe["train"]["steps"] == log["lm"]["final_step"]
    # made from nothing: every phase ran (in one part or several, when the run was resumed)
    assert {p["phase"] for p in log["parts"]} == {"synth", "codec", "prepare", "lm"}


def test_make_demo_model_trains_the_large_recipe_made_smaller():
    """``make demo-model``'s default config keeps every choice of the larger recipe but the LM's size, its
    batches and schedule, the onset-class loss and the decoding (docs/RESULTS.md measures both)."""
    root = CONFIGS[0].parent
    small, large = (
        load_yaml(root / name) for name in ("synthfoley_demo_model.yaml", "synthfoley_demo_model_large.yaml")
    )
    assert small["visual"] == large["visual"] and small["data"] == large["data"] and small["labels"] == large["labels"]
    for key in ("visual_lookahead", "conditioning", "visual_attention", "num_heads"):
        assert small["lm"][key] == large["lm"][key], key
    assert small["lm"]["dim"] < large["lm"]["dim"] and small["lm"]["num_layers"] < large["lm"]["num_layers"]
    assert small["train"]["batch_size"] < large["train"]["batch_size"] and small["train"]["ema_decay"] > 0
    for key in ("weight", "visual_weight"):
        assert small["onsets"][key] == large["onsets"][key], key
    assert small["onsets"]["class_weight"] > 0 and small["onsets"]["events"]
    assert large["onsets"].get("class_weight", 0) == 0
