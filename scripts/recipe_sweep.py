#!/usr/bin/env python
"""How many LM steps a recipe variant needs to reach the acceptance bars: train variants, score checkpoints.

The demo model's recipe is judged on a CPU by time, but what a variant buys is decided by how many steps
(of the same batch) it needs and what one step costs. This script measures the first on any machine, a GPU
included: it trains each variant from scratch on one prepared cache (``foleygen train``, concurrently,
``--parallel`` at a time), keeps its checkpoints, then scores the final one and those at ``--eval-at``
steps on SynthFoley test clips with ``scripts/eval_demo_model.py`` (onset F1, class accuracy by class;
the shuffled/codec baselines with ``--baselines``). The step cost on a given CPU is measured apart
(``foleygen train ... train.steps=30``, its ``steps_per_s``); the two together predict a CPU recipe's time.

A variant is ``NAME=KEY=VALUE,KEY=VALUE`` (LM config overrides; ``train.steps`` sets its length, and a
cosine schedule ends at its own last step, so a short run is not a long run's early checkpoint):

    python scripts/recipe_sweep.py --cache runs/gpu/cache --clips runs/gpu/test --out runs/sweep \\
        --codec foleygen/assets/demo/codec --events runs/gpu/data --variant default= \\
        --variant fast=train.lr=2e-3 --variant seed1=seed=1 --eval-at 1440 --parallel 3

``--train-minutes`` stops training at a wall-clock limit and scores the checkpoints that exist (the summary
says which step each variant reached). Runs resume: the same command continues after an interruption.
Writes ``OUT/sweep.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_variant(spec: str) -> tuple[str, list[str]]:
    """``NAME=K=V,K=V`` -> ``(NAME, ["K=V", "K=V"])``; an empty override list is allowed (``NAME=``)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise SystemExit(f"--variant {spec!r}: expected NAME=KEY=VALUE,... (NAME: letters, digits, - and _)")
    overrides = [o for o in rest.split(",") if o]
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise SystemExit(f"--variant {spec!r}: overrides must be KEY=VALUE, got {bad}")
    return name, overrides


def train_command(name: str, overrides: list[str], args: argparse.Namespace) -> list[str]:
    """``foleygen train`` for one variant: resumable, every ``--save-every`` steps kept."""
    return [
        sys.executable, "-m", "foleygen", "train", args.config, "--resume", "--out", str(args.out / name), "-q",
        f"data.cache={args.cache}", f"codec.path={args.codec}", f"seed={args.seed}",
        f"train.device={args.device}", f"train.num_workers={args.num_workers}", f"train.num_threads={args.threads}",
        f"train.save_every={args.save_every}", "train.keep_checkpoints=1000", "train.val_every=0",
        "train.sample_every=-1", "train.tensorboard=false", "train.log_every=50",
        *([f"onsets.events={args.events}"] if args.events else []), *overrides,
    ]  # fmt: skip


def caches_needing_onsets(config: str, variants: dict[str, list[str]], default: Path) -> list[Path]:
    """The distinct caches of the variants whose config weights frames by onsets (``onsets.weight`` or
    ``onsets.visual_weight`` > 0): ``data.cache=`` in their overrides, else ``default``."""
    from foleygen.config import load_yaml

    caches = []
    for overrides in variants.values():
        cfg = load_yaml(ROOT / config, overrides)  # an absolute config path stays itself under ROOT /
        onsets = cfg.get("onsets") or {}
        if float(onsets.get("weight", 0)) > 0 or float(onsets.get("visual_weight", 0)) > 0:
            cache = next(
                (Path(o.partition("=")[2]) for o in reversed(overrides) if o.startswith("data.cache=")), default
            )
            caches.append(cache)
    return list(dict.fromkeys(caches))


def precompute_onsets(caches: list[Path], codec_path: Path, device: str) -> None:
    """Write each cache's onset sidecar once, before the variants start (the default detector).

    Every training process with onset weights would otherwise decode and scan the whole cache on its own
    before its first step: minutes of duplicated work at the start of a sweep.
    """
    from foleygen.codecs import load_codec
    from foleygen.data.cache import CacheReader
    from foleygen.train.recipes.synthfoley.onset_data import codec_key, load_or_compute_onsets
    from foleygen.utils import resolve_device

    where = resolve_device(None if device == "auto" else device)
    codec = load_codec(str(codec_path)).to(where).eval()
    for cache in caches:
        t0 = time.monotonic()
        onsets = load_or_compute_onsets(
            CacheReader(cache),
            lambda codes: codec.decode(codes.to(where)),
            int(codec.sample_rate),
            codec_key(str(codec_path)),
        )
        print(f"sweep: onsets of {len(onsets)} clips of {cache} ready ({time.monotonic() - t0:.0f} s)", flush=True)


