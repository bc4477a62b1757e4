"""Checkpoints of the original ``encodec`` package (``encodec_24khz-*.th``, ``encodec_48khz-*.th``).

These files are bare state dicts: the configuration is not stored. We read what the weights determine
(channels, filters, ratios from the strided-conv kernel sizes, residual layers, compression, LSTM
layers, norm type, shortcut type, codebook count/size/dimension) and take the rest (sample rate,
causality, padding mode, dilation base) from the published model the file name names (24 or 48 kHz).
The model runs through transformers' ``EncodecModel`` (see :mod:`foleygen.codecs.encodec_hf`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from foleygen.checkpoint import safe_torch_load
from foleygen.codecs.encodec_hf import EncodecCodec, build_from_seanet_state, hf_config_from_seanet
from foleygen.errors import CheckpointError

#: what the weights cannot tell, per published model (from the encodec package's model builders)
PUBLISHED = {
    24000: {"causal": True, "pad_mode": "reflect", "dilation_base": 2},
    48000: {"causal": False, "pad_mode": "reflect", "dilation_base": 2},
}
_SUFFIXES = (".th", ".pt", ".pth", ".bin", ".ckpt")


def _direct_convs(state: dict[str, torch.Tensor], part: str) -> list[tuple[int, torch.Tensor]]:
    """``(index, weight)`` of the top-level convs of ``encoder``/``decoder`` (not inside residual blocks)."""
    found = {}
    pattern = re.compile(rf"^{part}\.model\.(\d+)\.(conv\.conv|convtr\.convtr)\.(weight|weight_v)$")
    for key, value in state.items():
        m = pattern.match(key)
        if m:
            found[int(m.group(1))] = value
    return sorted(found.items())


def infer_seanet_config(state: dict[str, torch.Tensor], source: Path) -> dict:
    """SEANet/RVQ hyper-parameters that an ``encodec``-layout state dict determines."""
    convs = _direct_convs(state, "encoder")
    if len(convs) < 2:
        raise CheckpointError("not an EnCodec state dict (no encoder.model.N.conv.conv weights)", source)
    first, last, down = convs[0], convs[-1], convs[1:-1]
    n_filters, channels, kernel_size = first[1].shape
    dimension, _, last_kernel_size = last[1].shape
    ratios = [int(w.shape[-1]) // 2 for _, w in reversed(down)]  # encoder goes through reversed(ratios)
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^encoder\.model\.(\d+)\.block\.", k))}
    n_residual_layers = sum(1 for i in blocks if first[0] < i < (down[0][0] if down else last[0]))
    first_block = min(blocks) if blocks else None
    compress, residual_kernel_size = 2, 3
    if first_block is not None:
        w = state.get(
            f"encoder.model.{first_block}.block.1.conv.conv.weight_v",
            state.get(f"encoder.model.{first_block}.block.1.conv.conv.weight"),
        )
        if w is not None:
            compress = max(1, int(w.shape[1]) // int(w.shape[0]))
            residual_kernel_size = int(w.shape[-1])
    lstm = len({k for k in state if re.match(r"^encoder\.model\.\d+\.lstm\.weight_ih_l\d+$", k)})
    norm = (
        "weight_norm"
        if any(k.endswith(".weight_g") for k in state)
        else ("time_group_norm" if any(".conv.norm." in k for k in state) else "none")
    )
    layers = {int(m.group(1)) for k in state if (m := re.match(r"^quantizer\.vq\.layers\.(\d+)\.", k))}
    embed = state.get("quantizer.vq.layers.0._codebook.embed")
    if embed is None:
        raise CheckpointError("not an EnCodec state dict (no quantizer.vq.layers.0._codebook.embed)", source)
    return dict(
        channels=int(channels),
        dimension=int(dimension),
        n_filters=int(n_filters),
        n_residual_layers=n_residual_layers,
        ratios=ratios,
        n_q=len(layers),
        bins=int(embed.shape[0]),
        norm=norm,
        true_skip=not any(".shortcut." in k for k in state),
        compress=compress,
        lstm=lstm,
        kernel_size=int(kernel_size),
        last_kernel_size=int(last_kernel_size),
        residual_kernel_size=residual_kernel_size,
    )


def _sample_rate_from_name(path: Path) -> int | None:
    m = re.search(r"(\d+)\s*khz", path.name.lower())
    return int(m.group(1)) * 1000 if m else None


def is_encodec_package_file(path: Path) -> bool:
    """A torch file named like the published ``encodec_<N>khz-*.th`` checkpoints."""
    return (
        path.is_file()
        and path.suffix in _SUFFIXES
        and path.name.lower().startswith("encodec_")
        and _sample_rate_from_name(path) is not None
    )


def load_encodec_package(path: Path, num_codebooks: int | None) -> EncodecCodec:
    """Load an ``encodec`` package state dict as an :class:`EncodecCodec`."""
    state = safe_torch_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("expected a plain state dict of tensors (an encodec package .th file)", path)
    sample_rate = _sample_rate_from_name(path)
    if sample_rate not in PUBLISHED:
        raise CheckpointError(f"unknown encodec model {sample_rate} Hz (the file name must say 24khz or 48khz)", path)
    cfg = infer_seanet_config(state, path)
    hf_config = hf_config_from_seanet(sample_rate=sample_rate, **cfg, **PUBLISHED[sample_rate])
    return build_from_seanet_state(state, hf_config, path, num_codebooks)
