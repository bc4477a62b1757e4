"""Native CPU kernels for decoding: ``y = x @ W^T`` for a few float32 rows and bf16 or float16 weights, and
attention of one query over a KV cache.

Why. A decoding step multiplies one row per sequence (and its guidance row) by every weight matrix, so
its cost is the time to stream the weights from memory. bf16 weights halve those bytes, but none of
PyTorch's CPU paths turns that into a faster step: on the dev machine (torch 2.13, one thread) oneDNN's
bf16 linear on a packed weight reads the weights at ~7-11 GB/s, and every bf16 matmul costs ~15 us even
for a tiny weight, while the small ops around the linears run slower in bf16 than in float32. This
kernel keeps the activations in float32 and reads the bf16 weights directly, widening each to float32 on
the fly (a bf16 number is the top half of a float32), at ~16-21 GB/s there: about twice the oneDNN
speed, so a bf16 step approaches half the bytes of a float32 step (``benchmarks/generate.py``). float16
weights (``model.half()``) take the same kernel with their own exact widening; PyTorch's path rounds the
rows to float16 instead (the demo LM in float16, one thread, AVX2-only EPYC: 1.89 s against 2.03 s for a
4 s clip).
The second kernel attends one query per row and head over cached keys and values, float32 or bf16
(:func:`attend_one`): cheaper than PyTorch's fused kernel for one query, and with bf16 caches it
reads half the bytes, which matters late in long clips, where attention outweighs the linears.

How. The C source below is compiled on first use with the system's C compiler (``$CC``, else ``cc``)
into ``$FOLEYGEN_CACHE/native`` (default ``~/.cache/foleygen/native``), once per source, flags and
machine; a compiler that rejects ``-march=native`` gets a portable build. The library is loaded with
``ctypes`` (no PyTorch headers, so compiling takes well under a second). Without a compiler, or with
``FOLEYGEN_NATIVE=0``, :func:`available` is False and callers take PyTorch's paths, which compute the
same product up to rounding order.

The kernel runs on the calling thread only; the ``native`` decoding path
(:mod:`foleygen.lm.cpu_decoding`) therefore uses it only while PyTorch runs few threads
(:data:`MAX_THREADS`).
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
#include <math.h>
#include <string.h>

static inline float widen(uint16_t h) {  /* bf16 -> float32: the bf16 bits are the top half */
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* float16 -> float32, exactly. Normal numbers: the exponent and mantissa bits move into place and
   the exponent is rebiased by 127 - 15; infinities and NaNs get the all-ones exponent; zeros and
   subnormals are their mantissa times 2^-24 (no float subnormals, so flushing them cannot bite). Plain
   integer and float operations and selects, which the loops below vectorise on any compiler, unlike
   _Float16, whose availability and conversions vary by compiler and target. */
static inline float widen_f16(uint16_t h) {
    uint32_t em = h & 0x7fffu;
    uint32_t u = em >= 0x7c00u ? (em << 13) | 0x7f800000u : (em << 13) + (112u << 23);
    float f;
    memcpy(&f, &u, 4);
    if (em < 0x400u) f = (float)em * 0x1p-24f;
    memcpy(&u, &f, 4);
    u |= (uint32_t)(h & 0x8000u) << 16;
    memcpy(&f, &u, 4);
    return f;
}

/* y[r, o] = sum_i x[r, i] * W[o, i] for rows r0 .. r0 + R - 1, reading each weight row once; W holds
   16-bit numbers that WIDEN turns into float32. One named accumulator per row (not an array) is what
   lets compilers vectorise the sums. */
#define ROWS(SUFFIX, WIDEN)                                                                      \
static void rows_1##SUFFIX(const uint16_t *W, const float *x, float *y, int64_t out, int64_t in,  \
                           int64_t r0) {                                                          \
    const float *x0 = x + r0 * in;                                                                \
    for (int64_t o = 0; o < out; o++) {                                                           \
        const uint16_t *w = W + o * in;                                                           \
        float a0 = 0.f;                                                                           \
        for (int64_t i = 0; i < in; i++) a0 += WIDEN(w[i]) * x0[i];                               \
        y[r0 * out + o] = a0;                                                                     \
    }                                                                                             \
}                                                                                                 \
static void rows_2##SUFFIX(const uint16_t *W, const float *x, float *y, int64_t out, int64_t in,  \
                           int64_t r0) {                                                          \
    const float *x0 = x + r0 * in, *x1 = x0 + in;                                                 \
    for (int64_t o = 0; o < out; o++) {                                                           \
        const uint16_t *w = W + o * in;                                                           \
        float a0 = 0.f, a1 = 0.f;                                                                 \
        for (int64_t i = 0; i < in; i++) {                                                        \
            float wi = WIDEN(w[i]);                                                               \
            a0 += wi * x0[i];                                                                     \
            a1 += wi * x1[i];                                                                     \
        }                                                                                         \
        y[r0 * out + o] = a0;                                                                     \
        y[(r0 + 1) * out + o] = a1;                                                               \
    }                                                                                             \
}                                                                                                 \
static void rows_4##SUFFIX(const uint16_t *W, const float *x, float *y, int64_t out, int64_t in,  \
                           int64_t r0) {                                                          \
    const float *x0 = x + r0 * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in;                   \
    for (int64_t o = 0; o < out; o++) {                                                           \
        const uint16_t *w = W + o * in;                                                           \
        float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;                                             \
        for (int64_t i = 0; i < in; i++) {                                                        \
            float wi = WIDEN(w[i]);                                                               \
            a0 += wi * x0[i];                                                                     \
            a1 += wi * x1[i];                                                                     \
            a2 += wi * x2[i];                                                                     \
            a3 += wi * x3[i];                                                                     \
        }                                                                                         \
        y[r0 * out + o] = a0;                                                                     \
        y[(r0 + 1) * out + o] = a1;                                                               \
        y[(r0 + 2) * out + o] = a2;                                                               \
        y[(r0 + 3) * out + o] = a3;                                                               \
    }                                                                                             \
}
ROWS(_bf16, widen)
ROWS(_f16, widen_f16)

/* Attention of one query per (batch row, head) over S keys: out[bh] = softmax(scale * K[bh] q[bh]) V[bh].
   q, out float32 [BH, hd] contiguous; K, V [BH, S, hd] with rows of hd contiguous, (bh, s) strides in
   elements; float32 or bf16 (kv_bf16). scores: caller's float32 buffer of S. */
#define ATTEND(NAME, T, LOAD)                                                                   \
static void NAME(const float *q, const T *K, const T *V, float *out, int64_t BH, int64_t S,     \
                 int64_t hd, int64_t k_bh, int64_t k_s, int64_t v_bh, int64_t v_s,              \
                 float scale, float *scores) {                                                  \
    for (int64_t bh = 0; bh < BH; bh++) {                                                       \
        const float *qb = q + bh * hd;                                                          \
        const T *kb = K + bh * k_bh, *vb = V + bh * v_bh;                                       \
        float top = -1e30f;                                                                     \
        for (int64_t s = 0; s < S; s++) {                                                       \
            const T *kr = kb + s * k_s;                                                         \
            float d = 0.f;                                                                      \
            for (int64_t i = 0; i < hd; i++) d += qb[i] * LOAD(kr[i]);                          \
            d *= scale;                                                                         \
            scores[s] = d;                                                                      \
            if (d > top) top = d;                                                               \
        }                                                                                       \
        float total = 0.f;                                                                      \
        for (int64_t s = 0; s < S; s++) { scores[s] = expf(scores[s] - top); total += scores[s]; } \
        float *ob = out + bh * hd;                                                              \
        for (int64_t i = 0; i < hd; i++) ob[i] = 0.f;                                           \
        for (int64_t s = 0; s < S; s++) {                                                       \
            const T *vr = vb + s * v_s;                                                         \
            float p = scores[s] / total;                                                        \
            for (int64_t i = 0; i < hd; i++) ob[i] += p * LOAD(vr[i]);                          \
        }                                                                                       \
    }                                                                                           \
}
#define SAME(x) (x)
ATTEND(attend_f32, float, SAME)
ATTEND(attend_bf16, uint16_t, widen)

void foleygen_attend_one(const float *q, const void *K, const void *V, float *out, int64_t BH,
                         int64_t S, int64_t hd, int64_t k_bh, int64_t k_s, int64_t v_bh, int64_t v_s,
                         float scale, int kv_bf16, float *scores) {
    if (kv_bf16)
        attend_bf16(q, (const uint16_t *)K, (const uint16_t *)V, out, BH, S, hd, k_bh, k_s, v_bh, v_s, scale, scores);
    else
        attend_f32(q, (const float *)K, (const float *)V, out, BH, S, hd, k_bh, k_s, v_bh, v_s, scale, scores);
}

/* W bf16 (w_f16 = 0) or float16 (w_f16 = 1) [out, in], x float32 [rows, in], y float32 [rows, out];
   all contiguous. */
void foleygen_linear_half(const uint16_t *W, const float *x, float *y,
                          int64_t out, int64_t in, int64_t rows, int w_f16) {
    int64_t r = 0;
    if (w_f16) {
        for (; r + 4 <= rows; r += 4) rows_4_f16(W, x, y, out, in, r);
        for (; r + 2 <= rows; r += 2) rows_2_f16(W, x, y, out, in, r);
        for (; r < rows; r++) rows_1_f16(W, x, y, out, in, r);
    } else {
        for (; r + 4 <= rows; r += 4) rows_4_bf16(W, x, y, out, in, r);
        for (; r + 2 <= rows; r += 2) rows_2_bf16(W, x, y, out, in, r);
        for (; r < rows; r++) rows_1_bf16(W, x, y, out, in, r);
    }
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
    target = cache_dir() / f"kernels-{key.hexdigest()[:16]}.so"  # both kernels, one library
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
        fn = lib.foleygen_linear_half
        fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3 + [ctypes.c_int]
        fn.restype = None
        fn = lib.foleygen_attend_one
        fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 7 + [ctypes.c_float, ctypes.c_int, ctypes.c_void_p]
        fn.restype = None
        return lib
    return None


def available() -> bool:
    """Whether the kernel is compiled and loaded (compiles it on the first call)."""
    return _library() is not None


HALF_DTYPES = (torch.bfloat16, torch.float16)


def usable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear_half` applies: float32 rows, a bf16 or float16 weight, both on the CPU, few
    threads."""
    return (
        x.dtype == torch.float32
        and weight.dtype in HALF_DTYPES
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and torch.get_num_threads() <= MAX_THREADS
        and available()
    )


