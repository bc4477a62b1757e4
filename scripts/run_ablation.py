#!/usr/bin/env python
"""The paper's third experiment in miniature: visual attention masks and conditioning, same budget.

Trains one AudioLM per variant from scratch on the same prepared SynthFoley cache, with the same seed,
steps, batch and schedule, then scores each on the same test clips (onset precision / recall / F1,
offset, class accuracy; plus the same model given another clip's video, the shuffled floor) and prints
the table side by side:

* ``full``, ``causal``, ``frame_specific``: FoleyGen-C (cross-attention) with each visual mask;
* ``prefix``: FoleyGen-P (visual features prepended) with the causal mask, against ``causal``.

Each variant is ``configs/synthfoley_demo.yaml`` with one override; training and scoring are
``scripts/recipe_sweep.py``'s (its ``sweep.json`` is in ``--out`` too). The budget is counted in optimizer
steps, not minutes, so that variants sharing the CPU (``--parallel``) are not favoured by when they ran.
Runs resume: rerun the same command after an interruption.

    python scripts/run_ablation.py --cache runs/demo_cpu/cache --clips runs/test200 --steps 800 \\
        --out runs/ablation --parallel 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipe_sweep.py lives beside this script
import recipe_sweep  # noqa: E402

CONFIG = "configs/synthfoley_demo.yaml"
#: what each variant changes in CONFIG (the same as configs/synthfoley_demo_{full,frame_specific,prefix}.yaml)
VARIANTS: dict[str, list[str]] = {
    "full": ["lm.visual_attention=full"],
    "causal": [],
    "frame_specific": ["lm.visual_attention=frame_specific"],
    "prefix": ["lm.conditioning=prefix"],
}


def sweep_argv(args: argparse.Namespace) -> list[str]:
    """``recipe_sweep.py`` arguments for the chosen variants, all with the shared budget."""
    budget = [f"train.steps={args.steps}", f"train.batch_size={args.batch_size}", f"train.lr={args.lr}",
              f"train.warmup_steps={args.warmup}", "train.log_every=20"]  # fmt: skip
    argv = [
        "--cache", str(args.cache), "--clips", str(args.clips), "--codec", str(args.codec), "--out", str(args.out),
        "--config", CONFIG, "--seed", str(args.seed), "--parallel", str(args.parallel), "--threads",
        str(args.threads), "--num-workers", "1", "--save-every", "100", "--temperature", str(args.temperature),
        "--eval-threads", str(args.threads * args.parallel), "--baselines",
    ]  # fmt: skip
    for name in args.variants:
        argv += ["--variant", f"{name}=" + ",".join(budget + VARIANTS[name])]
    return argv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, required=True, help="prepared cache (foleygen prepare, compact visual)")
    p.add_argument("--clips", type=Path, required=True, help="SynthFoley test folder (foleygen synth --split test)")
    p.add_argument("--codec", type=Path, default=Path("foleygen/assets/demo/codec"), help="the cache's codec")
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of the evaluation")
    p.add_argument("--parallel", type=int, default=2, help="variants trained at once")
    p.add_argument("--threads", type=int, default=1, help="threads per training process")
    args = p.parse_args(argv)
    if recipe_sweep.main(sweep_argv(args)):
        return 1

    sweep = json.loads((args.out / "sweep.json").read_text())["variants"]
    rows = {}
    for name in args.variants:
        scores = sweep[name]["scores"]
        if not scores:
            raise SystemExit(f"ablation: {name} has no scored model ({sweep[name]['status']})")
        rows[name] = scores[max(scores, key=int)]  # its final model
    summary = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
               "cache": str(args.cache), "clips": str(args.clips), "results": rows}  # fmt: skip
    (args.out / "ablation.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{args.steps} steps x batch {args.batch_size}, seed {args.seed}")
    print("| variant | precision | recall | onset F1 | offset (ms) | class acc | shuffled F1 | shuffled class acc |")
    print("|---|---|---|---|---|---|---|---|")
    for name, both in rows.items():
        r, s = both["generated"], both["shuffled"]
        print(
            f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['offset_ms']:.1f} "
            f"| {r['class_acc']:.3f} | {s['f1']:.3f} | {s['class_acc']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
