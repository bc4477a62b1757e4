"""``foleygen.lm.native``: the bf16/float16-weight kernel for decoding, and the ``native`` decoding path through it."""

import logging
import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from foleygen.lm import native
from foleygen.lm.cpu_decoding import MAX_ROWS as GEMV_MAX_ROWS
from foleygen.lm.cpu_decoding import DecodingLinear

HAS_COMPILER = bool(shutil.which(native._compiler())) and native._torch_release() >= native.STABLE_ABI_TORCH
ENABLED = os.environ.get("FOLEYGEN_NATIVE", "1") != "0"


def test_the_kernel_builds_where_a_compiler_is():
    assert native.available() == (HAS_COMPILER and ENABLED)
    from torch.utils import cpp_extension

    assert native._compiler() == cpp_extension.get_cxx_compiler()  # the compiler checked is the one it runs


@pytest.mark.skipif(not (HAS_COMPILER and ENABLED), reason="no C compiler, or FOLEYGEN_NATIVE=0")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 7, 8])
@pytest.mark.parametrize("shape", [(48, 32), (33, 17), (1, 1), (96, 130)])
def test_kernel_matches_a_float32_matmul(rows, shape, dtype):
    g = torch.Generator().manual_seed(rows)
    weight = torch.randn(shape, generator=g).to(dtype)
    bias = torch.randn(shape[0], generator=g).to(dtype)
    x = torch.randn(rows, shape[1], generator=g)
    ref = x.double() @ weight.double().T  # the 16-bit weights are exact in float64
    torch.testing.assert_close(native.linear_half(x, weight).double(), ref, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(native.linear_half(x, weight, bias).double(), ref + bias.double(), atol=1e-4, rtol=1e-5)
    # non-contiguous inputs are made contiguous first
    strided = native.linear_half(x.T.contiguous().T, weight.T.contiguous().T)
    torch.testing.assert_close(strided, native.linear_half(x, weight))


@pytest.mark.skipif(not (HAS_COMPILER and ENABLED), reason="no C compiler, or FOLEYGEN_NATIVE=0")
def test_float16_weights_widen_exactly_including_subnormals_and_infinities():
    bits = torch.arange(0, 1 << 16, dtype=torch.int32)
    every = bits.to(torch.int16).view(torch.float16)  # all 65536 float16 numbers, NaNs included
    finite = every[torch.isfinite(every)]
    eye = torch.eye(1)
    # one row times a [N, 1] weight reads each weight once: y[0, n] = 1.0 * w[n]
    got = native.linear_half(eye, finite[:, None])[0]
    assert torch.equal(got, finite.float())  # exact, subnormals and signed zeros' values included
    inf = torch.tensor([float("inf"), float("-inf")], dtype=torch.float16)
    assert torch.equal(native.linear_half(eye, inf[:, None])[0], inf.float())
    nan = every[torch.isnan(every)][:8]
    assert torch.isnan(native.linear_half(eye, nan[:, None])[0]).all()
    subnormal = finite[(finite != 0) & (finite.abs() < 2**-14)]
    assert subnormal.numel() == 2 * 1023
    if torch.set_flush_denormal(True):  # the CPU flushes float subnormals now: float16's must survive
        try:
            assert torch.equal(native.linear_half(eye, subnormal[:, None])[0], subnormal.float())
        finally:
            torch.set_flush_denormal(False)


def test_kernel_rejects_what_it_cannot_compute():
    if not native.available():
        with pytest.raises(RuntimeError, match="not available"):
            native.linear_half(torch.randn(2, 4), torch.randn(3, 4).bfloat16())
        return
    with pytest.raises(ValueError, match="float32 x and a bf16 or float16 weight"):
        native.linear_half(torch.randn(2, 4), torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"x \[rows, in\]"):
        native.linear_half(torch.randn(2, 5), torch.randn(3, 4).bfloat16())


def test_disabled_by_environment(monkeypatch):
    native._library.cache_clear()
    monkeypatch.setenv("FOLEYGEN_NATIVE", "0")
    try:
        assert not native.available()
    finally:
        native._library.cache_clear()


def test_build_is_cached_and_loaded_as_torch_ops():
    if not (HAS_COMPILER and ENABLED):
        pytest.skip("no C++ compiler")
    assert native.available()
    built = native._library().path
    assert built.parent.parent == native.cache_dir() and (built.parent / "built").is_file()
    stamp = built.stat().st_mtime_ns
    native._library.cache_clear()
    try:
        assert native.available() and native._library().path == built  # loaded again, not rebuilt
        assert built.stat().st_mtime_ns == stamp
    finally:
        native._library.cache_clear()
    # the kernels are registered torch ops, callable as such
    x, w = torch.randn(3, 8), torch.randn(5, 8).bfloat16()
    torch.testing.assert_close(torch.ops.foleygen_native.linear_half(x, w, None), native.linear_half(x, w))


@pytest.mark.parametrize("compiler", ["false", "/nonexistent/c++"])  # one that always fails; none at all
def test_a_failing_build_leaves_pytorchs_paths_with_one_log_line(compiler, monkeypatch, tmp_path, caplog):
    native._library.cache_clear()
    monkeypatch.setenv("FOLEYGEN_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", compiler)
    try:
        with caplog.at_level(logging.WARNING):
            assert not native.available()
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warned) == 1 and "native decoding kernels unavailable" in warned[0].getMessage()
        assert compiler in warned[0].getMessage() or "false" in warned[0].getMessage()
        lin = native_linear(16, 8).bfloat16()
        x = torch.randn(2, 16)
        with torch.inference_mode():
            torch.testing.assert_close(lin(x), F.linear(x.bfloat16(), lin.weight, lin.bias).float())
        assert not any(tmp_path.rglob("*.so")) and not any((tmp_path / "native").glob("*/*"))  # nothing half-built
        from foleygen.lm.cpu_decoding import candidates

        assert "native" not in candidates(torch.bfloat16)  # decoding chooses among the other paths
    finally:
        native._library.cache_clear()


