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

How. The C++ source ``foleygen/lm/csrc/decoding.cpp`` registers the torch ops
``torch.ops.foleygen_native.linear_half`` and ``attend_one``. It is built the way PyTorch builds JIT
extensions (:func:`torch.utils.cpp_extension.load`: the C++ compiler ``$CXX``, else ``c++``, driven by
``ninja``) on first use into ``$FOLEYGEN_CACHE/native`` (default ``~/.cache/foleygen/native``), once per
source, flags, torch version and machine; later processes load the built library directly. It includes
only the light ATen headers (no Python bindings), so the build takes ~10-20 s once, not minutes; a
compiler that rejects ``-march=native`` gets a portable build. If the build fails (no compiler, no
ninja), one log line says so, :func:`available` is False and callers take PyTorch's paths, which compute
the same product up to rounding order; ``FOLEYGEN_NATIVE=0`` turns the kernels off.

The kernel runs on the calling thread only; the ``native`` decoding path
(:mod:`foleygen.lm.cpu_decoding`) therefore uses it only while PyTorch runs few threads
(:data:`MAX_THREADS`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

#: The kernel is single-threaded: used only while ``torch.get_num_threads()`` is at most this, since
#: with many threads PyTorch's own (parallel) linear can read the weights faster than one core can. At
#: two threads the kernel still wins on the dev machine (d=512, 8 layers, bf16, 2 threads: 8.3 ms per
#: step with it against 10.2 ms with oneDNN's parallel bf16 linear); more threads were not measured.
MAX_THREADS = 2

#: The first torch release whose stable C++ ABI has what the kernels' source uses.
STABLE_ABI_TORCH = (2, 10)
SOURCE = Path(__file__).with_name("csrc") / "decoding.cpp"

# Reassociating the sums lets the compiler vectorise them; the result differs from PyTorch's only in
# rounding order.
_FLAGS = [
    "-DTORCH_TARGET_VERSION=0x020a000000000000",  # the stable ABI of torch 2.10: works on later releases too
    "-O3",
    "-fno-math-errno",
    "-fassociative-math",
    "-fno-signed-zeros",
    "-fno-trapping-math",
    "-ffp-contract=fast",
]
# Tried in order; 512-bit vectors where the CPU has them (compilers default to 256 on some x86 CPUs).
_ARCH_FLAGS = (["-march=native", "-mprefer-vector-width=512"], ["-march=native"], [])
# A build lock older than this was left by a killed process (cpp_extension would wait on it forever).
_STALE_LOCK_S = 600.0


def cache_dir() -> Path:
    """Where built kernels are kept: ``$FOLEYGEN_CACHE/native`` or ``~/.cache/foleygen/native``."""
    root = os.environ.get("FOLEYGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "foleygen")
    return Path(root) / "native"


@dataclass(frozen=True)
class _Kernels:
    """The loaded ops (their ``.default`` overloads: the cheapest way to call a torch op from Python)."""

    path: Path
    linear: Callable[..., torch.Tensor]
    attend: Callable[..., torch.Tensor]
    linear_int8: Callable[..., torch.Tensor]


def _torch_release() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def _compiler() -> str:
    """The C++ compiler cpp_extension will run (its rule: ``$CXX``, else ``c++``; ``cl`` on Windows),
    without importing it."""
    return os.environ.get("CXX") or ("cl" if os.name == "nt" else "c++")


def _ensure_ninja() -> None:
    """cpp_extension runs ``ninja`` from ``PATH``; the pip package puts it beside the interpreter, which is
    not on ``PATH`` when a virtual environment is used without activating it."""
    if shutil.which("ninja"):
        return
    try:
        import ninja  # the pip package (a foleygen dependency)
    except ImportError:
        return
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def _build(arch: list[str]) -> Path:
    """The op library for this source, compiler, flags, torch and machine: loaded from the cache if built
    there, else built by :func:`torch.utils.cpp_extension.load` (which loads it). Raises on failure."""
    flags = [*_FLAGS, *arch]
    compiler = _compiler()
    parts = [SOURCE.read_text(), compiler, *flags, torch.__version__, platform.machine(), platform.node()]
    name = f"foleygen_native_{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:16]}"
    directory = cache_dir() / name
    library, done = directory / f"{name}.so", directory / "built"
    if done.is_file() and library.is_file():  # skip cpp_extension's up-to-date check: ~0.3 s per process
        torch.ops.load_library(str(library))
        return library
    from torch.utils import cpp_extension  # ~0.6 s to import: only when building

    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / "lock"
    if lock.is_file() and time.time() - lock.stat().st_mtime > _STALE_LOCK_S:
        lock.unlink(missing_ok=True)
    _ensure_ninja()
    log.info("building the native decoding kernels (once per machine and torch version) in %s", directory)
    # cpp_extension's compiler-version banners (warnings and its logger) are muted: a failure raises, and
    # _library logs it in one line.
    quiet = logging.getLogger(cpp_extension.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            built = cpp_extension.load(
                name,
                sources=[str(SOURCE)],
                extra_cflags=flags,
                build_directory=str(directory),
                is_python_module=False,
                verbose=False,
            )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # no half-built directory is left behind
        raise
    finally:
        quiet.setLevel(level)
    done.write_text(f"{built}\n")  # written last: a library without it is rebuilt (or waited for) by ninja
    return Path(built)


def _reason(err: BaseException, compiler: str) -> str:
    """The line of a failed build that names the problem: the first line of the compiler's own output
    (not cpp_extension's and ninja's lines around it, nor the echoed command), else the message's last."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    noise = ("Error building extension", "[", "FAILED:", "ninja: build stopped", compiler)
    told = [line for line in lines if not line.startswith(noise)]
    return (told or lines or [type(err).__name__])[0][:300]


@lru_cache(maxsize=1)
def _library() -> _Kernels | None:
    if os.environ.get("FOLEYGEN_NATIVE", "1") == "0":
        return None
    if _torch_release() < STABLE_ABI_TORCH:
        log.warning("native decoding kernels unavailable (they need torch >= 2.10); decoding uses PyTorch's paths")
        return None
    compiler = _compiler()
    if not shutil.which(compiler):
        log.warning("native decoding kernels unavailable (no C++ compiler %r); decoding uses PyTorch's paths", compiler)
        return None
    reason = "no build attempted"
    for arch in _ARCH_FLAGS:
        try:
            path = _build(arch)
        except (RuntimeError, OSError, ImportError, ValueError, subprocess.SubprocessError) as err:  # cpp_extension's
            reason = _reason(err, compiler)
            log.debug("native kernels with %s: %s", arch or "portable flags", err)
            continue
        ops = torch.ops.foleygen_native
        return _Kernels(path, ops.linear_half.default, ops.attend_one.default, ops.linear_int8.default)
    log.warning("native decoding kernels unavailable (%s); decoding uses PyTorch's paths", reason)
    return None


def available() -> bool:
    """Whether the kernels are built and loaded (builds them on the first call)."""
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
        raise RuntimeError("the native linear kernel is not available (its build failed, or FOLEYGEN_NATIVE=0)")
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"need x [rows, in] and weight [out, in], got {tuple(x.shape)} and {tuple(weight.shape)}")
    if x.dtype != torch.float32 or weight.dtype not in HALF_DTYPES:
        raise ValueError(f"need float32 x and a bf16 or float16 weight, got {x.dtype} and {weight.dtype}")
    return linear_half_unchecked(x.contiguous(), weight.contiguous(), bias)


def linear_half_unchecked(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """:func:`linear_half` for callers that have checked :func:`usable`, shapes and contiguity (a decoding
    step calls it ~50 times, where each microsecond of checks is worth saving)."""
    return _library().linear(x, weight, bias)


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8 of ``weight [out, in]`` (any float dtype): ``q int8 [out, in]`` and
    ``scale float32 [out]`` with ``weight ~= scale[:, None] * q`` (round to nearest, |q| <= 127; an all-zero
    row gets scale 1). The error of each weight is at most ``scale / 2`` = its row's largest magnitude / 254."""
    w = weight.detach().float()
    top = w.abs().amax(dim=1)
    scale = torch.where(top > 0, top / 127.0, torch.ones_like(top))
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8).contiguous()
    return q, scale.contiguous()


def int8_usable(x: torch.Tensor) -> bool:
    """Whether :func:`linear_int8` applies to rows ``x``: float32 on the CPU, few threads, kernels built."""
    return (
        x.dtype == torch.float32 and x.device.type == "cpu" and torch.get_num_threads() <= MAX_THREADS and available()
    )


def linear_int8(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x [rows, in]`` (float32, contiguous) times the int8 weight ``scale[:, None] * q`` (from
    :func:`quantize_int8`) plus float32 ``bias [out]`` -> float32 ``[rows, out]``; callers check
    :func:`int8_usable`. Exact for the dequantised weight up to float32 rounding order."""
    return _library().linear_int8(x, q, scale, bias)


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
    return _library().attend(q, k, v)
