"""``foleygen.lm.cpu_decoding``: plain modules in the model, a decoding path swapped in and chosen by measurement."""

import copy
import io
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from foleygen.errors import ConfigError
from foleygen.lm import AudioLM, LMConfig, cpu_decoding, native
from foleygen.lm.cpu_decoding import MAX_ROWS, DecodingLinear, candidates, install, prepare, uninstall
from foleygen.utils import native_bf16


def decoding_linear(path, dtype, bias=True):
    lin = nn.Linear(32, 48, bias=bias).to(dtype)
    ref = copy.deepcopy(lin)
    lin.__class__ = DecodingLinear
    lin.path = path
    return lin, ref


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(2, 1, 32), (1, 32), (MAX_ROWS, 32), (3, 5, 32), (2, 7, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_path_gives_nn_linears_numbers(bias, shape, dtype):
    x = torch.randn(shape)
    for path in candidates(dtype):
        ours, ref = decoding_linear(path, dtype, bias)
        with torch.inference_mode():
            out = ours(x.to(dtype))  # the activations in the weights' dtype
            assert out.shape == (*shape[:-1], 48) and out.dtype == dtype and out.is_contiguous()
            tol = 1e-5 if dtype == torch.float32 else 2e-2
            torch.testing.assert_close(out, ref(x.to(dtype)), atol=tol, rtol=tol)
            if dtype != torch.float32:  # float32 rows through half weights: float32 out (CPU decoding)
                wide = ours(x)
                assert wide.dtype == torch.float32
                torch.testing.assert_close(
                    wide, F.linear(x, ref.weight.float(), ref.bias.float() if bias else None), atol=5e-2, rtol=5e-2
                )


def test_autograd_and_many_rows_take_pytorchs_path(monkeypatch):
    lin, _ = decoding_linear("gemv", torch.float32)
    calls = []
    real = F.linear
    monkeypatch.setattr(F, "linear", lambda *a: calls.append(a[0].shape) or real(*a))
    x = torch.randn(2, 1, 32, requires_grad=True)
    y = lin(x)  # autograd on: PyTorch's differentiable path
    y.sum().backward()
    torch.testing.assert_close(x.grad, lin.weight.sum(0).expand(2, 1, 32))
    with torch.inference_mode():
        lin(torch.randn(2, 32))  # two rows without autograd: gemv, not F.linear
        assert len(calls) == 1
        lin(torch.randn(MAX_ROWS + 1, 32))
        assert calls[-1] == (MAX_ROWS + 1, 32)


@pytest.mark.skipif(not native_bf16(torch.device("cpu")), reason="this CPU/build has no oneDNN bf16")
@pytest.mark.parametrize("shape", [(1, 32), (2, 1, 32), (MAX_ROWS, 32), (3, 2, 32)])
def test_onednn_path_packs_once_and_follows_weight_changes(shape):
    ours, _ = decoding_linear("onednn", torch.bfloat16)
    x = torch.randn(shape).bfloat16()
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), F.linear(x, ours.weight, ours.bias), atol=2e-2, rtol=2e-2)
        packed = ours._packed[2]
        ours(x)
        assert ours._packed[2] is packed  # packed once, reused
        ours.weight.mul_(-1.0)  # in place (an optimiser step, load_state_dict): packed again
        torch.testing.assert_close(ours(x), F.linear(x, ours.weight, ours.bias), atol=2e-2, rtol=2e-2)
        assert ours._packed[2] is not packed
    copied = copy.deepcopy(ours)  # a model that has decoded can still be copied and pickled
    assert copied._packed is None and ours._packed is not None
    torch.save(ours, io.BytesIO())
    ours.float()
    assert ours._packed is None  # a dtype change drops the stale packed copy


def tiny_lm(seed=0):
    torch.manual_seed(seed)
    cfg = LMConfig(
        dim=32, num_layers=2, num_heads=4, num_codebooks=2, cardinality=16, frame_rate=50.0, fps=25.0, visual_dim=8
    )
    return AudioLM(cfg).eval()


def test_the_model_is_plain_until_it_decodes_and_install_copies_nothing():
    lm = tiny_lm()
    assert {type(m) for m in lm.modules()} & {DecodingLinear, cpu_decoding.DecodingLayerNorm} == set()
    keys, params = list(lm.state_dict()), [p for p in lm.parameters()]
    install(lm, "gemv")
    assert type(lm.head) is DecodingLinear and lm.decode_path == "gemv"
    assert list(lm.state_dict()) == keys and all(a is b for a, b in zip(lm.parameters(), params, strict=True))
    uninstall(lm)
    assert type(lm.head) is nn.Linear and not hasattr(lm, "decode_path")


