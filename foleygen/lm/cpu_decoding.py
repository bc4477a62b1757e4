"""Fast CPU decoding, swapped into a plain model when it decodes on the CPU, chosen by measurement.

The model (:mod:`foleygen.lm.transformer`) is built from plain ``nn.Linear`` / ``nn.LayerNorm`` and
PyTorch attention: that is what trains, exports and runs on a GPU. A CPU decoding step is different: it
multiplies a few rows (one per sequence and guidance row) by every weight, so its cost is streaming the
weights, and several ways of doing that exist whose speed depends on the CPU (its vector unit, oneDNN's
kernels for it) and the torch build. :func:`prepare` (called by :meth:`AudioLM.generate` on the CPU)
switches the model's linears, norms and attentions to one **decoding path** in place:

``torch``
    PyTorch as is (``nn.Linear``; a bf16/fp16 model's float32 rows are rounded to its dtype first).
``gemv`` (float32 models)
    ``(W @ x^T)^T``: another BLAS routine for the same product, which reads the weights faster than
    ``x @ W^T`` on some CPUs (the AMD EPYCs of the project's development).
``onednn`` (bf16 models, CPUs with native bf16)
    oneDNN's linear on a copy of the weight packed once in its blocked layout (private
    ``torch.ops.mkldnn`` ops: offered only on the torch releases they were tested on,
    :data:`ONEDNN_TESTED_TORCH`, unless asked for by name).
``native``
    the C++ torch ops of :mod:`foleygen.lm.native`: float32 rows through bf16/fp16 weights widened on the
    fly, and one-query attention over float32 or bf16 KV caches (``gemv`` linears for float32 models).
``int8`` (any float model; by name only, never the measured choice: it changes the numbers)
    ``native`` with every decoding linear on a per-output-channel int8 copy of its weight, made once
    (:func:`foleygen.lm.native.quantize_int8`): a quarter of float32's bytes, half of bf16's. Its
    quality cost on SynthFoley is measured in ``docs/performance.md``.

Which is fastest is not assumed: on first use :func:`calibrate` times a few decoding steps of the model
itself with each candidate, interleaved, and keeps the fastest. The choice is cached per CPU model,
torch version, thread count, dtype and model shape in ``$FOLEYGEN_CACHE/decode_paths.json`` (default
``~/.cache/foleygen``), so later loads pay nothing. ``FOLEYGEN_DECODE_PATH=<name>`` (or
``prepare(lm, path=...)``) overrides it. Every path computes the same products up to rounding order;
training batches (many rows) and autograd always take PyTorch's own path.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from foleygen.errors import ConfigError
from foleygen.lm import native
from foleygen.lm.transformer import CrossAttention, SelfAttention, attention
from foleygen.machine import cpu_name
from foleygen.utils import native_bf16

log = logging.getLogger(__name__)

#: Up to this many rows (a decoding step's batch and its guidance rows) a linear takes the chosen path.
MAX_ROWS = 8
PATHS = ("torch", "gemv", "onednn", "native", "int8")
#: Paths whose products differ from the model's own by more than rounding: offered by name only.
LOSSY = ("int8",)
ENV = "FOLEYGEN_DECODE_PATH"
#: torch (major, minor) releases on which the private oneDNN ops of the ``onednn`` path were tested.
ONEDNN_TESTED_TORCH = ((2, 13), (2, 14))


def _torch_release() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


class DecodingLinear(nn.Linear):
    """``nn.Linear`` whose few-row CPU products take :attr:`path` (``x [..., in] -> [..., out]``).

    An installed module *is* the model's own ``nn.Linear`` with its class swapped (same parameters,
    state-dict keys, hooks and optimiser references), so installing and removing a path copies nothing.
    """

    path: str = "torch"
    _packed: tuple[int, int, torch.Tensor] | None = None  # (weight version, data pointer, packed weight)
    _int8: tuple[tuple[int, int, int], torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        rows = x.numel() // w.shape[1]
        grad = torch.is_grad_enabled() and (w.requires_grad or x.requires_grad)
        if rows > MAX_ROWS or grad or x.device.type != "cpu":
            if x.dtype != w.dtype:
                return F.linear(x.to(w.dtype), w, self.bias).to(x.dtype)
            return F.linear(x, w, self.bias)
        x2 = x.reshape(rows, w.shape[1])
        y = self._rows(x2, w)
        return y.view(*x.shape[:-1], w.shape[0])

    def _rows(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x [rows, in]`` (the activations' dtype) -> ``[rows, out]`` in that dtype."""
        path = self.path
        if path == "int8" and x.dtype == torch.float32 and native.int8_usable(x):
            _, q, scale, bias = self._int8_weight()
            return native.linear_int8(x.contiguous(), q, scale, bias)
        if w.dtype == torch.float32:
            if path in ("gemv", "native") and x.dtype == torch.float32:
                y = (w @ x.T).T.contiguous()
                return y + self.bias if self.bias is not None else y
            return F.linear(x.to(w.dtype), w, self.bias).to(x.dtype)
        if path == "native" and x.dtype == torch.float32 and w.is_contiguous() and native.usable(x, w):
            return native.linear_half_unchecked(x.contiguous(), w, self.bias)
        xh = x.to(w.dtype)
        if path == "onednn" and w.dtype == torch.bfloat16:
            y = torch.ops.mkldnn._linear_pointwise(xh.contiguous(), self._packed_weight(), self.bias, "none", [], "")
        else:
            y = F.linear(xh, w, self.bias)
        return y.to(x.dtype)

    def _packed_weight(self) -> torch.Tensor:
        w = self.weight
        key = (w._version, w.data_ptr())
        if self._packed is None or self._packed[:2] != key:  # remade whenever the weight changes
            self._packed = (*key, torch.ops.mkldnn._reorder_linear_weight(w.detach(), MAX_ROWS))
        return self._packed[2]

    def _int8_weight(self) -> tuple[tuple[int, int, int], torch.Tensor, torch.Tensor, torch.Tensor | None]:
        w, b = self.weight, self.bias
        key = (w._version, w.data_ptr(), -1 if b is None else b._version)
        if self._int8 is None or self._int8[0] != key:  # remade whenever the weight or bias changes
            q, scale = native.quantize_int8(w)
            self._int8 = (key, q, scale, None if b is None else b.detach().float().contiguous())
        return self._int8

    def __getstate__(self) -> dict[str, Any]:  # deepcopy/pickle: oneDNN's packed tensor has no storage
        state = self.__dict__.copy()
        state.pop("_packed", None)
        state.pop("_int8", None)
        return state

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> DecodingLinear:
        self._packed = self._int8 = None  # .to(), .half(), ...: a packed copy of the old weight is stale
        return super()._apply(fn, *args, **kwargs)


class DecodingLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` that also normalises float32 activations with bf16/fp16 parameters (a CPU
    decoding step keeps activations in float32, :func:`foleygen.lm.transformer.decoding_dtype`), through
    float32 copies of the parameters made once and remade whenever they change."""

    _copies: tuple[tuple[int, int, int, int], torch.Tensor | None, torch.Tensor | None] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight, self.bias
        if w is None or x.dtype == w.dtype:
            return super().forward(x)
        if torch.is_grad_enabled():  # differentiable, no cached copies
            return F.layer_norm(x, self.normalized_shape, w.to(x.dtype), None if b is None else b.to(x.dtype), self.eps)
        key = (w._version, w.data_ptr(), -1 if b is None else b._version, -1 if b is None else b.data_ptr())
        if self._copies is None or self._copies[0] != key or self._copies[1].dtype != x.dtype:
            self._copies = (key, w.detach().to(x.dtype), None if b is None else b.detach().to(x.dtype))
        return F.layer_norm(x, self.normalized_shape, self._copies[1], self._copies[2], self.eps)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> DecodingLayerNorm:
        self._copies = None
        return super()._apply(fn, *args, **kwargs)


def native_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """:func:`foleygen.lm.transformer.attention` with one-query steps on :func:`native.attend_one`."""
    if mask is None and not is_causal and dropout_p == 0.0 and native.attention_usable(q, k, v):
        return native.attend_one(q, k, v)
    return attention(q, k, v, mask, is_causal, dropout_p)


# ------------------------------------------------------------------------------------------ install
def candidates(dtype: torch.dtype, *, untested: bool = False, lossy: bool = False) -> list[str]:
    """The paths that apply to a model whose weights are in ``dtype`` on this machine (``untested``: also
    ``onednn`` on a torch release outside :data:`ONEDNN_TESTED_TORCH`; ``lossy``: also :data:`LOSSY`)."""
    out = ["torch"]
    if dtype == torch.float32:
        out.append("gemv")
    tested = _torch_release() in ONEDNN_TESTED_TORCH or untested
    if dtype == torch.bfloat16 and tested and native_bf16(torch.device("cpu")):
        out.append("onednn")
    if dtype in (torch.float32, *native.HALF_DTYPES) and native.available():
        out.append("native")
        if lossy:
            out.append("int8")
    return out


def install(lm: nn.Module, path: str) -> None:
    """Switch ``lm``'s linears, layer norms and attentions to ``path`` in place (see the module doc)."""
    if path not in PATHS:
        raise ConfigError(f"unknown decoding path {path!r}; known: {', '.join(PATHS)}")
    for module in lm.modules():
        if type(module) in (nn.Linear, DecodingLinear):
            module.__class__ = DecodingLinear
            module.path = path
        elif type(module) in (nn.LayerNorm, DecodingLayerNorm):
            module.__class__ = DecodingLayerNorm
        elif isinstance(module, SelfAttention | CrossAttention):
            module.attend = native_attention if path in ("native", "int8") else attention
    lm.decode_path = path


def uninstall(lm: nn.Module) -> None:
    """Back to plain PyTorch modules (nothing is copied: the parameters stay where they are)."""
    for module in lm.modules():
        if type(module) is DecodingLinear:
            module._packed = module._int8 = None
            module.__class__ = nn.Linear
            module.__dict__.pop("path", None)
        elif type(module) is DecodingLayerNorm:
            module._copies = None
            module.__class__ = nn.LayerNorm
        elif isinstance(module, SelfAttention | CrossAttention):
            module.__dict__.pop("attend", None)
    lm.__dict__.pop("decode_path", None)


def cache_dtype(lm: nn.Module, dtype: torch.dtype, device: torch.device) -> torch.dtype | None:
    """KV-cache dtype the installed path wants (bf16 caches for ``native`` on a bf16 model: its
    attention kernel reads them at half the bytes); ``None``: the activations' dtype."""
    if device.type == "cpu" and dtype == torch.bfloat16 and getattr(lm, "decode_path", None) in ("native", "int8"):
        return torch.bfloat16
    return None


# ------------------------------------------------------------------------------------------ choice
def _key(lm: nn.Module, dtype: torch.dtype) -> str:
    c = lm.config
    shape = f"d{c.dim}-l{c.num_layers}-h{c.num_heads}-k{c.num_codebooks}x{c.cardinality}-{c.conditioning}"
    return f"{cpu_name()}|torch {torch.__version__}|{torch.get_num_threads()} threads|{dtype}|{shape}"


def _cache_file() -> Path:
    root = os.environ.get("FOLEYGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "foleygen")
    return Path(root) / "decode_paths.json"


def _read_choices() -> dict[str, Any]:
    try:
        data = json.loads(_cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _remember(key: str, record: dict[str, Any]) -> None:
    from foleygen.atomic import atomic_write_text

    try:
        choices = _read_choices()
        choices[key] = record
        path = _cache_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(choices, indent=1, sort_keys=True) + "\n")
    except OSError as err:  # a read-only home only costs a recalibration next time
        log.debug("decode path not cached: %s", err)


def calibrate(lm: nn.Module, paths: list[str], *, steps: int = 12, rounds: int = 3) -> dict[str, float]:
    """Median seconds per decoding step of ``lm`` itself with each of ``paths``: batch 1 with its
    guidance row, ``steps`` steps per timing, paths interleaved over ``rounds`` so that machine noise
    falls on all alike. Leaves the last path installed (callers install their choice)."""
    c = lm.config
    device = next(lm.parameters()).device
    frames = max(1, steps - c.num_codebooks + 1)
    visual = torch.zeros(1, max(1, round(frames * c.fps / c.frame_rate)), c.visual_dim, device=device)
    gen = torch.Generator(device=device)
    times: dict[str, list[float]] = {p: [] for p in paths}
    lm.decode_calibrating = True
    try:
        for r in range(rounds + 1):  # round 0 warms every path (packing, first calls)
            for p in paths:
                install(lm, p)
                gen.manual_seed(0)
                t0 = time.perf_counter()
                lm.generate(visual, frames, cfg_coef=3.0, generator=gen)
                if r:
                    times[p].append((time.perf_counter() - t0) / (frames + c.num_codebooks - 1))
    finally:
        lm.__dict__.pop("decode_calibrating", None)
    return {p: statistics.median(t) for p, t in times.items()}


def prepare(lm: nn.Module, path: str | None = None) -> str:
    """Install the decoding path for ``lm`` on the CPU (idempotent; cheap after the first call).

    ``path``: a name of :data:`PATHS`, ``"auto"``/``None`` for the measured choice (cached), or the
    environment's ``FOLEYGEN_DECODE_PATH``. Returns the installed path.
    """
    if getattr(lm, "decode_calibrating", False):
        return lm.decode_path
    dtype = lm.head.weight.dtype
    requested = path or os.environ.get(ENV) or "auto"
    if requested != "auto":
        allowed = candidates(dtype, untested=True, lossy=True)
        if requested not in allowed:
            raise ConfigError(
                f"decoding path {requested!r} does not apply to a {dtype} model here; available: {', '.join(allowed)}"
            )
        if getattr(lm, "decode_path", None) != requested:
            install(lm, requested)
        lm.__dict__.pop("decode_path_key", None)  # a later "auto" chooses afresh
        return requested
    key = _key(lm, dtype)
    if getattr(lm, "decode_path_key", None) == key:
        return lm.decode_path
    options = candidates(dtype)
    record = _read_choices().get(key)
    choice = record.get("path") if isinstance(record, dict) else None
    if choice not in options:
        if len(options) == 1:
            choice = options[0]
        else:
            with torch.inference_mode():
                timing = calibrate(lm, options)
            choice = min(timing, key=timing.__getitem__)
            _remember(key, {"path": choice, "seconds_per_step": timing})
            log.info("decoding path %s (%s)", choice, ", ".join(f"{p} {t * 1e3:.2f} ms" for p, t in timing.items()))
    install(lm, choice)
    lm.decode_path_key = key
    return choice