def train_all(variants: dict[str, list[str]], args: argparse.Namespace) -> dict[str, str]:
    """Train the variants, ``--parallel`` at a time, until done or ``--train-minutes``; ``{name: status}``."""
    deadline = time.monotonic() + 60 * args.train_minutes if args.train_minutes else None
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads or 1)}
    status: dict[str, str] = {}
    pending = [n for n in variants if not (args.out / n / "final" / "config.json").exists()]
    status.update({n: "done" for n in variants if n not in pending})
    running: list[tuple[str, subprocess.Popen, object]] = []
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            (args.out / name).mkdir(parents=True, exist_ok=True)
            log = open(args.out / f"{name}.log", "a")  # noqa: SIM115 -- closed when the process ends
            cmd = train_command(name, variants[name], args)
            print("$", " ".join(cmd), flush=True)
            running.append((name, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        time.sleep(2)
        timed_out = deadline is not None and time.monotonic() > deadline
        for item in list(running):
            name, proc, log = item
            code = proc.poll()
            if code is None and timed_out:
                proc.terminate()
                code = proc.wait()
                status[name] = "stopped at the time limit"
            elif code is None:
                continue
            else:
                status[name] = "done" if code == 0 else f"failed (exit {code}, see {args.out / (name + '.log')})"
            log.close()  # type: ignore[attr-defined]
            running.remove(item)
        if timed_out:
            status.update({n: "not started (time limit)" for n in pending})
            pending = []
    return status


def checkpoints(name: str, args: argparse.Namespace) -> dict[int, Path]:
    """``{step: pretrained dir}`` to score: the final model and the ``--eval-at`` steps that exist."""
    root = args.out / name
    found: dict[int, Path] = {}
    saved = (root / "checkpoints").glob("step_*")
    steps = sorted(int(p.name.split("_")[1]) for p in saved if (p / "pretrained").is_dir())
    for step in steps:
        if step in args.eval_at:
            found[step] = root / "checkpoints" / f"step_{step:08d}" / "pretrained"
    if (root / "final" / "config.json").exists():
        metrics = root / "metrics.jsonl"
        last = max((json.loads(line).get("step", 0) for line in metrics.read_text().splitlines()), default=0)
        found[int(last)] = root / "final"
    elif steps:  # stopped early: its newest checkpoint stands for it
        found[steps[-1]] = root / "checkpoints" / f"step_{steps[-1]:08d}" / "pretrained"
    return found


def evaluate_all(variants: dict[str, list[str]], args: argparse.Namespace) -> dict[str, dict[int, dict]]:
    """Score every checkpoint (``--eval-parallel`` at a time); results cached in ``OUT/NAME@STEP.json``."""
    found = {n: checkpoints(n, args) for n in variants}
    # finals first: under a time limit, the variants' end points matter more than their learning curves
    jobs = [(n, s, p) for n in variants for s, p in found[n].items()]
    jobs.sort(key=lambda j: (j[1] != max(found[j[0]]), j[1]))
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, args.eval_threads))}
    queue = [j for j in jobs if not (args.out / f"{j[0]}@{j[1]}.json").exists()]
    running: list[tuple[str, subprocess.Popen]] = []
    while queue or running:
        while queue and len(running) < args.eval_parallel:
            name, step, path = queue.pop(0)
            result = args.out / f"{name}@{step}.json"
            cmd = [
                sys.executable, str(ROOT / "scripts" / "eval_demo_model.py"), "--model", str(path),
                "--clips", str(args.clips), "--batch-size", str(args.eval_batch), "--json", str(result),
                *([] if args.baselines else ["--no-baselines"]),
                *([] if args.temperature is None else ["--temperature", str(args.temperature)]),
                *([] if args.cfg is None else ["--cfg", str(args.cfg)]),
            ]  # fmt: skip
            log = args.out / f"{name}@{step}.eval.log"
            with open(log, "w") as f:
                running.append((str(log), subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)))
        time.sleep(1)
        for item in list(running):
            if item[1].poll() is not None:
                if item[1].returncode:
                    print(f"sweep: scoring failed, see {item[0]}", file=sys.stderr)
                running.remove(item)
    out: dict[str, dict[int, dict]] = {}
    for name, step, _ in jobs:
        result = args.out / f"{name}@{step}.json"
        if result.exists():
            out.setdefault(name, {})[step] = json.loads(result.read_text())["results"]
    return out


