"""``foleygen.lm.transformer.Linear``: nn.Linear's numbers on every path, its own path for a decoding step."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from foleygen.lm.transformer import GEMV_MAX_ROWS, PACKED_BF16, Linear


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(2, 1, 32), (1, 32), (GEMV_MAX_ROWS, 32), (3, 5, 32), (2, 7, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_same_output_as_nn_linear(bias, shape, dtype):
    ours = Linear(32, 48, bias=bias).to(dtype)
    ref = nn.Linear(32, 48, bias=bias).to(dtype)
    ref.load_state_dict(ours.state_dict())  # same parameters, same state-dict keys
    x = torch.randn(shape).to(dtype)
    out = ours(x)
    assert out.shape == (*shape[:-1], 48) and out.dtype == dtype and out.is_contiguous()
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out, ref(x), atol=tol, rtol=tol)


def test_the_few_rows_path_is_taken_and_differentiable(monkeypatch):
    lin = Linear(16, 8)
    calls = []
    monkeypatch.setattr(nn.Linear, "forward", lambda self, x: calls.append(x.shape) or torch.zeros(1))
    x = torch.randn(2, 1, 16, requires_grad=True)
    y = lin(x)  # two rows: not nn.Linear's path
    assert calls == []
    y.sum().backward()
    torch.testing.assert_close(x.grad, lin.weight.sum(0).expand(2, 1, 16))
    lin(torch.randn(GEMV_MAX_ROWS + 1, 16))  # many rows: nn.Linear's path
    assert calls == [(GEMV_MAX_ROWS + 1, 16)]


@pytest.mark.skipif(not PACKED_BF16, reason="this CPU/build has no oneDNN bf16")
@pytest.mark.parametrize("shape", [(1, 32), (2, 1, 32), (GEMV_MAX_ROWS, 32), (3, 2, 32)])
def test_bf16_decoding_uses_a_packed_weight_that_follows_weight_changes(shape):
    ours = Linear(32, 48).bfloat16()
    x = torch.randn(shape).bfloat16()
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), F.linear(x, ours.weight, ours.bias), atol=2e-2, rtol=2e-2)
        assert ours._packed is not None  # the packed path ran
        packed = ours._packed[2]
        ours(x)
        assert ours._packed[2] is packed  # packed once, reused
        ours.weight.mul_(-1.0)  # in place (an optimiser step, load_state_dict): packed again
        torch.testing.assert_close(ours(x), F.linear(x, ours.weight, ours.bias), atol=2e-2, rtol=2e-2)
        assert ours._packed[2] is not packed
    # with autograd on and a trainable weight: nn.Linear's differentiable path
    y = ours(torch.randn(shape).bfloat16())
    assert y.requires_grad
    copied = copy.deepcopy(ours)  # a model that has decoded can still be copied and pickled
    torch.testing.assert_close(copied.weight, ours.weight)
    assert copied._packed is None and ours._packed is not None
    torch.save(ours, io.BytesIO())
    ours.float()
    assert ours._packed is None  # a dtype change drops the stale packed copy
