"""``scripts/run_ablation.py``: each variant is the demo config with its one change and the shared budget,
trained and scored by ``scripts/recipe_sweep.py`` (whose end-to-end test runs the machinery)."""

from __future__ import annotations

import argparse
from pathlib import Path

from script_loader import load_script


def test_each_variant_changes_one_thing_under_the_shared_budget() -> None:
    ablation, sweep = load_script("run_ablation"), load_script("recipe_sweep")
    args = argparse.Namespace(
        cache=Path("c"), clips=Path("t"), codec=Path("k"), out=Path("o"), variants=["causal", "prefix", "full"],
        steps=800, batch_size=16, lr=1e-3, warmup=100, seed=0, temperature=0.8, parallel=2, threads=1,
    )  # fmt: skip
    argv = ablation.sweep_argv(args)
    specs = [argv[i + 1] for i, a in enumerate(argv) if a == "--variant"]
    parsed = dict(sweep.parse_variant(s) for s in specs)
    budget = [
        "train.steps=800",
        "train.batch_size=16",
        "train.lr=0.001",
        "train.warmup_steps=100",
        "train.log_every=20",
    ]
    assert parsed == {
        "causal": budget,
        "prefix": [*budget, "lm.conditioning=prefix"],
        "full": [*budget, "lm.visual_attention=full"],
    }
    assert argv[argv.index("--config") + 1] == "configs/synthfoley_demo.yaml" and "--baselines" in argv


def test_its_variants_are_the_shipped_variant_configs() -> None:
    """``configs/synthfoley_demo_{full,frame_specific,prefix}.yaml`` train the same models by hand."""
    from foleygen.config import load_yaml

    ablation = load_script("run_ablation")
    root = Path(__file__).resolve().parents[1]
    for name, overrides in ablation.VARIANTS.items():
        if not overrides:
            continue
        by_hand = load_yaml(root / f"configs/synthfoley_demo_{name}.yaml")
        derived = load_yaml(root / ablation.CONFIG, overrides)
        assert {k: v for k, v in by_hand.items() if k != "out"} == {k: v for k, v in derived.items() if k != "out"}
