"""Average the weights of FoleyGen checkpoints of one architecture (a "model soup").

    python scripts/average_checkpoints.py A_DIR:0.5 B_DIR:0.5 --out SOUP_DIR [--temperature 0.45]

Each input is a checkpoint directory (``config.json`` + ``model.safetensors``) with its weight; weights
are normalised to sum to 1. The output copies the *last* input's directory (its config, codec and any
other files) and replaces its ``model.safetensors`` by the weighted mean of the inputs' floating-point
tensors (integer tensors are taken from the last input). Averaging only makes sense for checkpoints that
share a starting point, e.g. a model and its fine-tuned descendant: the demo model v5 is v4 averaged
with v4 fine-tuned with the clip-label loss (docs/RESULTS.md). ``--temperature`` etc. set the output's
default decoding parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def average_state_dicts(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """Weighted mean (weights normalised) of state dicts with equal keys and shapes, in the last one's dtypes."""
    if not states or len(states) != len(weights):
        raise ValueError("need one weight per state dict, and at least one")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")
    keys = states[-1].keys()
    for i, s in enumerate(states):
        if s.keys() != keys:
            raise ValueError(f"checkpoint {i} has other tensors: {sorted(set(s) ^ set(keys))[:4]}")
    total = float(sum(weights))
    out: dict[str, torch.Tensor] = {}
    for k in keys:
        last = states[-1][k]
        shapes = {tuple(s[k].shape) for s in states}
        if len(shapes) != 1:
            raise ValueError(f"tensor {k} has different shapes: {sorted(shapes)}")
        if not last.is_floating_point():
            out[k] = last
            continue
        acc = torch.zeros(last.shape, dtype=torch.float64)
        for s, w in zip(states, weights, strict=True):
            acc += (w / total) * s[k].double()
        out[k] = acc.to(last.dtype)
    return out


def parse_input(text: str) -> tuple[Path, float]:
    """``DIR:WEIGHT`` (or ``DIR`` for weight 1) -> (path, weight)."""
    path, sep, weight = text.rpartition(":")
    if not sep or not path:
        return Path(text), 1.0
    try:
        return Path(path), float(weight)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text}: the weight after ':' must be a number") from err


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", type=parse_input, help="checkpoint directories as DIR:WEIGHT")
    p.add_argument("--out", type=Path, required=True)
    for name in ("temperature", "top_k", "top_p", "cfg_coef"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=None, help=f"set generation.{name}")
    args = p.parse_args(argv)
    dirs = [d for d, _ in args.inputs]
    for d in dirs:
        if not (d / "model.safetensors").is_file() or not (d / "config.json").is_file():
            print(f"error: {d}: not a FoleyGen checkpoint directory (config.json + model.safetensors)", file=sys.stderr)
            return 1
    try:
        mean = average_state_dicts([load_file(str(d / "model.safetensors")) for d in dirs], [w for _, w in args.inputs])
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    tmp = args.out.with_name(args.out.name + ".averaging")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(dirs[-1], tmp)
    save_file(mean, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((tmp / "config.json").read_text())
    for name in ("temperature", "top_k", "top_p", "cfg_coef"):
        value = getattr(args, name)
        if value is not None:
            config.setdefault("generation", {})[name] = int(value) if name == "top_k" else value
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if args.out.exists():
        shutil.rmtree(args.out)
    os.replace(tmp, args.out)
    print(f"averaged {len(dirs)} checkpoints into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
