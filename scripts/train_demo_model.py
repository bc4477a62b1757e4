#!/usr/bin/env python
"""Train the embedded demo model from nothing: ``make demo-model`` runs this.

The pipeline is the one a user follows with their own data, command for command:

1. ``foleygen synth``   SynthFoley train/val clips (mp4 + events json; 9000 + 200 by default), in parallel
   processes;
2. ``foleygen train configs/codec_compact.yaml``  the compact codec (16 kHz, 50 Hz, 4 x 1024), on the
   audio of the synthesised train clips;
3. ``foleygen prepare`` codec tokens + 64x64 frames into a memory-mapped cache, one shard per process;
4. ``foleygen train configs/synthfoley_demo_model.yaml``  the LM and its compact visual encoder, jointly
   (a smaller LM than the larger recipe's (v8's), with its lookahead, label and onset losses, and the visual
   onset-class loss, which reads the synthesised clips' event files);
5. install: the LM checkpoint (with the codec in ``codec/``) is copied to ``foleygen/assets/demo/``
   with its weights stored in float16 (half the size; the model computes in float32 either way), beside
   ``training_log.json``: the command, the commits and machines that ran each phase and for how long,
   the step counts, and both trainings' loss curves (thinned) and validation rows.

Every phase is skipped when its output exists, and each ``foleygen train`` resumes from its newest
checkpoint, so the script can be stopped at any time and run again to continue, in as many parts as you
like (how long it takes: below; docs/RESULTS.md has the measured run).

Step counts can be given directly (``--codec-steps``/``--lm-steps``) or as a time budget
(``--codec-minutes``/``--lm-minutes``): the trainer is then first run for a few steps to measure this
machine's speed, and the step count is chosen to fill the budget. By default both get step counts
(``CODEC_STEPS``, and the LM config's own ``train.steps``: what the measured recipe ran), so the model,
not the time, is fixed. On 2 AVX-512 cores with native bf16 that is about 52 min: 4 min of synthesis, 13
of codec, 6 of ``prepare`` and 30 of LM training (4320 steps, the onset sidecar first), measured in the run
that made the shipped model. On 2 AVX2-only cores it is about 2 h 35 min: 10 min of synthesis, 33-38 of
codec, 12-13 of ``prepare``, 3 of onsets, measured, and about 90 of LM training, estimated from the
measured cost of a step (docs/RESULTS.md). ``--lm-config configs/synthfoley_demo_model_large.yaml`` trains
v8's larger architecture instead: about 4 hours there. A measured budget makes the run depend on the
machine's speed; the chosen step counts are printed and written to ``WORKDIR/plan.json`` so any run can be
repeated exactly with ``--codec-steps``/``--lm-steps``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from foleygen.config import load_yaml

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "foleygen" / "assets" / "demo"

# What ``prepare`` stores per clip: the compact encoder's raw frames (S x S x 3 bytes, VISUAL_FPS per
# second) of the first CLIP_SECONDS; the codes are a rounding error beside them.
IMAGE_SIZE, VISUAL_FPS, CLIP_SECONDS = 64, 25, 4.0
CACHE_BYTES_PER_CLIP = int(CLIP_SECONDS * VISUAL_FPS) * IMAGE_SIZE * IMAGE_SIZE * 3
CLIP_FILE_BYTES = 100_000  # a SynthFoley mp4 (128 px video + FLAC) and its json: about 91 kB measured
CHECKPOINT_BYTES = 600_000_000  # codec + LM checkpoints (the last two of each) and the installed copy
# The codec's default is a step count, not a time budget: glass (a 2.6 kHz partial with a 90 ms decay)
# is heard in its reconstructions only after some 4000-6000 steps of batch 8, whatever the machine's
# speed (docs/codecs.md). 3500 steps left a glass ceiling of 0.29 and the LM's class accuracy with it.
CODEC_STEPS = 6000


def sh(*args: str, env: dict[str, str] | None = None) -> None:
    """Run ``python -m foleygen ARGS`` (or a raw command), failing loudly."""
    cmd = [sys.executable, "-m", "foleygen", *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, **(env or {})})


def train_with_limit(config: str, out: Path, args: list[str], limit_s: float | None, plan: dict, name: str) -> None:
    """``foleygen train`` with an optional wall-clock limit.

    On time-out the run is stopped and its newest checkpoint becomes ``out/final`` (recorded in
    ``plan.json`` as the step actually reached), so a fixed time budget always ends with a usable model.
    """
    cmd = [sys.executable, "-m", "foleygen", "train", config, "--resume", "--out", str(out), *args]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        code = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        from foleygen.train.trainer import find_latest_checkpoint

        latest = find_latest_checkpoint(out)
        if latest is None:
            raise SystemExit(f"{name}: time limit {limit_s} s reached before the first checkpoint") from None
        shutil.copytree(latest / "pretrained", out / "final.tmp", dirs_exist_ok=True)
        os.replace(out / "final.tmp", out / "final")
        plan[f"{name}_reached"] = latest.name
        print(f"[demo-model] {name}: time limit reached; using {latest.name}", flush=True)
        return
    if code:
        raise SystemExit(f"{name}: foleygen train exited with {code}")


def measured_steps_per_s(config: str, out: Path, overrides: list[str], probe_steps: int) -> float:
    """Run ``foleygen train`` for ``probe_steps`` steps and read its measured speed."""
    shutil.rmtree(out, ignore_errors=True)
    log_every = max(1, probe_steps // 2)
    sh(
        "train",
        config,
        "--quiet",
        "--out",
        str(out),
        *overrides,
        f"train.steps={probe_steps}",
        f"train.log_every={log_every}",
        "train.val_every=0",
        "train.save_every=0",
        "train.sample_every=-1",
        "train.tensorboard=false",
    )
    rates = [
        r["steps_per_s"]
        for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
        if r.get("split") == "train" and "steps_per_s" in r
    ]
    shutil.rmtree(out, ignore_errors=True)
    # The first window pays for start-up (workers, allocator, compilation); the last one is steady.
    return float(rates[-1])


def plan_steps(
    name: str,
    steps: int | None,
    minutes: float | None,
    default: int,
    config: str,
    work: Path,
    overrides: list[str],
    plan: dict,
) -> int:
    """The step count of phase ``name``: the one already in ``plan`` (a resumed run), else ``steps``,
    else what fills ``minutes`` at this machine's probed speed, else ``default``; recorded in ``plan``."""
    if name in plan:
        return int(plan[name])
    if steps is None and minutes is None:
        steps = default
    if steps is None:
        rate = measured_steps_per_s(config, work / f"probe_{name}", overrides, probe_steps=40)
        steps = max(100, int(rate * 60 * float(minutes)))
        print(f"[demo-model] {name}: {rate:.2f} steps/s measured -> {steps} steps for {minutes} min", flush=True)
    plan[name] = int(steps)
    (work / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    return int(steps)


def onset_classes_need_events(lm_config: dict, user_overrides: list[str]) -> bool:
    """Whether the LM config trains the visual onset-class loss (``onsets.class_weight > 0``) and the user
    did not name its event files (``--set onsets.events=...``): then the synthesised clips' are used."""
    weight = float((lm_config.get("onsets") or {}).get("class_weight", 0.0))
    return weight > 0 and not any(o.startswith("onsets.events=") for o in user_overrides)


SPLITS = ("train", "val")


def synth_marker(work: Path, split: str) -> Path:
    """Written when a split's clips are all synthesised: its presence skips the split."""
    return work / "synthfoley" / f"{split}.done"


def cache_marker(work: Path) -> Path:
    """Written when ``prepare`` has finished every shard: its presence skips the phase."""
    return work / "cache.done"


def synth(work: Path, args: argparse.Namespace) -> Path:
    data = work / "synthfoley"
    for split, num in zip(SPLITS, (args.num_train, args.num_val), strict=True):
        if synth_marker(work, split).exists():
            continue
        sh(
            "synth",
            str(data / split),
            "--split",
            split,
            "--num",
            str(num),
            "--seed",
            str(args.seed),
            "--workers",
            str(args.workers),
            *(["--quiet"] if args.quiet else []),
        )
        synth_marker(work, split).write_text("ok\n")
    return data


def prepare(work: Path, data: Path, codec: Path, args: argparse.Namespace) -> Path:
    cache = work / "cache"
    if cache_marker(work).exists():
        return cache
    base = [
        "prepare",
        str(data),
        "--codec",
        str(codec),
        "--visual",
        "compact",
        "--image-size",
        str(IMAGE_SIZE),
        "--visual-fps",
        str(VISUAL_FPS),
        "--duration",
        str(CLIP_SECONDS),
        "-o",
        str(cache),
        "--device",
        "cpu",
        "--quiet",
    ]
    shards = max(1, args.workers)
    if shards == 1:
        sh(*base)
    else:  # one process per shard: decoding and encoding scale with cores
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "foleygen", *base, "--shard", f"{i}/{shards}", "--workers", "1"],
                cwd=ROOT,
                env=env,
            )
            for i in range(shards)
        ]
        codes = [p.wait() for p in procs]
        if any(codes):
            raise SystemExit(f"prepare failed in shard(s) {[i for i, c in enumerate(codes) if c]}")
    cache_marker(work).write_text("ok\n")
    return cache


