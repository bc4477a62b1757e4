#!/usr/bin/env python
"""Where does a compact codec lose sound classes: in its magnitudes or in its phases?

For each SynthFoley clip it rebuilds the audio two ways from the codec's decoder output and scores
each with the SynthFoley event classifier at the true impacts (``scripts/eval_demo_model.py``'s class
accuracy), per class:

* ``reconstruction``: decoded magnitude + decoded phase (what the codec plays);
* ``true_magnitude``: the original STFT magnitude + decoded phase (only the phase is the codec's).

If ``true_magnitude`` scores near the clean audio, the phases are good enough and the magnitudes are
what the codec gets wrong. (The converse test, decoded magnitude + true phase, says nothing: the
decoder's STFT is not consistent -- its overlap-add cancels part of its own magnitudes -- so its
magnitudes only make sense with its own phases.)

    python scripts/diagnose_codec.py --codec foleygen/assets/demo/codec --clips runs/test200 --num 60
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from foleygen.codecs import load_codec
from foleygen.codecs.compact import CompactCodec
from foleygen.eval.event_classifier import aggregate_accuracy, class_accuracy, load_event_classifier
from foleygen.io import read_audio


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", required=True, help="compact codec directory")
    p.add_argument("--clips", type=Path, required=True, help="SynthFoley folder (NNNNN.mp4 + NNNNN.json)")
    p.add_argument("--num", type=int, default=60)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    codec = load_codec(args.codec)
    if not isinstance(codec, CompactCodec):
        raise SystemExit(f"{args.codec}: not a compact codec (this diagnosis reads its STFT decoder)")
    clips = sorted(args.clips.glob("*.mp4"))[: args.num]
    if not clips:
        raise SystemExit(f"{args.clips}: no *.mp4 clips")
    classifier = load_event_classifier()
    sr = codec.sample_rate
    audio: dict[str, list[np.ndarray]] = {"reconstruction": [], "true_magnitude": []}
    events = []
    with torch.inference_mode():
        for clip in clips:
            events.append(json.loads(clip.with_suffix(".json").read_text())["events"])
            wav = read_audio(clip, sr, 1)
            mag, phasor = codec.decode_spectrum(codec.quantizer.decode(codec.encode(wav[None])))  # [1, bins, N]
            true = codec.stft(wav)[..., : mag.shape[-1]]
            n = wav.shape[-1]
            audio["reconstruction"].append(codec.istft(mag * phasor, n)[0].numpy())
            audio["true_magnitude"].append(codec.istft(true.abs() * phasor, n)[0].numpy())
    report = {}
    for name, wavs in audio.items():
        acc = aggregate_accuracy([class_accuracy(w, sr, e, classifier) for w, e in zip(wavs, events, strict=True)])
        by_class = acc.per_class(classifier.classes)
        report[name] = {
            "class_acc": acc.accuracy,
            "matched": acc.total,
            "by_class": by_class,
            "confusion": acc.confusion.tolist(),
        }
        shown = " | ".join(f"{c} {'-' if v is None else f'{v:.2f}'}" for c, v in by_class.items())
        print(f"{name:15s} class acc {acc.accuracy:.3f} ({acc.total} onsets)  {shown}")
    if args.json:
        args.json.write_text(json.dumps({"codec": args.codec, "clips": len(clips), "results": report}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
