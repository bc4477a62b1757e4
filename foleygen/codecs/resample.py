"""Band-limited resampling in plain torch (no torchaudio): a windowed-sinc polyphase filter.

The rate ratio is reduced to ``new / orig`` (coprime). Output sample ``m = n * new + j`` sits at input
position ``n * orig + j * orig / new``, so each of the ``new`` output phases ``j`` is one FIR filter
applied with stride ``orig``: a single ``conv1d`` with ``new`` output channels computes all phases,
which are then interleaved. The filter is a Hann-windowed sinc whose cutoff is the lower Nyquist
frequency (times ``rolloff`` to leave a transition band), so down-sampling does not alias.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from foleygen.errors import CodecError


@lru_cache(maxsize=16)
def _kernel(orig: int, new: int, zero_crossings: int, rolloff: float) -> tuple[torch.Tensor, int]:
    """``([new, 1, 2 * width + orig] float64 filters, width)`` for the reduced ratio ``new / orig``."""
    cutoff = min(1.0, new / orig) * rolloff  # in cycles per input sample x 2 (1.0 = input Nyquist)
    width = math.ceil(zero_crossings / cutoff)
    # i indexes the padded input (offset -width); d is the distance from the output position, in input samples
    i = torch.arange(2 * width + orig, dtype=torch.float64)
    phase = torch.arange(new, dtype=torch.float64)[:, None] * orig / new
    d = i[None, :] - width - phase
    window = torch.where(d.abs() <= width, 0.5 * (1 + torch.cos(math.pi * d / width)), torch.zeros_like(d))
    kernel = cutoff * torch.sinc(cutoff * d) * window
    return kernel[:, None, :], width


def resample(
    wav: torch.Tensor, orig_sr: int, new_sr: int, *, zero_crossings: int = 16, rolloff: float = 0.95
) -> torch.Tensor:
    """Resample ``wav [..., S]`` from ``orig_sr`` to ``new_sr`` -> ``[..., ceil(S * new_sr / orig_sr)]``.

    ``zero_crossings`` sets the filter length (quality vs speed); ``rolloff`` < 1 moves the cutoff below
    the target Nyquist frequency so that the transition band does not alias.
    """
    if orig_sr <= 0 or new_sr <= 0:
        raise CodecError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return wav
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    kernel, width = _kernel(orig, new, zero_crossings, rolloff)
    kernel = kernel.to(dtype=wav.dtype if wav.dtype.is_floating_point else torch.float32, device=wav.device)
    shape = wav.shape
    length = shape[-1]
    out_len = -(-length * new // orig)
    x = wav.reshape(-1, 1, length).to(kernel.dtype)
    # left pad so that output 0 is centred on input 0; right pad so that every output position has a frame
    x = torch.nn.functional.pad(x, (width, width + orig))
    y = torch.nn.functional.conv1d(x, kernel, stride=orig)  # [N, new, frames]
    y = y.transpose(1, 2).reshape(x.shape[0], -1)[:, :out_len]
    return y.reshape(*shape[:-1], out_len)
