"""Train the SynthFoley event classifier on ground-truth audio windows and save it as a checkpoint.

    nice -n 10 .venv/bin/python scripts/train_event_classifier.py --out foleygen/assets/event_classifier

Data: for every reference onset (a group of impacts closer than 50 ms, see foleygen.eval.onsets) whose
impacts all share one class, a window of 0.3 s starting 20 ms before the onset, cut from the clip's full
mix (other objects' sounds, rolling, spinning, noise: overlaps stay in, as in real clips). Training
crops are jittered by +-15 ms (detected onsets are not exact, generated audio even less) and their
gain by +-6 dB. Splits: train for fitting, val for choosing the epoch, test for the reported numbers:
window accuracy at the true onsets and `class_accuracy` (detector + matching + classifier) on clean
test-split audio. Prints one JSON line at the end; the numbers are also stored in config.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time

import numpy as np
import torch
from torch import nn

from foleygen.data.synthfoley import CLASS_TO_INDEX, CLASSES, GENERATOR_VERSION, SynthFoleyConfig, generate_clip
from foleygen.eval.event_classifier import (
    EventClassifier,
    EventClassifierConfig,
    aggregate_accuracy,
    class_accuracy,
)
from foleygen.eval.onsets import reference_onsets

JITTER = 0.015


def build_windows(
    split: str, seed: int, num: int, config: EventClassifierConfig, synth: SynthFoleyConfig, quiet: bool
) -> tuple[np.ndarray, np.ndarray, list]:
    """Windows ``[N, L + 2 * jitter]`` (float32), labels ``[N]`` and the clips' (audio, events)."""
    margin = round(JITTER * config.sample_rate)
    length = config.window_samples + 2 * margin
    xs, ys, clips = [], [], []
    t0 = time.time()
    for i in range(num):
        clip = generate_clip(split, seed, i, synth)
        clips.append((clip.audio, clip.events))
        padded = np.pad(clip.audio, (length, length))
        for ref in reference_onsets(clip.events):
            classes = {e["class"] for e in ref["events"]}
            if len(classes) != 1:
                continue  # two classes at once: no single right answer
            start = round(ref["time"] * synth.sample_rate) - config.pre_samples - margin + length
            xs.append(padded[start : start + length])
            ys.append(CLASS_TO_INDEX[classes.pop()])
        if not quiet and (i + 1) % 500 == 0:
            print(f"  {split}: {i + 1}/{num} clips, {len(xs)} windows, {time.time() - t0:.0f} s", file=sys.stderr)
    return np.stack(xs).astype(np.float32), np.asarray(ys, np.int64), clips


def crop(x: torch.Tensor, length: int, margin: int, train: bool, gen: torch.Generator) -> torch.Tensor:
    """Windows ``[B, length]`` out of ``[B, length + 2 margin]``: random offset and gain when training."""
    if not train:
        return x[:, margin : margin + length]
    offsets = torch.randint(0, 2 * margin + 1, (x.shape[0],), generator=gen)
    idx = offsets[:, None] + torch.arange(length)[None, :]
    out = torch.gather(x, 1, idx)
    gain = 10 ** ((torch.rand(x.shape[0], 1, generator=gen) * 12 - 6) / 20)
    return (out * gain).clamp(-1, 1)


@torch.no_grad()
def accuracy(model: EventClassifier, x: torch.Tensor, y: torch.Tensor, length: int, margin: int) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), 256):
        logits = model(crop(x[i : i + 256], length, margin, False, None))
        correct += int((logits.argmax(1) == y[i : i + 256]).sum())
    model.train()
    return correct / max(1, len(x))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="foleygen/assets/event_classifier")
    parser.add_argument("--seed", type=int, default=0, help="SynthFoley base seed of all three splits")
    parser.add_argument("--train-clips", type=int, default=2000)
    parser.add_argument("--val-clips", type=int, default=300)
    parser.add_argument("--test-clips", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    config = EventClassifierConfig(classes=CLASSES)
    synth = SynthFoleyConfig(size=16)  # frames are not used; audio does not depend on the frame size
    length, margin = config.window_samples, round(JITTER * config.sample_rate)
    t_start = time.time()
    xtr, ytr, _ = build_windows("train", args.seed, args.train_clips, config, synth, args.quiet)
    xva, yva, _ = build_windows("val", args.seed, args.val_clips, config, synth, args.quiet)
    xte, yte, test_clips = build_windows("test", args.seed, args.test_clips, config, synth, args.quiet)
    if not args.quiet:
        counts = np.bincount(ytr, minlength=len(CLASSES)).tolist()
        print(
            f"windows: train {len(xtr)} {dict(zip(CLASSES, counts, strict=True))}, val {len(xva)}, "
            f"test {len(xte)} ({time.time() - t_start:.0f} s)",
            file=sys.stderr,
        )
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xva_t, yva_t = torch.from_numpy(xva), torch.from_numpy(yva)

    model = EventClassifier(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    steps_per_epoch = math.ceil(len(xtr) / args.batch_size)
    total = args.epochs * steps_per_epoch
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then cosine decay to zero
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    best_acc, best_state, best_epoch = -1.0, None, -1
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        run_loss, t_epoch = 0.0, time.time()
        for k in range(steps_per_epoch):
            idx = perm[k * args.batch_size : (k + 1) * args.batch_size]
            logits = model(crop(xtr_t[idx], length, margin, True, gen))
            loss = loss_fn(logits, ytr_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run_loss += float(loss.detach())
        val_acc = accuracy(model, xva_t, yva_t, length, margin)
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if not args.quiet:
            print(
                f"epoch {epoch + 1}/{args.epochs}: loss {run_loss / steps_per_epoch:.4f} val acc {val_acc:.4f} "
                f"({time.time() - t_epoch:.0f} s)",
                file=sys.stderr,
            )
    model.load_state_dict(best_state)
    model.eval()
    test_window_acc = accuracy(model, torch.from_numpy(xte), torch.from_numpy(yte), length, margin)
    detected = aggregate_accuracy([class_accuracy(a, synth.sample_rate, ev, model) for a, ev in test_clips])
    report = {
        "val_window_accuracy": best_acc,
        "best_epoch": best_epoch + 1,
        "test_window_accuracy": test_window_acc,
        "test_windows": len(xte),
        "test_class_accuracy_detected": detected.accuracy,
        "test_detected_onsets": detected.total,
        "train_windows": len(xtr),
        "train_clips": args.train_clips,
        "seed": args.seed,
        "epochs": args.epochs,
        "generator_version": GENERATOR_VERSION,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(time.time() - t_start),
    }
    model.config = dataclasses.replace(config, extra=report)
    model.save_pretrained(args.out)
    print(json.dumps(report))
    if not args.quiet:
        print("confusion (rows = reference, cols = predicted; " + ", ".join(CLASSES) + "):", file=sys.stderr)
        print(detected.confusion, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
