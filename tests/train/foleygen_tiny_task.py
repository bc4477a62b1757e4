"""A tiny stand-in TrainTask for trainer tests: classify noisy vectors with a dropout MLP.

It exercises what matters for the trainer: global-RNG use in the dataset (noise) and in the model
(dropout), an embedding and a norm (no-decay groups), validation metrics and save_pretrained.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from foleygen.checkpoint import save_checkpoint_dir
from foleygen.train.run_config import RunConfig
from foleygen.train.task import register_task


class NoisyVectors(Dataset):
    def __init__(self, n: int, dim: int, classes: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(1234)) * 2
        self.labels = torch.randint(0, classes, (n,), generator=g)
        self.base = self.centres[self.labels] + 0.3 * torch.randn(n, dim, generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        # global RNG on purpose: the trainer must restore it for an exact resume
        return {"x": self.base[i] + 0.1 * torch.randn(self.base.shape[1]), "y": self.labels[i]}


class TinyNet(nn.Module):
    def __init__(self, dim: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.inp = nn.Linear(dim, hidden)
        self.bias_emb = nn.Embedding(1, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + self.bias_emb.weight[0]
        return self.out(self.drop(torch.relu(self.norm(h))))


@dataclass
class TinyConfig:
    n: int = 48
    dim: int = 8
    classes: int = 4
    hidden: int = 32
    sleep: float = 0.0


@dataclass
class TinyRunConfig(RunConfig):
    tiny: TinyConfig = field(default_factory=TinyConfig)


class TinyTask:
    def __init__(self, run: TinyRunConfig) -> None:
        self.run = run
        self.cfg = run.tiny
        self.dim = self.cfg.dim
        self.classes = self.cfg.classes

    def build_model(self) -> nn.Module:
        return TinyNet(self.dim, self.cfg.hidden, self.classes)

    def build_datasets(self):
        n = self.cfg.n
        return NoisyVectors(n, self.dim, self.classes, 1), NoisyVectors(16, self.dim, self.classes, 2)

    def collate(self, items):
        return {"x": torch.stack([i["x"] for i in items]), "y": torch.stack([i["y"] for i in items])}

    def loss(self, model, batch, step):
        delay = self.cfg.sleep
        if delay:
            time.sleep(delay)  # widens the window in which the kill test lands mid-run
        logits = model(batch["x"])
        loss = nn.functional.cross_entropy(logits, batch["y"])
        return loss, {"acc": float((logits.argmax(-1) == batch["y"]).float().mean())}

    @torch.no_grad()
    def validate(self, model, batch):
        logits = model(batch["x"])
        return {
            "loss": float(nn.functional.cross_entropy(logits, batch["y"])),
            "acc": float((logits.argmax(-1) == batch["y"]).float().mean()),
        }

    def save_pretrained(self, model, directory: Path) -> None:
        save_checkpoint_dir(directory, {"dim": self.dim, "classes": self.classes}, model.state_dict())


@register_task("tiny_test", config=TinyRunConfig)
def make_tiny_task(run: TinyRunConfig) -> TinyTask:
    return TinyTask(run)
