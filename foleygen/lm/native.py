"""A native CPU kernel for decoding with bf16 weights: ``y = x @ W^T`` for a few float32 rows.

Why. A decoding step multiplies one row per sequence (and its guidance row) by every weight matrix, so
its cost is the time to stream the weights from memory. bf16 weights halve those bytes, but none of
PyTorch's CPU paths turns that into a faster step: on the dev machine (torch 2.13, one thread) oneDNN's
bf16 linear on a packed weight reads the weights at ~7-11 GB/s, and every bf16 matmul costs ~15 us even
for a tiny weight, while the small ops around the linears run slower in bf16 than in float32. This
kernel keeps the activations in float32 and reads the bf16 weights directly, widening each to float32 on
the fly (a bf16 number is the top half of a float32), at ~16-21 GB/s there: about twice the oneDNN
speed, so a bf16 step approaches half the bytes of a float32 step (``benchmarks/generate.py``).

How. The C source below is compiled on first use with the system's C compiler (``$CC``, else ``cc``)
into ``$FOLEYGEN_CACHE/native`` (default ``~/.cache/foleygen/native``), once per source, flags and
machine; a compiler that rejects ``-march=native`` gets a portable build. The library is loaded with
``ctypes`` (no PyTorch headers, so compiling takes well under a second). Without a compiler, or with
``FOLEYGEN_NATIVE=0``, :func:`available` is False and callers take PyTorch's paths, which compute the
same product up to rounding order.

The kernel runs on the calling thread only; :class:`foleygen.lm.transformer.Linear` therefore uses it
only while PyTorch runs few threads (:data:`MAX_THREADS`).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

#: The kernel is single-threaded: used only while ``torch.get_num_threads()`` is at most this, since
#: with many threads PyTorch's own (parallel) linear can read the weights faster than one core can. At
#: two threads the kernel still wins on the dev machine (d=512, 8 layers, bf16, 2 threads: 8.3 ms per
#: step with it against 10.2 ms with oneDNN's parallel bf16 linear); more threads were not measured.
MAX_THREADS = 2

_SOURCE = r"""
#include <stdint.h>
#include <string.h>

