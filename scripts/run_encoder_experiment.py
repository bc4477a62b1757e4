#!/usr/bin/env python
"""The paper's visual-encoder experiment in miniature, through the path a VGGSound user takes.

One LM budget (same steps, LM size, clips and decoding), one visual encoder per arm:

* ``compact``: the shipped way, the compact encoder trained jointly (``configs/encoder_experiment_compact.yaml``);
* ``mobilenet_v2``, ``efficientnet_lite0``: frozen ImageNet encoders with their real weights, features cached
  by ``prepare`` (``configs/encoder_experiment_frozen.yaml``).

Phases, each skipped when its output exists (so the script resumes; trainings resume from their newest
checkpoint):

1. ``data``: ``foleygen synth`` train/val/test clips (video files with events), a manifest CSV
   (``path,split,label,id``) of the train/val clips, and the codec ceiling (the codec's reconstruction
   of the test clips' true audio, scored by ``foleygen eval``);
2. per arm: ``foleygen prepare MANIFEST`` (timed: frames/s), ``foleygen train``, ``foleygen generate`` on
   the test clips and on the shuffled test clips (clip i named after clip i+1's video: the floor),
   ``foleygen eval`` of both (onset F1, class accuracy, FD-aisfx, FD of the SynthFoley classifier);
3. ``summary``: ``WORKDIR/results.json`` and a Markdown table of every arm that finished.

Arms are independent after ``data``: run two at once as two processes (``--arms compact`` and
``--arms mobilenet_v2``) with ``--phase arms``. Every command runs with one thread (``--threads``).

    python scripts/run_encoder_experiment.py --workdir runs/encoder_experiment --num-train 200 \
        --num-test 40 --duration 2 --steps 1200
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("compact", "mobilenet_v2", "efficientnet_lite0")
CONFIGS = {
    "compact": "configs/encoder_experiment_compact.yaml",
    "mobilenet_v2": "configs/encoder_experiment_frozen.yaml",
    "efficientnet_lite0": "configs/encoder_experiment_frozen.yaml",
}
VISUAL_FPS, IMAGE_SIZE = 25.0, 64
SPLITS = (("train", 1), ("val", 1), ("test", 0))  # (split, synthesis seed): the test clips as docs/RESULTS.md's
METRICS = ("onsets", "fad-aisfx", "fad-synthfoley")


def foleygen(args: list[str], threads: int, log: Path | None = None) -> float:
    """Run ``python -m foleygen ARGS`` with ``threads`` threads; its wall time in seconds (fails loudly)."""
    cmd = [sys.executable, "-m", "foleygen", *args]
    print("$", " ".join(cmd), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.time()
    if log is None:
        subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    else:
        with open(log, "a") as fh:
            subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    return time.time() - t0


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` through a temporary name (never half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def write_manifest(clips: Path, out: Path, splits: tuple[str, ...] = ("train", "val")) -> int:
    """A generic manifest CSV (``path,split,label,id``) of the SynthFoley clips of ``splits``; rows written.

    The label is what can be seen sounding (the on-screen events' classes joined by ``+``), the id
    ``<split>/<stem>`` so that the onset-class loss finds ``<clips>/<id>.json``.
    """
    rows = []
    for split in splits:
        for meta_path in sorted((clips / split).glob("[0-9]*.json")):  # not synthfoley.json
            meta = json.loads(meta_path.read_text())
            classes = sorted({str(e["class"]) for e in meta["events"] if e.get("class") and not e.get("offscreen")})
            rows.append([str(meta_path.with_suffix(".mp4")), split, "+".join(classes), f"{split}/{meta_path.stem}"])
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "split", "label", "id"])
        writer.writerows(rows)
    os.replace(tmp, out)
    return len(rows)


def shuffled_inputs(test: Path, out: Path) -> None:
    """``out/<stem i>.mp4`` -> clip i+1's video (the last gets the first's): generated audio named after
    clip i but made from another clip's video, scored against clip i's events (the floor)."""
    videos = sorted(test.glob("[0-9]*.mp4"))
    out.mkdir(parents=True, exist_ok=True)
    for i, video in enumerate(videos):
        link = out / video.name
        if not link.is_symlink():
            link.symlink_to(videos[(i + 1) % len(videos)].resolve())


def codec_reconstructions(test: Path, out: Path, codec_name: str, threads: int) -> None:
    """The codec's reconstruction of each test clip's true audio as ``out/<stem>.wav`` (the ceiling)."""
    import torch

    from foleygen.codecs import load_codec
    from foleygen.io import read_audio, write_audio

    torch.set_num_threads(threads)
    codec = load_codec(codec_name)
    tmp = out.with_name(out.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    for video in sorted(test.glob("[0-9]*.mp4")):
        wav = read_audio(video, codec.sample_rate, codec.channels)  # [C, S]
        with torch.inference_mode():
            audio = codec.decode(codec.encode(wav[None]))[0]
        write_audio(tmp / f"{video.stem}.wav", audio.float(), codec.sample_rate)
    os.replace(tmp, out)


def evaluate(generated: Path, test: Path, duration: float, out_json: Path, threads: int, log: Path) -> dict:
    """``foleygen eval`` of ``generated`` against the test clips' audio and events; its JSON report."""
    if not out_json.exists():
        foleygen(
            ["eval", "--generated", str(generated), "--reference", str(test), "--events", str(test),
             "--metrics", *METRICS, "--duration", str(duration), "--device", "cpu", "--json", str(out_json)],
            threads,
            log,
        )  # fmt: skip
    return json.loads(out_json.read_text())


