"""Training throughput of the LM task through the real trainer: tokens/s in fp32 and bf16 autocast, JSON.

Tokens are codec tokens (K per audio frame); a training step processes batch x K x T of them. Data is
a synthetic in-memory cache-like set (random codes and features), so the number measures the model
+ optimiser + trainer loop, not decoding (which ``foleygen prepare`` does once, offline).

    nice -n 10 .venv/bin/python benchmarks/train.py                 # the synthfoley_demo LM size, 4 s clips
    nice -n 10 .venv/bin/python benchmarks/train.py --dim 128 --layers 2 --steps 5   # quick
    # the demo model's step: its compact encoder trained jointly on 64x64 frames, eager vs torch.compile
    nice -n 10 .venv/bin/python benchmarks/train.py --visual compact --batch 16 --precisions fp32 --compile
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from foleygen.lm.model import AudioLM, LMConfig
from foleygen.machine import machine_report
from foleygen.train.lm_task import LMWithVisual, masked_codebook_metrics
from foleygen.train.trainer import Trainer
from foleygen.vision.compact import CompactVisualConfig, CompactVisualEncoder


class RandomClips(Dataset):
    """Random codes ``[K, T]`` and either features ``[F, D]`` or, with ``image_size``, uint8 frames ``[F, S, S, 3]``."""

    def __init__(self, n: int, K: int, T: int, F: int, D: int, card: int, image_size: int = 0) -> None:
        g = torch.Generator().manual_seed(0)
        self.codes = torch.randint(0, card, (n, K, T), generator=g)
        if image_size:
            self.visual = torch.randint(0, 256, (n, F, image_size, image_size, 3), generator=g, dtype=torch.uint8)
        else:
            self.visual = torch.randn(n, F, D, generator=g)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"codes": self.codes[i], "visual": self.visual[i]}


class BenchTask:
    """The LM task's model and loss on random data (no cache needed)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.T = round(args.seconds * 50)
        self.F = round(args.seconds * 25)

    def build_model(self) -> torch.nn.Module:
        a = self.args
        cfg = LMConfig(
            dim=a.dim,
            num_layers=a.layers,
            num_heads=a.heads,
            num_codebooks=a.codebooks,
            cardinality=a.cardinality,
            frame_rate=50.0,
            fps=25.0,
            visual_dim=a.visual_dim,
            conditioning=a.conditioning,
            visual_attention=a.attention,
            cfg_dropout=0.1,
        )
        visual = None
        if a.visual == "compact":  # the demo recipe's encoder (configs/synthfoley_demo.yaml), trained jointly
            visual = CompactVisualEncoder(
                CompactVisualConfig(fps=25.0, image_size=a.image_size, dim=a.visual_dim, channels=[32, 64, 128])
            )
        return LMWithVisual(AudioLM(cfg), visual)

    def build_datasets(self) -> tuple[Dataset, None]:
        a = self.args
        size = a.image_size if a.visual == "compact" else 0
        return RandomClips(a.batch * 4, a.codebooks, self.T, self.F, a.visual_dim, a.cardinality, size), None

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {"codes": torch.stack([i["codes"] for i in items]), "visual": torch.stack([i["visual"] for i in items])}

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], step: int) -> Any:
        mask = torch.ones(batch["codes"].shape[0], batch["codes"].shape[2], dtype=torch.bool)
        logits, _ = model(batch["codes"], batch["visual"])  # (logits, training-only heads: none here)
        return masked_codebook_metrics(logits, batch["codes"], mask)

    def validate(self, model: torch.nn.Module, batch: Any) -> dict[str, float]:
        return {}

    def save_pretrained(self, model: torch.nn.Module, directory: Path) -> None:
        from foleygen.checkpoint import save_checkpoint_dir

        save_checkpoint_dir(directory, {"bench": True}, model.state_dict())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args: argparse.Namespace, precision: str, compiled: bool = False) -> dict[str, Any]:
    task = BenchTask(args)
    with tempfile.TemporaryDirectory() as out:
        config = {
            "task": "bench",
            "seed": 0,
            "train": {
                "steps": args.warmup + args.steps,
                "batch_size": args.batch,
                "lr": 1e-4,
                "warmup_steps": 0,
                "precision": precision,
                "log_every": args.warmup,
                "save_every": 0,
                "tensorboard": False,
                "device": args.device,
                "num_threads": args.threads,
                "compile": compiled,
            },
        }
        trainer = Trainer(config, task, out_dir=out, quiet=True)
        batches = trainer._train_batches()
        t_first = time.perf_counter()
        trainer._train_step(batches)  # with compile: the compilation
        _sync(trainer.info.device)
        first_step_s = time.perf_counter() - t_first
        for _ in range(args.warmup):  # first steps allocate and warm the kernels up
            trainer._train_step(batches)
        _sync(trainer.info.device)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            metrics = trainer._train_step(batches)
        _sync(trainer.info.device)  # the last optimiser step is still queued on a GPU
        dt = (time.perf_counter() - t0) / args.steps
    tokens = args.batch * args.codebooks * task.T
    return {
        "precision": precision,
        "compiled": compiled,
        "first_step_s": round(first_step_s, 3),
        "s_per_step": round(dt, 4),
        "steps_per_s": round(1 / dt, 3),
        "tokens_per_s": round(tokens / dt, 1),
        "audio_seconds_per_s": round(args.batch * args.seconds / dt, 2),
        "final_loss": round(float(metrics["loss"]), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--codebooks", type=int, default=4)
    p.add_argument("--cardinality", type=int, default=1024)
    p.add_argument("--visual-dim", type=int, default=256)
    p.add_argument("--conditioning", default="cross")
    p.add_argument("--attention", default="causal")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--visual",
        choices=["features", "compact"],
        default="features",
        help="random features [F, D], or 64x64 frames through the demo's jointly trained compact encoder",
    )
    p.add_argument("--image-size", type=int, default=64, help="frame size with --visual compact")
    p.add_argument("--compile", action="store_true", help="measure each precision eager and with train.compile")
    args = p.parse_args()
    modes = [False, True] if args.compile else [False]
    # eager and compiled alternate per precision, so both see the same machine state (this CPU is noisy)
    results = [measure(args, prec, c) for prec in args.precisions.split(",") for c in modes]
    report = {
        "benchmark": "train_lm_tokens_per_s",
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "machine": machine_report(),
        "threads": args.threads,
        "python": sys.version.split()[0],
        "model": {
            "dim": args.dim,
            "layers": args.layers,
            "heads": args.heads,
            "codebooks": args.codebooks,
            "cardinality": args.cardinality,
            "conditioning": args.conditioning,
            "attention": args.attention,
            "params_M": round(sum(p.numel() for p in BenchTask(args).build_model().parameters()) / 1e6, 2),
            "visual": args.visual if args.visual == "features" else f"compact {args.image_size}x{args.image_size}",
        },
        "batch": args.batch,
        "clip_seconds": args.seconds,
        "tokens_per_step": args.batch * args.codebooks * round(args.seconds * 50),
        "results": results,
    }
    by = {r["precision"]: r for r in results if not r["compiled"]}
    if "fp32" in by and "bf16" in by:
        report["bf16_speedup"] = round(by["bf16"]["tokens_per_s"] / by["fp32"]["tokens_per_s"], 3)
    if args.compile:
        report["compile_speedup"] = {
            r["precision"]: round(r["tokens_per_s"] / by[r["precision"]]["tokens_per_s"], 3)
            for r in results
            if r["compiled"]
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