def steps_per_s(name: str, args: argparse.Namespace) -> float | None:
    """The variant's last logged training speed on this machine (concurrent runs share it)."""
    metrics = args.out / name / "metrics.jsonl"
    if not metrics.exists():
        return None
    rates = [r["steps_per_s"] for r in map(json.loads, metrics.read_text().splitlines()) if "steps_per_s" in r]
    return float(rates[-1]) if rates else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, required=True, help="prepared cache (foleygen prepare, compact visual)")
    p.add_argument("--clips", type=Path, required=True, help="SynthFoley test folder (foleygen synth --split test)")
    p.add_argument("--codec", type=Path, required=True, help="the codec the cache was prepared with")
    p.add_argument("--out", type=Path, default=Path("runs/sweep"))
    p.add_argument("--config", default="configs/synthfoley_demo_model.yaml")
    p.add_argument(
        "--events",
        type=Path,
        default=None,
        help="the training clips' event files (the folder foleygen synth wrote train/ and val/ in), for a "
        "config with the visual onset-class loss, as make demo-model's has (onsets.events)",
    )
    p.add_argument("--variant", action="append", required=True, metavar="NAME=K=V,...", help="repeatable")
    p.add_argument("--eval-at", type=int, nargs="*", default=[], help="also score these checkpoints' steps")
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--parallel", type=int, default=1, help="variants trained at once")
    p.add_argument("--threads", type=int, default=0, help="torch threads per training process (0: torch's)")
    p.add_argument("--num-workers", type=int, default=1, help="data-loading workers per training process")
    p.add_argument("--train-minutes", type=float, default=None, help="stop training after this many minutes")
    p.add_argument("--temperature", type=float, default=None, help="when scoring (default: the checkpoint's)")
    p.add_argument("--cfg", type=float, default=None, help="guidance scale when scoring (default: the checkpoint's)")
    p.add_argument("--eval-batch", type=int, default=20)
    p.add_argument("--eval-parallel", type=int, default=1)
    p.add_argument("--eval-threads", type=int, default=2)
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=False)
    args = p.parse_args(argv)
    if not (args.cache / "cache.json").exists():
        raise SystemExit(f"{args.cache}: not a prepared cache (no cache.json)")
    if not any(args.clips.glob("*.json")):
        raise SystemExit(f"{args.clips}: no SynthFoley clips (*.mp4 + *.json)")
    variants = dict(parse_variant(v) for v in args.variant)
    if len(variants) != len(args.variant):
        raise SystemExit("--variant: each NAME must be given once")
    args.out.mkdir(parents=True, exist_ok=True)

    precompute_onsets(caches_needing_onsets(args.config, variants, args.cache), args.codec, args.device)
    t0 = time.monotonic()
    status = train_all(variants, args)
    train_s = time.monotonic() - t0
    scores = evaluate_all(variants, args)
    summary = {
        "cache": str(args.cache), "clips": str(args.clips), "codec": str(args.codec), "config": args.config,
        "seed": args.seed, "temperature": args.temperature, "cfg": args.cfg, "train_seconds": round(train_s, 1),
        "eval_seconds": round(time.monotonic() - t0 - train_s, 1),
        "variants": {
            n: {"overrides": o, "status": status.get(n, "?"), "steps_per_s": steps_per_s(n, args),
                "scores": {str(s): r for s, r in sorted(scores.get(n, {}).items())}}
            for n, o in variants.items()
        },
    }  # fmt: skip
    (args.out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("| variant | step | onset F1 | class acc | by class | status |")
    print("|---|---|---|---|---|---|")
    for name, entry in summary["variants"].items():
        for step, res in entry["scores"].items():
            g = res["generated"]
            by = " ".join(f"{c[:2]} {a:.2f}" for c, a in (g.get("class_acc_by_class") or {}).items() if a is not None)
            print(f"| {name} | {step} | {g['f1']:.3f} | {g['class_acc']:.3f} | {by} | {entry['status']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