def row(report: dict) -> dict[str, Any]:
    """The figures of one ``foleygen eval`` report that the summary table shows."""
    m = report["metrics"]
    on = m["onsets"]
    return {
        "precision": on.get("precision"),
        "recall": on.get("recall"),
        "onset_f1": on.get("f1"),
        "class_acc": on.get("class_accuracy"),
        "fd_aisfx": (m.get("fad-aisfx") or {}).get("value"),
        "fd_synthfoley": (m.get("fad-synthfoley") or {}).get("value"),
    }


def data_phase(work: Path, args: argparse.Namespace) -> None:
    """Clips, manifest and the codec ceiling."""
    clips = work / "synthfoley"
    counts = {"train": args.num_train, "val": args.num_val, "test": args.num_test}
    for split, seed in SPLITS:
        if not (clips / f"{split}.done").exists():
            foleygen(
                ["synth", str(clips / split), "--split", split, "--num", str(counts[split]), "--seed", str(seed),
                 "--duration", str(args.duration), "--workers", "1"],
                args.threads,
            )  # fmt: skip
            (clips / f"{split}.done").touch()
    manifest = work / "manifest.csv"
    if not manifest.exists():
        print(f"manifest: {write_manifest(clips, manifest)} clips -> {manifest}", flush=True)
    ceiling = work / "codec_reconstructions"
    if not ceiling.exists():
        codec_reconstructions(clips / "test", ceiling, args.codec, args.threads)
    evaluate(ceiling, clips / "test", args.duration, work / "eval_codec.json", args.threads, work / "eval.log")


def arm_phase(work: Path, arm: str, args: argparse.Namespace) -> None:
    """prepare -> train -> generate (own and shuffled videos) -> eval, for one encoder."""
    clips, out = work / "synthfoley", work / arm
    out.mkdir(parents=True, exist_ok=True)
    cache, log = out / "cache", out / "log.txt"
    timing = out / "prepare.json"
    if not timing.exists():
        visual = ["--visual", "compact", "--image-size", str(IMAGE_SIZE)] if arm == "compact" else ["--visual", arm]
        wall = foleygen(
            ["prepare", str(work / "manifest.csv"), "--codec", args.codec, *visual, "--visual-fps", str(VISUAL_FPS),
             "--duration", str(args.duration), "--workers", "1", "-o", str(cache)],
            args.threads,
            log,
        )  # fmt: skip
        clips_done = args.num_train + args.num_val  # every clip of the manifest
        frames = clips_done * args.duration * VISUAL_FPS
        write_json(timing, {"wall_s": wall, "clips": clips_done, "frames": frames, "frames_per_s": frames / wall})
    if args.until == "prepare":
        return
    run = out / "run"
    if trained_steps(run) != args.steps:  # not trained yet, or to another budget: (re)train from its checkpoints
        over = [
            f"data.cache={cache}",
            f"train.steps={args.steps}",
            f"seed={args.seed}",
            f"train.num_threads={args.threads}",
        ]
        if arm == "compact":
            over.append(f"onsets.events={clips}")
        else:
            over.append(f"visual.kind={arm}")
        wall = foleygen(["train", CONFIGS[arm], "--resume", "--quiet", "--out", str(run), *over], args.threads, log)
        write_json(out / "train.json", {"wall_s_last_part": wall, "steps": trained_steps(run)})
    shuffled = work / "shuffled_inputs"
    shuffled_inputs(clips / "test", shuffled)
    for name, inputs in (("generated", clips / "test"), ("shuffled", shuffled)):
        gen = out / name
        if not (out / f"{name}.done").exists():
            foleygen(
                ["generate", str(inputs), "-o", str(gen), "--model", str(run / "final"), "--no-mux", "--seed", "0",
                 "--duration", str(args.duration), "--batch-size", "8", "--device", "cpu", "--skip-existing"],
                args.threads,
                log,
            )  # fmt: skip
            (out / f"{name}.done").touch()
        evaluate(gen, clips / "test", args.duration, out / f"eval_{name}.json", args.threads, log)


