#!/usr/bin/env python
"""Score a FoleyGen model on SynthFoley test clips against ground truth, with its baselines.

For every clip of a SynthFoley folder (``NNNNN.mp4`` + ``NNNNN.json``) it scores four soundtracks:

* ``generated``: the model's audio for the clip's own video;
* ``shuffled``: the model's audio for *another* clip's video (clip i gets clip i+1's), scored against
  clip i's events: what a model that ignores timing would get (the floor);
* ``codec``: the codec's reconstruction of the true audio (the ceiling of any model on this codec);
* ``clean``: the true audio itself (checks the metric: onset F1 must be >= 0.99 here).

Metrics (``foleygen.eval.onsets`` / ``event_classifier``): onset precision, recall, F1 within +-40 ms,
mean absolute onset offset, and class accuracy of matched onsets; off-screen events excluded; and how
many false alarms are doubled (within 100 ms of a hit). It also times generation (real-time factor).
Prints a Markdown table and writes JSON.

    python scripts/eval_demo_model.py --model demo --clips runs/testclips --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foleygen import FoleyGen
from foleygen.eval.event_classifier import (
    ClassifierWeightsMissing,
    EventClassifier,
    aggregate_accuracy,
    class_accuracy,
    load_event_classifier,
)
from foleygen.eval.onsets import DOUBLED_WINDOW, aggregate_scores, evaluate_clip
from foleygen.io import read_audio, read_frames


def score(
    wavs: list[np.ndarray], events: list[list[dict]], sample_rate: int, classifier: EventClassifier | None
) -> dict[str, Any]:
    """Micro-averaged onset scores, class accuracy and confusion of ``wavs`` (each ``[S]``) against ``events``."""
    pairs = list(zip(wavs, events, strict=True))
    onset = aggregate_scores(evaluate_clip(w, sample_rate, e) for w, e in pairs)
    acc = aggregate_accuracy([class_accuracy(w, sample_rate, e, classifier) for w, e in pairs]) if classifier else None
    out: dict[str, Any] = {
        "precision": onset.precision,
        "recall": onset.recall,
        "f1": onset.f1,
        "offset_ms": onset.mean_abs_offset_ms,
        "false_alarms": onset.false_alarms,
        "doubled_false_alarms": onset.doubled,
        "class_acc": acc.accuracy if acc is not None else float("nan"),
    }
    if acc is not None and acc.total:
        # rows: the true class, columns: what the classifier heard (see ClassAccuracy.confusion)
        out["confusion"] = {"classes": list(classifier.classes), "counts": acc.confusion.tolist()}
        out["class_acc_by_class"] = acc.per_class(classifier.classes)
    return out


def per_class_line(by_class: dict[str, float | None]) -> str:
    """``wood 0.81 | metal ...`` (``-`` for a class without matched onsets)."""
    return " | ".join(f"{c} {'-' if a is None else f'{a:.2f}'}" for c, a in by_class.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo")
    p.add_argument("--clips", type=Path, required=True, help="SynthFoley folder (foleygen synth --split test)")
    p.add_argument("--num", type=int, default=None, help="first N clips only")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg", type=float, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    model = FoleyGen.from_pretrained(args.model)
    params = {
        k: v
        for k, v in {"cfg_coef": args.cfg, "top_k": args.top_k, "temperature": args.temperature}.items()
        if v is not None
    }
    if params:
        model.update_generation_params(**params)  # the others stay the checkpoint's
    sr = model.sample_rate
    clips = sorted(args.clips.glob("*.mp4"))[: args.num]
    if not clips:
        raise SystemExit(f"{args.clips}: no *.mp4 clips")
    events = [json.loads(c.with_suffix(".json").read_text())["events"] for c in clips]
    fps, size = model.visual_encoder.fps, model.visual_encoder.image_size
    frames = [read_frames(c, fps, size) for c in clips]

    def generate(videos: list[torch.Tensor]) -> tuple[list[np.ndarray], float]:
        out: list[np.ndarray] = []
        t0 = time.perf_counter()
        for i in range(0, len(videos), args.batch_size):
            wavs = model.generate_list(videos[i : i + args.batch_size], seed=args.seed + i, fps_of_tensors=fps)
            out.extend(w.mean(0).cpu().numpy() for w in wavs)
        return out, time.perf_counter() - t0

    try:
        classifier = load_event_classifier()
    except ClassifierWeightsMissing as err:
        print(f"class accuracy skipped: {err}", file=sys.stderr)
        classifier = None
    results: dict[str, dict[str, Any]] = {}
    generated, seconds = generate(frames)
    audio_seconds = sum(len(w) for w in generated) / sr
    results["generated"] = score(generated, events, sr, classifier)
    results["generated"]["rtf"] = audio_seconds / seconds
    if args.baselines:
        shuffled, _ = generate(frames[1:] + frames[:1])
        results["shuffled"] = score(shuffled, events, sr, classifier)
        truth = [read_audio(c, sr, 1) for c in clips]
        with torch.inference_mode():
            recon = [
                model.codec.decode(model.codec.encode(t[None].to(model.device)))[0, 0, : t.shape[-1]].cpu().numpy()
                for t in truth
            ]
        results["codec"] = score(recon, events, sr, classifier)
        results["clean"] = score([t[0].numpy() for t in truth], events, sr, classifier)

    report = {
        "model": str(args.model),
        "clips": str(args.clips),
        "num_clips": len(clips),
        "seed": args.seed,
        "generation": {k: getattr(model.generation, k, None) for k in ("top_k", "top_p", "temperature", "cfg_coef")},
        "results": results,
    }
    print("| audio | precision | recall | onset F1 | offset (ms) | class acc |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['offset_ms']:.1f} "
            f"| {r['class_acc']:.3f} |"
        )
    print(f"generation: {results['generated']['rtf']:.2f}x real time ({len(clips)} clips)")
    counts = ", ".join(f"{name} {r['false_alarms']} ({r['doubled_false_alarms']})" for name, r in results.items())
    print(f"false alarms (doubled: within {DOUBLED_WINDOW * 1000:.0f} ms of a hit, one sound heard twice): {counts}")
    for name, r in results.items():
        if "class_acc_by_class" in r:
            print(f"class accuracy by true class, {name}: {per_class_line(r['class_acc_by_class'])}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