def linear_half(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x [rows, in] @ weight[out, in]^T + bias [out]`` -> ``[rows, out]``: float32 x, bf16 or float16
    weight, float32 out.

    Each weight is widened to float32 exactly and the sums accumulate in float32, so the result is that
    of the float32 product with the widened weight, up to rounding order. Raises ``RuntimeError`` if the
    kernel is not :func:`available`.
    """
    if _library() is None:
        raise RuntimeError("the native linear kernel is not available (no C compiler, or FOLEYGEN_NATIVE=0)")
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"need x [rows, in] and weight [out, in], got {tuple(x.shape)} and {tuple(weight.shape)}")
    if x.dtype != torch.float32 or weight.dtype not in HALF_DTYPES:
        raise ValueError(f"need float32 x and a bf16 or float16 weight, got {x.dtype} and {weight.dtype}")
    return linear_half_unchecked(x.contiguous(), weight.contiguous(), bias)


def linear_half_unchecked(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """:func:`linear_half` for callers that have checked :func:`usable`, shapes and contiguity (a decoding
    step calls it ~50 times, where each microsecond of checks is worth saving)."""
    rows, out = x.shape[0], weight.shape[0]
    y = torch.empty(rows, out, dtype=torch.float32)
    _library().foleygen_linear_half(
        weight.data_ptr(), x.data_ptr(), y.data_ptr(), out, x.shape[1], rows, int(weight.dtype == torch.float16)
    )
    if bias is not None:
        y += bias
    return y


def attention_usable(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether :func:`attend_one` applies: one float32 query per row and head, float32 or bf16 keys and
    values (``[B, H, S, hd]`` with contiguous rows and heads at a fixed stride, as a KV cache's prefix),
    on the CPU, few threads."""
    return (
        q.dtype == torch.float32
        and q.dim() == 4
        and q.shape[2] == 1
        and k.dtype in (torch.float32, torch.bfloat16)
        and v.dtype == k.dtype
        and q.device.type == "cpu"
        and k.device.type == "cpu"
        and v.device.type == "cpu"
        and k.shape[:2] == q.shape[:2]
        and k.shape == v.shape
        and k.shape[-1] == q.shape[-1]
        and k.stride(-1) == 1
        and v.stride(-1) == 1
        and k.stride(0) == k.shape[1] * k.stride(1)
        and v.stride(0) == v.shape[1] * v.stride(1)
        and torch.get_num_threads() <= MAX_THREADS
        and available()
    )


def attend_one(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention of one query: ``q [B, H, 1, hd]`` over ``k, v [B, H, S, hd]`` -> float32
    ``[B, H, 1, hd]`` (no mask: the caller passes the keys the query may see).

    For a decoding step, where PyTorch's fused CPU kernel costs ~1.3-2x this loop (dev machine, one
    thread, S = 25-1250) and bf16 keys and values would make it slower still; here bf16 caches halve
    the bytes read. Callers check :func:`attention_usable` first.
    """
    B, H, _, hd = q.shape
    S = k.shape[2]
    q = q.contiguous()
    out = torch.empty(B, H, 1, hd, dtype=torch.float32)
    scores = torch.empty(max(S, 1), dtype=torch.float32)
    _library().foleygen_attend_one(
        q.data_ptr(),
        k.data_ptr(),
        v.data_ptr(),
        out.data_ptr(),
        B * H,
        S,
        hd,
        k.stride(1),
        k.stride(2),
        v.stride(1),
        v.stride(2),
        hd**-0.5,
        int(k.dtype == torch.bfloat16),
        scores.data_ptr(),
    )
    return out