def disk_needed(work: Path, num_train: int, num_val: int) -> int:
    """Bytes the phases still to run will write into ``work`` (clips, cache, checkpoints), roughly."""
    need = CHECKPOINT_BYTES
    for split, num in zip(SPLITS, (num_train, num_val), strict=True):
        if not synth_marker(work, split).exists():
            need += num * CLIP_FILE_BYTES
    if not cache_marker(work).exists():
        written = sum(f.stat().st_size for f in (work / "cache").rglob("*") if f.is_file())
        need += max(0, (num_train + num_val) * CACHE_BYTES_PER_CLIP - written)
    return need


def check_disk(work: Path, num_train: int, num_val: int) -> None:
    """Stop before the first phase when the disk cannot hold the run (``prepare`` would fail hours in)."""
    need, free = disk_needed(work, num_train, num_val), shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(
            f"{work}: this run needs about {need / 1e9:.1f} GB of free disk, {free / 1e9:.1f} GB are free "
            f"(the prepared cache takes {CACHE_BYTES_PER_CLIP / 1e6:.1f} MB per clip): free some space, "
            "choose another --workdir, or lower --num-train"
        )


def git_commit() -> str | None:
    """The checkout's commit, with ``-dirty`` when tracked files differ from it; None outside git."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head, changed = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if changed else "")


def machine() -> dict:
    """What ran a phase: the CPU (its name and the widest vector unit PyTorch uses), cores, GPU, torch."""
    import torch

    from foleygen.machine import cpu_name

    return {
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


@contextmanager
def timed_part(work: Path, phase: str, pending: bool, command: str) -> Iterator[None]:
    """Run one phase and append its part to ``WORKDIR/run.json``: wall seconds, command, commit, machine.

    A run stopped and resumed has several parts per phase; a phase already done adds none. The time of a
    part that ends in an error or Ctrl-C is recorded too (a killed process loses its part's record).
    """
    if not pending:
        yield
        return
    start = time.time()
    try:
        yield
    finally:
        record = work / "run.json"
        parts = json.loads(record.read_text())["parts"] if record.exists() else []
        seconds = round(time.time() - start, 1)
        parts.append(
            {"phase": phase, "seconds": seconds, "command": command, "commit": git_commit(), "machine": machine()}
        )
        record.with_suffix(".tmp").write_text(json.dumps({"parts": parts}, indent=2) + "\n")
        os.replace(record.with_suffix(".tmp"), record)


def _rounded(row: dict) -> dict:
    return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in row.items()}


def metrics_summary(metrics: Path, train_rows: int = 24) -> dict:
    """A trainer's ``metrics.jsonl`` in brief: ``train_rows`` evenly spaced training rows (the last
    included) and every validation row, floats to 4 significant digits."""
    rows = [json.loads(ln) for ln in metrics.read_text().splitlines() if ln.strip()] if metrics.exists() else []
    train = [r for r in rows if r.get("split") == "train"]
    if len(train) > train_rows:
        last = len(train) - 1
        train = [train[round(i * last / (train_rows - 1))] for i in range(train_rows)]
    return {
        "final_step": max((r.get("step", 0) for r in rows), default=0),
        "train": [_rounded(r) for r in train],
        "val": [_rounded(r) for r in rows if r.get("split") == "val"],
    }


def script_command(argv: list[str]) -> str:
    """How this script was run, as a shell line."""
    return shlex.join(["python", "scripts/train_demo_model.py", *argv])


def training_log(work: Path, command: str) -> dict:
    """The installed model's ``training_log.json``: how it was made, from the workdir's records
    (``command`` is the run that installs it; each part of each phase names its own)."""
    record = work / "run.json"
    parts = json.loads(record.read_text())["parts"] if record.exists() else []
    seconds: dict[str, float] = {}
    for part in parts:
        seconds[part["phase"]] = round(seconds.get(part["phase"], 0.0) + part["seconds"], 1)
    plan = json.loads((work / "plan.json").read_text()) if (work / "plan.json").exists() else {}
    return {
        "command": command,
        "plan": plan,
        "phase_seconds": seconds,
        "total_seconds": round(sum(seconds.values()), 1),
        "parts": parts,
        "codec": metrics_summary(work / "codec" / "metrics.jsonl"),
        "lm": metrics_summary(work / "lm" / "metrics.jsonl"),
    }


def install(lm_final: Path, dest: Path, log: dict | None = None) -> None:
    """Copy the trained FoleyGen directory to ``dest`` with float16 weights (atomic), and ``log`` as
    ``training_log.json`` beside them."""
    from safetensors.torch import load_file, save_file

    tmp = dest.with_name(dest.name + ".installing")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(lm_final, tmp)
    for weights in tmp.rglob("model.safetensors"):
        if weights.parent.name == "codec":
            continue  # the codec stays float32: its STFT-domain decoder is sensitive to rounding
        state = load_file(str(weights))
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
        save_file(state, str(weights), metadata={"format": "pt"})
    if log is not None:
        (tmp / "training_log.json").write_text(json.dumps(log, indent=1) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    size_mb = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) / 1e6
    print(f"[demo-model] installed {dest} ({size_mb:.1f} MB)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "demo_model")
    p.add_argument("--device", default="auto", help="training device: auto, cpu, cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--num-train",
        type=int,
        default=9000,
        help="SynthFoley training clips (default 9000: about 0.8 GB of video and 11 GB of prepared cache; with 3000 "
        "the LM learnt them by heart halfway through its budget, docs/RESULTS.md)",
    )
    p.add_argument("--num-val", type=int, default=200)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--codec-steps",
        type=int,
        default=None,
        help=f"codec training steps (default {CODEC_STEPS}, unless --codec-minutes gives a time budget)",
    )
    p.add_argument("--codec-minutes", type=float, default=None, help="codec time budget (probes this machine's speed)")
    p.add_argument("--codec-batch", type=int, default=None, help="codec batch size (default: the config's)")
    p.add_argument("--lm-config", default="configs/synthfoley_demo_model.yaml")
    p.add_argument(
        "--lm-steps",
        type=int,
        default=None,
        help="LM training steps (default: the LM config's train.steps, unless --lm-minutes gives a time budget)",
    )
    p.add_argument("--lm-minutes", type=float, default=None, help="LM time budget (probes this machine's speed)")
    p.add_argument("--lm-batch", type=int, default=None, help="LM batch size (default: the config's)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra overrides for the LM config")
    p.add_argument("--codec-set", nargs="*", default=[], metavar="KEY=VALUE", help="extra codec config overrides")
    p.add_argument("--codec-timeout", type=float, default=None, help="wall-clock limit (s) of codec training")
    p.add_argument("--lm-timeout", type=float, default=None, help="wall-clock limit (s) of LM training")
    p.add_argument(
        "--codec-from-files",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train the codec on the synthesised train clips (default; --no-codec-from-files: on clips made "
        "on the fly, which costs CPU in every step)",
    )
    p.add_argument("--install-to", type=Path, default=ASSETS, help="where the finished model goes")
    p.add_argument("--no-install", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    plan_file = work / "plan.json"
    plan = json.loads(plan_file.read_text()) if plan_file.exists() else {}
    t0 = time.time()
    quiet = ["--quiet"] if args.quiet else []
    command = script_command(sys.argv[1:] if argv is None else argv)
    workers = min(args.workers, 8)
    check_disk(work, args.num_train, args.num_val)

    synth_pending = not all(synth_marker(work, split).exists() for split in SPLITS)
    with timed_part(work, "synth", synth_pending, command):
        data = synth(work, args)
    print(f"[demo-model] data ready ({time.time() - t0:.0f} s)", flush=True)

    codec_over = [f"train.device={args.device}", f"train.num_workers={workers}", f"seed={args.seed}", *args.codec_set]
    if args.codec_from_files:  # decoding stored audio is cheaper than synthesising it in every step
        codec_over.append(f"data.train=[{{kind: files, path: {data / 'train'}}}]")
    if args.codec_batch:
        codec_over.append(f"train.batch_size={args.codec_batch}")
    codec_out = work / "codec"
    if not (codec_out / "final").exists():
        with timed_part(work, "codec", True, command):
            steps = plan_steps(
                "codec_steps",
                args.codec_steps,
                args.codec_minutes,
                CODEC_STEPS,
                "configs/codec_compact.yaml",
                work,
                codec_over,
                plan,
            )
            train_with_limit(
                "configs/codec_compact.yaml",
                codec_out,
                [
                    *quiet,
                    f"train.steps={steps}",
                    f"train.save_every={max(50, steps // 20)}",
                    "train.val_every=0",
                    *codec_over,
                ],
                args.codec_timeout,
                plan,
                "codec",
            )
    print(f"[demo-model] codec ready ({time.time() - t0:.0f} s)", flush=True)

    with timed_part(work, "prepare", not cache_marker(work).exists(), command):
        cache = prepare(work, data, codec_out / "final", args)
    print(f"[demo-model] cache ready ({time.time() - t0:.0f} s)", flush=True)

    lm_over = [
        f"data.cache={cache}",
        f"codec.path={codec_out / 'final'}",
        f"train.device={args.device}",
        f"train.num_workers={workers}",
        f"seed={args.seed}",
        *args.set,
    ]
    if args.lm_batch:
        lm_over.append(f"train.batch_size={args.lm_batch}")
    lm_config = load_yaml(ROOT / args.lm_config, lm_over)
    if onset_classes_need_events(lm_config, args.set):
        lm_over.append(f"onsets.events={data}")
    lm_out = work / "lm"
    if not (lm_out / "final").exists():
        with timed_part(work, "lm", True, command):
            # The LM's default is a step count too, its config's ``train.steps``: a time budget would
            # silently train a weaker model on a slower CPU.
            default = int(lm_config["train"]["steps"])
            steps = plan_steps("lm_steps", args.lm_steps, args.lm_minutes, default, args.lm_config, work, lm_over, plan)
            train_with_limit(
                args.lm_config,
                lm_out,
                [
                    *quiet,
                    f"train.steps={steps}",
                    f"train.save_every={max(100, steps // 20)}",
                    f"train.val_every={max(100, steps // 8)}",
                    f"train.warmup_steps={min(200, steps // 10)}",
                    *lm_over,
                ],
                args.lm_timeout,
                plan,
                "lm",
            )
    (work / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    print(f"[demo-model] LM ready ({time.time() - t0:.0f} s)", flush=True)

    if not args.no_install:
        install(lm_out / "final", args.install_to, training_log(work, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
