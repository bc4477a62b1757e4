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


def decoded_magnitude_and_phase(codec: CompactCodec, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``wav [1, S]`` -> the decoder's magnitude and phase ``[bins, N]`` for the codes of ``wav``."""
    z = codec.quantizer.decode(codec.encode(wav[None]))
    out = codec.decoder(z).reshape(3, codec.num_bins, -1)
    mag = (torch.exp(out[0].clamp(max=6.0)) - 1e-4).clamp(min=0.0)
    return mag, torch.atan2(out[2], out[1])


def rebuild(codec: CompactCodec, mag: torch.Tensor, phase: torch.Tensor, length: int) -> np.ndarray:
    """Inverse STFT of ``mag * e^{i phase}`` ``[bins, N]`` (the codec's own framing) -> ``[S]``."""
    spec = torch.polar(mag, phase)
    spec = torch.cat([spec, spec[..., -1:]], dim=-1)
    cfg = codec.config
    return torch.istft(spec, cfg.n_fft, cfg.stft_hop, window=codec.window, center=True, length=length).numpy()


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
            mag, phase = decoded_magnitude_and_phase(codec, wav)
            cfg = codec.config
            true = torch.stft(wav[0], cfg.n_fft, cfg.stft_hop, window=codec.window, center=True, return_complex=True)
            true = true[..., : mag.shape[-1]]
            n = wav.shape[-1]
            audio["reconstruction"].append(rebuild(codec, mag, phase, n))
            audio["true_magnitude"].append(rebuild(codec, true.abs(), phase, n))
    report = {}
    for name, wavs in audio.items():
        acc = aggregate_accuracy([class_accuracy(w, sr, e, classifier) for w, e in zip(wavs, events, strict=True)])
        rows = acc.confusion.tolist()
        by_class = {c: (rows[i][i] / sum(rows[i]) if sum(rows[i]) else None) for i, c in enumerate(classifier.classes)}
        report[name] = {"class_acc": acc.accuracy, "matched": acc.total, "by_class": by_class, "confusion": rows}
        shown = " | ".join(f"{c} {'-' if v is None else f'{v:.2f}'}" for c, v in by_class.items())
        print(f"{name:15s} class acc {acc.accuracy:.3f} ({acc.total} onsets)  {shown}")
    if args.json:
        args.json.write_text(json.dumps({"codec": args.codec, "clips": len(clips), "results": report}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
