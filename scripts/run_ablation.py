#!/usr/bin/env python
"""The paper's third experiment in miniature: visual attention masks and conditioning, same budget.

Trains one AudioLM per variant from scratch on the same prepared SynthFoley cache, with the same seed,
steps, batch and schedule, then scores each on the same test clips with ``scripts/eval_demo_model.py``
(onset precision / recall / F1, offset, class accuracy; plus the same model given another clip's video,
the shuffled floor) and prints the table side by side:

* ``full``, ``causal``, ``frame_specific``: FoleyGen-C (cross-attention) with each visual mask;
* ``prefix``: FoleyGen-P (visual features prepended) with the causal mask, against ``causal``.

The budget is counted in optimizer steps, not minutes, so that variants sharing the CPU (``--parallel``)
are not favoured by when they ran. Runs resume: rerun the same command after an interruption.

    python scripts/run_ablation.py --cache runs/demo_cpu/cache --clips runs/test200 --steps 800 \\
        --out runs/ablation --parallel 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, str] = {
    "full": "configs/synthfoley_demo_full.yaml",
    "causal": "configs/synthfoley_demo.yaml",
    "frame_specific": "configs/synthfoley_demo_frame_specific.yaml",
    "prefix": "configs/synthfoley_demo_prefix.yaml",
}


def train_command(config: str, out: Path, args: argparse.Namespace) -> list[str]:
    """``foleygen train`` for one variant, resumable, with the shared budget."""
    return [
        sys.executable, "-m", "foleygen", "train", config, "--resume", "--out", str(out), "-q",
        f"data.cache={args.cache}", f"train.steps={args.steps}", f"train.batch_size={args.batch_size}",
        f"train.lr={args.lr}", f"train.warmup_steps={args.warmup}", f"seed={args.seed}",
        f"train.num_threads={args.threads}", "train.num_workers=1", "train.val_every=0",
        "train.sample_every=-1", "train.save_every=100", "train.log_every=20",
    ]  # fmt: skip


def train_all(names: list[str], args: argparse.Namespace) -> None:
    """Train ``names``, ``args.parallel`` at a time (each with ``args.threads`` threads)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    pending = [n for n in names if not (args.out / n / "final" / "config.json").exists()]
    while pending:
        group, pending = pending[: args.parallel], pending[args.parallel :]
        procs = []
        for name in group:
            (args.out / name).mkdir(parents=True, exist_ok=True)
            log = open(args.out / f"{name}.log", "a")  # noqa: SIM115 -- closed below
            cmd = train_command(VARIANTS[name], args.out / name, args)
            print("$", " ".join(cmd), flush=True)
            procs.append((name, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        for name, proc, log in procs:
            code = proc.wait()
            log.close()
            if code:
                raise SystemExit(f"ablation: training {name} failed (exit {code}); see {args.out / (name + '.log')}")


def evaluate(name: str, args: argparse.Namespace) -> dict:
    """``{generated, shuffled, codec, clean}`` scores of one trained variant (cached in ``OUT/NAME.json``)."""
    result = args.out / f"{name}.json"
    if not result.exists():
        cmd = [
            sys.executable, str(ROOT / "scripts" / "eval_demo_model.py"), "--model", str(args.out / name / "final"),
            "--clips", str(args.clips), "--temperature", str(args.temperature),
            "--json", str(result),
        ]  # fmt: skip
        print("$", " ".join(cmd), flush=True)
        threads = str(args.threads * args.parallel)
        subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": threads})
    return json.loads(result.read_text())["results"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, required=True, help="prepared cache (foleygen prepare, compact visual)")
    p.add_argument("--clips", type=Path, required=True, help="SynthFoley test folder (foleygen synth --split test)")
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
    if not (args.cache / "cache.json").exists():
        raise SystemExit(f"{args.cache}: not a prepared cache (no cache.json)")
    if not any(args.clips.glob("*.json")):
        raise SystemExit(f"{args.clips}: no SynthFoley clips (*.mp4 + *.json)")

    train_all(args.variants, args)
    rows = {name: evaluate(name, args) for name in args.variants}
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