static inline float widen(uint16_t h) {  /* bf16 -> float32: the bf16 bits are the top half */
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* y[r, o] = sum_i x[r, i] * W[o, i] for rows r0 .. r0 + R - 1, reading each weight row once. One
   named accumulator per row (not an array) is what lets compilers vectorise the sums. */
static void rows_1(const uint16_t *W, const float *x, float *y, int64_t out, int64_t in, int64_t r0) {
    const float *x0 = x + r0 * in;
    for (int64_t o = 0; o < out; o++) {
        const uint16_t *w = W + o * in;
        float a0 = 0.f;
        for (int64_t i = 0; i < in; i++) a0 += widen(w[i]) * x0[i];
        y[r0 * out + o] = a0;
    }
}

static void rows_2(const uint16_t *W, const float *x, float *y, int64_t out, int64_t in, int64_t r0) {
    const float *x0 = x + r0 * in, *x1 = x0 + in;
    for (int64_t o = 0; o < out; o++) {
        const uint16_t *w = W + o * in;
        float a0 = 0.f, a1 = 0.f;
        for (int64_t i = 0; i < in; i++) {
            float wi = widen(w[i]);
            a0 += wi * x0[i];
            a1 += wi * x1[i];
        }
        y[r0 * out + o] = a0;
        y[(r0 + 1) * out + o] = a1;
    }
}

static void rows_4(const uint16_t *W, const float *x, float *y, int64_t out, int64_t in, int64_t r0) {
    const float *x0 = x + r0 * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in;
    for (int64_t o = 0; o < out; o++) {
        const uint16_t *w = W + o * in;
        float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
        for (int64_t i = 0; i < in; i++) {
            float wi = widen(w[i]);
            a0 += wi * x0[i];
            a1 += wi * x1[i];
            a2 += wi * x2[i];
            a3 += wi * x3[i];
        }
        y[r0 * out + o] = a0;
        y[(r0 + 1) * out + o] = a1;
        y[(r0 + 2) * out + o] = a2;
        y[(r0 + 3) * out + o] = a3;
    }
}

/* W bf16 [out, in], x float32 [rows, in], y float32 [rows, out]; all contiguous. */
void foleygen_linear_bf16(const uint16_t *W, const float *x, float *y,
                          int64_t out, int64_t in, int64_t rows) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) rows_4(W, x, y, out, in, r);
    for (; r + 2 <= rows; r += 2) rows_2(W, x, y, out, in, r);
    for (; r < rows; r++) rows_1(W, x, y, out, in, r);
}
"""

# Reassociating the sums lets the compiler vectorise them; the result differs from PyTorch's only in
# rounding order.
_FLAGS = [
    "-O3",
    "-fno-math-errno",
    "-fassociative-math",
    "-fno-signed-zeros",
    "-fno-trapping-math",
    "-ffp-contract=fast",
    "-shared",
    "-fPIC",
]
# Tried in order; 512-bit vectors where the CPU has them (compilers default to 256 on some x86 CPUs).
_ARCH_FLAGS = (["-march=native", "-mprefer-vector-width=512"], ["-march=native"], [])


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$FOLEYGEN_CACHE/native`` or ``~/.cache/foleygen/native``."""
    root = os.environ.get("FOLEYGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "foleygen")
    return Path(root) / "native"


def _compile(compiler: str, arch: list[str]) -> Path | None:
    """The shared library for this source, compiler and flags: reused if present, else built atomically."""
    flags = [*_FLAGS, *arch]
    key = hashlib.sha256("\0".join([_SOURCE, compiler, *flags, platform.machine(), platform.node()]).encode())
    target = cache_dir() / f"linear_bf16-{key.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src, lib = Path(tmp) / "kernel.c", Path(tmp) / "kernel.so"
        src.write_text(_SOURCE)
        done = subprocess.run([compiler, *flags, str(src), "-o", str(lib)], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log.debug("native kernel: %s %s failed: %s", compiler, " ".join(arch), done.stderr.strip()[:500])
            return None
        os.replace(lib, target)  # atomic: a concurrent process sees the whole library or none
    return target


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    if os.environ.get("FOLEYGEN_NATIVE", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not compiler:
        log.debug("native kernel: no C compiler found; PyTorch's paths are used")
        return None
    for arch in _ARCH_FLAGS:
        try:
            path = _compile(compiler, arch)
            if path is None:
                continue
            lib = ctypes.CDLL(str(path))
        except (OSError, subprocess.SubprocessError) as err:
            log.debug("native kernel: %s", err)
            continue
        fn = lib.foleygen_linear_bf16
        fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3
        fn.restype = None
        return lib
    return None


def available() -> bool:
    """Whether the kernel is compiled and loaded (compiles it on the first call)."""
    return _library() is not None


def usable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear_bf16` applies: float32 rows, a bf16 weight, both on the CPU, one thread."""
    return (
        x.dtype == torch.float32
        and weight.dtype == torch.bfloat16
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and torch.get_num_threads() <= MAX_THREADS
        and available()
    )


def linear_bf16(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x [rows, in] @ weight[out, in]^T + bias [out]`` -> ``[rows, out]``: float32 x, bf16 weight, float32 out.

    Accumulates in float32. Raises ``RuntimeError`` if the kernel is not :func:`available`.
    """
    if _library() is None:
        raise RuntimeError("the native bf16 kernel is not available (no C compiler, or FOLEYGEN_NATIVE=0)")
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"need x [rows, in] and weight [out, in], got {tuple(x.shape)} and {tuple(weight.shape)}")
    if x.dtype != torch.float32 or weight.dtype != torch.bfloat16:
        raise ValueError(f"need float32 x and bf16 weight, got {x.dtype} and {weight.dtype}")
    return linear_bf16_unchecked(x.contiguous(), weight.contiguous(), bias)


def linear_bf16_unchecked(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """:func:`linear_bf16` for callers that have checked :func:`usable`, shapes and contiguity (a decoding
    step calls it ~50 times, where each microsecond of checks is worth saving)."""
    rows, out = x.shape[0], weight.shape[0]
    y = torch.empty(rows, out, dtype=torch.float32)
    _library().foleygen_linear_bf16(weight.data_ptr(), x.data_ptr(), y.data_ptr(), out, x.shape[1], rows)
    if bias is not None:
        y += bias
    return y