def test_codes_agree_across_paths():
    visual = torch.randn(1, 5, 8)
    for dtype in (torch.float32, torch.bfloat16):
        lm = tiny_lm().to(dtype)
        out = {}
        for path in candidates(dtype):
            install(lm, path)
            with torch.inference_mode():
                codes = lm.generate(visual.to(dtype), 10, temperature=0.0, cfg_coef=2.0)
            out[path] = codes
        ref_codes = out["torch"]
        for path, codes in out.items():
            # greedy decoding on every path picks (bf16 near-ties aside) the same codes
            assert (codes == ref_codes).float().mean() >= (1.0 if dtype == torch.float32 else 0.9), (dtype, path)


def test_prepare_measures_once_caches_the_choice_and_obeys_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("FOLEYGEN_CACHE", str(tmp_path))
    monkeypatch.delenv(cpu_decoding.ENV, raising=False)
    timed = []
    real = cpu_decoding.calibrate

    def spy(lm, paths, **kw):
        timed.append(list(paths))
        return real(lm, paths, steps=4, rounds=1)

    monkeypatch.setattr(cpu_decoding, "calibrate", spy)
    lm = tiny_lm()
    with torch.inference_mode():
        lm.generate(torch.randn(1, 5, 8), 6)  # generate on the CPU prepares the model
    assert timed == [candidates(torch.float32)]
    record = json.loads((tmp_path / "decode_paths.json").read_text())
    ((key, entry),) = record.items()
    assert entry["path"] == lm.decode_path and set(entry["seconds_per_step"]) == set(timed[0])
    assert cpu_decoding.cpu_name() in key and torch.__version__ in key
    assert entry["seconds_per_step"][lm.decode_path] == min(entry["seconds_per_step"].values())  # the fastest
    other = tiny_lm(seed=1)  # same shape, same machine: the cached choice, no new measurement
    assert prepare(other) == lm.decode_path and len(timed) == 1
    monkeypatch.setenv(cpu_decoding.ENV, "torch")
    assert prepare(other) == "torch" and other.decode_path == "torch"
    monkeypatch.delenv(cpu_decoding.ENV)
    assert prepare(other, "gemv") == "gemv"
    with pytest.raises(ConfigError, match="onednn"):
        prepare(other, "onednn")  # a float32 model has no oneDNN bf16 path
    with pytest.raises(ConfigError, match="unknown decoding path"):
        install(other, "fastest")


@pytest.mark.skipif(not native_bf16(torch.device("cpu")), reason="this CPU/build has no oneDNN bf16")
def test_private_onednn_ops_are_offered_only_on_tested_torch_releases(monkeypatch):
    assert "onednn" in candidates(torch.bfloat16)
    monkeypatch.setattr(cpu_decoding, "_torch_release", lambda: (2, 99))
    assert "onednn" not in candidates(torch.bfloat16)  # never chosen automatically on an untested torch
    lm = tiny_lm().bfloat16()
    assert prepare(lm, "onednn") == "onednn"  # but a user may still ask for it by name


@pytest.mark.skipif(not native.available(), reason="native kernels not built here")
def test_int8_path_is_offered_by_name_only_and_stays_close_to_the_model(monkeypatch):
    assert all("int8" not in candidates(d) for d in (torch.float32, torch.bfloat16))  # never the measured choice
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # the kernels run on few threads
    monkeypatch.setenv(cpu_decoding.ENV, "int8")  # how a user selects it: generate() prepares by it
    lm = tiny_lm()
    keys = list(lm.state_dict())
    x = torch.randn(2, 1, lm.config.dim)
    with torch.inference_mode():
        ref = lm.head(x)
        assert prepare(lm) == "int8" and lm.decode_path == "int8"
        got = lm.head(x)
        assert list(lm.state_dict()) == keys  # the int8 copy is not a parameter or buffer
        step = (lm.head.weight.abs().amax(dim=1) / 254).sum()  # the largest error of one output's weights
        assert 0 < (got - ref).abs().max() <= step * x.abs().max() + 1e-5
        codes = lm.generate(torch.randn(1, 5, 8), 10, temperature=0.0, cfg_coef=2.0)
    assert codes.shape == (1, lm.config.num_codebooks, 10) and lm.decode_path == "int8"
    assert lm.head.bias is None
    with torch.no_grad():  # a changed weight (an in-place update bumps its version) is quantised afresh
        lm.head.weight.mul_(2)
    with torch.inference_mode():  # twice the weight, twice the output
        torch.testing.assert_close(lm.head(x), 2 * got, atol=1e-4, rtol=1e-4)
