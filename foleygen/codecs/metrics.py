"""Reconstruction metrics of a codec: original ``target [B, C, S]`` vs reconstruction ``pred [B, C, S]``.

* :func:`mel_distance`: mean |log-mel difference| (natural log, 64 bands, 1024/256 STFT): lower is better.
* :func:`mrstft_distance`: spectral convergence + log-magnitude L1 averaged over three STFT sizes.
* :func:`si_sdr`: scale-invariant signal-to-distortion ratio in dB (higher is better); sensitive to phase,
  which magnitude-only metrics ignore.
"""

from __future__ import annotations

import torch

from foleygen.codecs.losses import MelLoss, MultiResolutionSTFTLoss
from foleygen.errors import CodecError


def _check(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.dim() != 3 or target.dim() != 3:
        raise CodecError(f"metrics take [B, C, S] audio, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.shape[:2] != target.shape[:2]:
        raise CodecError(f"batch/channel shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    n = min(pred.shape[-1], target.shape[-1])  # codecs pad to whole frames: compare the common part
    return pred[..., :n].float(), target[..., :n].float()


@torch.no_grad()
def mel_distance(pred: torch.Tensor, target: torch.Tensor, sample_rate: int, n_mels: int = 64) -> float:
    """Mean absolute log-mel difference (0 = identical)."""
    pred, target = _check(pred, target)
    return float(MelLoss(sample_rate, n_mels=n_mels).to(pred.device)(pred, target))


@torch.no_grad()
def mrstft_distance(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Multi-resolution STFT distance: spectral convergence + log-magnitude L1 (0 = identical)."""
    pred, target = _check(pred, target)
    sc, logmag = MultiResolutionSTFTLoss().to(pred.device)(pred, target)
    return float(sc + logmag)


@torch.no_grad()
def si_sdr(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB per item and channel, ``[B, C]``.

    ``target`` is projected onto ``pred``'s best-fitting scale: ``s = <pred, t> / <t, t> * t``, and
    ``SI-SDR = 10 log10(|s|^2 / |pred - s|^2)``. Both signals are made zero-mean first.
    """
    pred, target = _check(pred, target)
    pred = pred - pred.mean(dim=-1, keepdim=True)
    target = target - target.mean(dim=-1, keepdim=True)
    scale = (pred * target).sum(-1, keepdim=True) / (target.pow(2).sum(-1, keepdim=True) + eps)
    s = scale * target
    return 10 * torch.log10((s.pow(2).sum(-1) + eps) / ((pred - s).pow(2).sum(-1) + eps))