def native_linear(*args, **kwargs):
    lin = torch.nn.Linear(*args, **kwargs)
    lin.__class__ = DecodingLinear  # what cpu_decoding.install does
    lin.path = "native"
    return lin


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rows", [1, 2, GEMV_MAX_ROWS, GEMV_MAX_ROWS + 3])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_float32_rows_with_16_bit_weights(rows, bias, dtype, one_thread, monkeypatch):
    lin = native_linear(32, 40, bias=bias).to(dtype)
    x = torch.randn(rows, 1, 32)
    calls = []
    kernel = native.linear_half_unchecked
    monkeypatch.setattr(native, "linear_half_unchecked", lambda *a: calls.append(a[0].shape) or kernel(*a))
    with torch.inference_mode():
        out = lin(x)
    assert len(calls) == (rows <= GEMV_MAX_ROWS and native.available())  # the kernel takes a decoding step
    assert out.dtype == torch.float32 and out.shape == (rows, 1, 40)
    ref = F.linear(x.double(), lin.weight.double(), None if lin.bias is None else lin.bias.double())
    # many rows are rounded to the weight dtype first (nn.Linear's path); a few go through the kernel unrounded
    tol = 5e-2 if rows > GEMV_MAX_ROWS or not native.usable(x, lin.weight) else 1e-4
    torch.testing.assert_close(out.double(), ref, atol=tol, rtol=tol)


def test_kernel_only_on_one_thread(monkeypatch):
    monkeypatch.setattr(native, "available", lambda: True)
    x, w = torch.randn(2, 8), torch.randn(4, 8).bfloat16()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(native.MAX_THREADS)
        assert native.usable(x, w)
        torch.set_num_threads(native.MAX_THREADS + 1)
        assert not native.usable(x, w)  # PyTorch's parallel linear then
    finally:
        torch.set_num_threads(threads)
    assert not native.usable(x.bfloat16(), w) and not native.usable(x, w.float())


@pytest.mark.skipif(not (HAS_COMPILER and ENABLED), reason="no C compiler, or FOLEYGEN_NATIVE=0")
@pytest.mark.parametrize("kv_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("S", [1, 7, 64, 300])
def test_attend_one_matches_sdpa_over_a_cache_prefix(kv_dtype, S, one_thread):
    g = torch.Generator().manual_seed(S)
    cache_k = torch.randn(2, 3, 320, 16, generator=g).to(kv_dtype)  # [B, H, L_max, hd]
    cache_v = torch.randn(2, 3, 320, 16, generator=g).to(kv_dtype)
    q = torch.randn(2, 3, 1, 16, generator=g)
    k, v = cache_k[:, :, :S], cache_v[:, :, :S]  # what a decoding step attends to: a strided prefix
    assert native.attention_usable(q, k, v)
    ref = F.scaled_dot_product_attention(q, k.float(), v.float())
    torch.testing.assert_close(native.attend_one(q, k, v), ref, atol=1e-5, rtol=1e-4)
    # through the model's attention function as well
    from foleygen.lm.transformer import attention

    torch.testing.assert_close(attention(q, k, v), ref, atol=1e-5, rtol=1e-4)


def test_attention_kernel_declines_what_it_does_not_do(one_thread):
    q, k = torch.randn(2, 2, 1, 8), torch.randn(2, 2, 5, 8)
    assert native.attention_usable(q, k, k) == native.available()
    assert not native.attention_usable(torch.randn(2, 2, 3, 8), k, k)  # several queries
    assert not native.attention_usable(q.bfloat16(), k, k)  # bf16 queries
    assert not native.attention_usable(q, k.half(), k.half())  # fp16 keys
    assert not native.attention_usable(
        q, k.transpose(0, 1).contiguous().transpose(0, 1), k
    )  # heads not at a fixed stride
    assert not native.attention_usable(q, k, k.bfloat16())  # keys and values differ


@pytest.mark.skipif(not (HAS_COMPILER and ENABLED), reason="no C++ compiler, or FOLEYGEN_NATIVE=0")
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_kernel_is_the_product_with_the_dequantised_weight(rows, dtype):
    g = torch.Generator().manual_seed(rows)
    weight = torch.randn(37, 70, generator=g).to(dtype)
    weight[3] = 0  # an all-zero row: scale 1, no division by zero
    bias = torch.randn(37, generator=g)
    q, scale = native.quantize_int8(weight)
    assert q.dtype == torch.int8 and q.abs().max() <= 127 and scale.shape == (37,)
    dequantised = scale.double()[:, None] * q.double()
    # round to nearest: every weight within half a step of its row's scale
    assert ((dequantised - weight.double()).abs() <= scale.double()[:, None] / 2 + 1e-7).all()
    x = torch.randn(rows, 70, generator=g)
    ref = x.double() @ dequantised.T + bias.double()
    torch.testing.assert_close(native.linear_int8(x, q, scale, bias).double(), ref, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(
        native.linear_int8(x, q, scale, None).double(), ref - bias.double(), atol=1e-4, rtol=1e-5
    )