def trained_steps(run: Path) -> int | None:
    """The LM steps of the model in ``run/final``, or None when there is none yet.

    ``final`` is written only once training reached ``train.steps`` of the run config the trainer saved.
    """
    config = run / "config.json"
    if not (run / "final").exists() or not config.exists():
        return None
    return int(json.loads(config.read_text())["train"]["steps"])


def summary(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``WORKDIR/results.json`` and ``results.md`` from every finished arm."""
    from foleygen.machine import cpu_name

    result: dict[str, Any] = {
        "budget": {k: getattr(args, k) for k in ("num_train", "num_val", "num_test", "duration", "seed")},
        "machine": cpu_name(),
        "arms": {},
    }
    ceiling = work / "eval_codec.json"
    if ceiling.exists():
        result["codec_ceiling"] = row(json.loads(ceiling.read_text()))
    lines = [
        "| encoder | LM steps | onset F1 | class acc | FD-aisfx | FD-SynthFoley | shuffled F1 / class acc "
        "| prepare frames/s |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def f(x: Any) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    for arm in ARMS:
        d = work / arm
        if not (d / "eval_shuffled.json").exists():
            continue
        gen = row(json.loads((d / "eval_generated.json").read_text()))
        shuf = row(json.loads((d / "eval_shuffled.json").read_text()))
        prep = json.loads((d / "prepare.json").read_text())
        steps = trained_steps(d / "run")
        result["arms"][arm] = {"lm_steps": steps, "generated": gen, "shuffled": shuf, "prepare": prep}
        lines.append(
            f"| {arm} | {steps} | {f(gen['onset_f1'])} | {f(gen['class_acc'])} | {f(gen['fd_aisfx'])} | "
            f"{f(gen['fd_synthfoley'])} | {f(shuf['onset_f1'])} / {f(shuf['class_acc'])} | {prep['frames_per_s']:.1f} |"
        )
    if "codec_ceiling" in result:
        c = result["codec_ceiling"]
        lines.append(f"| codec ceiling | | {f(c['onset_f1'])} | {f(c['class_acc'])} | {f(c['fd_aisfx'])} | "
                     f"{f(c['fd_synthfoley'])} | | |")  # fmt: skip
    write_json(work / "results.json", result)
    (work / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("runs/encoder_experiment"))
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--phase", choices=("all", "data", "arms", "summary"), default="all")
    p.add_argument("--num-train", type=int, default=200, help="SynthFoley training clips")
    p.add_argument("--num-val", type=int, default=16)
    p.add_argument("--num-test", type=int, default=40, help="test clips (split test, seed 0)")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per clip")
    p.add_argument("--steps", type=int, default=1200, help="LM training steps, the same for every arm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codec", default="demo", help="the codec of every arm (default: the shipped compact codec)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--until", choices=("prepare", "eval"), default="eval", help="stop each arm after this phase")
    args = p.parse_args(argv)
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.phase in ("all", "data"):
        data_phase(work, args)
    if args.phase in ("all", "arms"):
        for arm in args.arms:
            arm_phase(work, arm, args)
    if args.phase in ("all", "summary"):
        summary(work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
