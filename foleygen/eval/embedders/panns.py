"""PANNs CNN14 (Kong et al. 2020) in pure torch, loading the published ``Cnn14*_mAP=*.pth`` checkpoints.

Checkpoint: a dict whose ``'model'`` entry is the state dict: ``bn0`` (BatchNorm over the 64 mel bins),
``conv_block{1..6}.{conv1,conv2}.weight`` (3x3, no bias) with ``bn1``/``bn2``, widths 64..2048,
``fc1`` (2048 -> 2048), ``fc_audioset`` (2048 -> 527), plus the frozen torchlibrosa frontend
(``spectrogram_extractor.stft.conv_{real,imag}.weight``, ``logmel_extractor.melW [n_fft/2+1, 64]``).

Two published variants: ``Cnn14_16k_mAP=0.438.pth`` (16 kHz, n_fft 512, hop 160, 50-8000 Hz; what
av-benchmark uses) and ``Cnn14_mAP=0.431.pth`` (32 kHz, n_fft 1024, hop 320, 50-14000 Hz). The variant
is read from the shape of ``melW`` (or, without it, from ``16k`` in the file name).

Outputs follow av-benchmark: the 2048-d embedding is ``relu(fc1(pooled))`` and the logits are
``fc_audioset`` of it, before the sigmoid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from foleygen.checkpoint import safe_torch_load
from foleygen.errors import CheckpointError
from foleygen.eval.embedders.base import (
    ClipClassifierEmbedder,
    check_keys,
    file_fingerprint,
    strip_prefix,
)
from foleygen.eval.embedders.frontends import panns_logmel, slaney_mel_matrix

__all__ = ["PannsConfig", "Cnn14", "PannsEmbedder", "load_panns", "PANNS_16K", "PANNS_32K"]


@dataclass(frozen=True)
class PannsConfig:
    """Frontend and widths of a CNN14."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 160
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 8000.0
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    num_classes: int = 527


PANNS_16K = PannsConfig()
PANNS_32K = PannsConfig(sample_rate=32000, n_fft=1024, hop=320, fmax=14000.0)


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14(nn.Module):
    """CNN14: log-mel ``[B, 1, T, M]`` -> (embedding ``[B, widths[-1]]``, logits ``[B, num_classes]``)."""

    def __init__(self, config: PannsConfig = PANNS_16K) -> None:
        super().__init__()
        self.config = config
        self.bn0 = nn.BatchNorm2d(config.mel_bins)
        widths = (1, *config.widths)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", _ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(config.widths[-1], config.widths[-1])
        self.fc_audioset = nn.Linear(config.widths[-1], config.num_classes)
        mel = slaney_mel_matrix(config.sample_rate, config.n_fft, config.mel_bins, config.fmin, config.fmax)
        # Not in state_dict(): a checkpoint's own melW replaces it in load_panns (same numbers up to rounding).
        self.register_buffer("mel_matrix", torch.from_numpy(mel).float(), persistent=False)

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 1, T, M]`` -> ``([B, D], [B, C])`` (eval-mode network; no dropout / SpecAugment)."""
        x = self.bn0(logmel.transpose(1, 3)).transpose(1, 3)  # normalise each mel bin
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, 2 if i < 5 else 1)
        x = x.mean(dim=3)  # over frequency -> [B, C, T']
        x = x.amax(dim=2) + x.mean(dim=2)  # max + mean over time
        embedding = F.relu(self.fc1(x))
        return embedding, self.fc_audioset(embedding)

    def embed_wav(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``wav [B, S]`` at ``config.sample_rate`` -> ``([B, D], [B, C])``."""
        logmel = panns_logmel(wav.float(), self.mel_matrix, n_fft=self.config.n_fft, hop=self.config.hop)
        return self(logmel)


class PannsEmbedder(ClipClassifierEmbedder):
    """PANNs CNN14: one 2048-d embedding and 527 AudioSet logits per clip."""

    name = "panns"

    def __init__(self, model: Cnn14, fingerprint: str = "") -> None:
        super().__init__(model, model.config.widths[-1], fingerprint)


def load_panns(path: str | os.PathLike[str]) -> PannsEmbedder:
    """Load a published CNN14 checkpoint (16 or 32 kHz variant; widths read from the weights)."""
    path = Path(path)
    ckpt = safe_torch_load(path)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or "fc_audioset.weight" not in strip_prefix(state, ("module.",)):
        raise CheckpointError("not a PANNs CNN14 checkpoint (expects a dict with 'model' holding fc_audioset.*)", path)
    state = strip_prefix(state, ("module.",))
    mel_w = state.get("logmel_extractor.melW")
    if mel_w is not None:
        n_fft = (mel_w.shape[0] - 1) * 2
        base = PANNS_16K if n_fft == PANNS_16K.n_fft else PANNS_32K if n_fft == PANNS_32K.n_fft else None
        if base is None:
            raise CheckpointError(
                f"unknown CNN14 frontend (melW {tuple(mel_w.shape)}); expected the 16 or 32 kHz variant", path
            )
    else:
        base = PANNS_16K if "16k" in path.name.lower() else PANNS_32K
    try:
        widths = tuple(int(state[f"conv_block{i}.conv1.weight"].shape[0]) for i in range(1, 7))
    except KeyError as err:
        raise CheckpointError(f"not a PANNs CNN14 checkpoint: missing {err.args[0]!r}", path) from None
    config = PannsConfig(
        **{
            **base.__dict__,
            "widths": widths,
            "mel_bins": int(state["bn0.weight"].shape[0]) if "bn0.weight" in state else 64,
            "num_classes": int(state["fc_audioset.weight"].shape[0]),
        }
    )
    model = Cnn14(config)
    model.load_state_dict(check_keys(model, state, path, "PANNs CNN14"))
    if mel_w is not None:
        if tuple(mel_w.shape) != tuple(model.mel_matrix.shape):
            raise CheckpointError(f"melW shape {tuple(mel_w.shape)} does not fit {tuple(model.mel_matrix.shape)}", path)
        model.mel_matrix.copy_(mel_w.float())  # use exactly the filters the model was trained with
    return PannsEmbedder(model, fingerprint=file_fingerprint(path))
