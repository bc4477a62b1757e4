"""bf16 decoding on the CPU: bf16 weights, float32 activations, keys and values (``decoding_dtype``)."""

import torch
import torch.nn.functional as F

from foleygen.lm import AudioLM, LMConfig, cpu_decoding
from foleygen.lm.cpu_decoding import DecodingLayerNorm as LayerNorm
from foleygen.lm.transformer import Transformer, attention, decoding_dtype


def test_decoding_dtype():
    cpu = torch.device("cpu")
    assert decoding_dtype(torch.bfloat16, cpu) == torch.float32
    assert decoding_dtype(torch.float16, cpu) == torch.float32
    assert decoding_dtype(torch.float32, cpu) == torch.float32
    assert decoding_dtype(torch.bfloat16, torch.device("cuda")) == torch.bfloat16


def test_mixed_dtypes_attend_in_the_keys_dtype():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 1, 16, generator=g).bfloat16()
    k, v = torch.randn(2, 3, 37, 16, generator=g), torch.randn(2, 3, 37, 16, generator=g)
    mask = torch.rand(1, 37, generator=g) > 0.5
    out = attention(q, k, v, mask)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 3, 1, 16)
    torch.testing.assert_close(
        out.float(), F.scaled_dot_product_attention(q.float(), k, v, attn_mask=mask), atol=1e-2, rtol=1e-2
    )


def tiny_bf16_lm(conditioning: str) -> AudioLM:
    """A seeded 2-layer LM (2 codebooks of 16, 10 Hz audio, 5 fps, causal mask) in bf16, eval mode."""
    torch.manual_seed(0)
    dims = dict(dim=32, num_layers=2, num_heads=4, num_codebooks=2, cardinality=16, frame_rate=10.0, fps=5.0)
    config = LMConfig(**dims, visual_dim=8, conditioning=conditioning, visual_attention="causal")
    return AudioLM(config).eval().bfloat16()


def test_bf16_decoding_steps_match_teacher_forcing(monkeypatch):
    cache_dtypes = []
    models = {c: tiny_bf16_lm(c) for c in ("cross", "prefix")}
    for lm in models.values():
        cpu_decoding.prepare(lm)  # the measured choice first: only the decoding below is recorded
    new_caches = Transformer.new_caches
    monkeypatch.setattr(
        Transformer, "new_caches", lambda self, *a, **kw: cache_dtypes.append(kw["dtype"]) or new_caches(self, *a, **kw)
    )
    for conditioning, lm in models.items():
        visual = torch.randn(1, 3, 8).bfloat16()
        with torch.inference_mode():
            codes = lm.generate(visual, 6, temperature=0.0, cfg_coef=1.0)  # greedy: [1, K, 6]
            logits = lm.compute_logits(codes, visual)  # [1, K, 6, card], teacher-forced in bf16
        # greedy decoding with float32 activations picks what teacher forcing ranks first (bf16 ties aside)
        top = logits.float().argmax(-1)
        assert (top == codes).float().mean() >= 0.9, conditioning
    # bf16 weights; bf16 caches where the native attention kernel reads them, else float32
    assert cache_dtypes == [torch.bfloat16 if lm.decode_path == "native" else torch.float32 for lm in models.values()]


def test_decoding_cache_dtype():
    cpu = torch.device("cpu")
    lm = torch.nn.Module()
    for path, want in (("native", torch.bfloat16), ("torch", None), ("onednn", None)):
        lm.decode_path = path
        assert cpu_decoding.cache_dtype(lm, torch.bfloat16, cpu) == want
        assert cpu_decoding.cache_dtype(lm, torch.float16, cpu) is None
        assert cpu_decoding.cache_dtype(lm, torch.bfloat16, torch.device("cuda")) is None


def test_mixed_dtypes_fall_back_to_float32_attention():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 3, 1, 16, generator=g)
    k, v = torch.randn(2, 3, 9, 16, generator=g).bfloat16(), torch.randn(2, 3, 9, 16, generator=g).bfloat16()
    mask = torch.rand(1, 9, generator=g) > 0.3  # a mask: never the native kernel
    out = attention(q, k, v, mask)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k.float(), v.float(), attn_mask=mask))


def test_bf16_decoding_runs_float32_activations_through_bf16_weights(monkeypatch):
    """A decoding step's hidden states are float32 while every weight stays bf16; logits come out float32."""
    lm = tiny_bf16_lm("cross")
    seen = []
    for blk in lm.transformer.blocks:
        blk.mlp.fc.register_forward_pre_hook(lambda mod, args: seen.append((args[0].dtype, mod.weight.dtype)))
    with torch.inference_mode():
        state = lm._start(lm.condition(torch.randn(2, 3, 8).bfloat16()), 4)
        logits = lm._step(state, torch.zeros(2, 2, 1, dtype=torch.long), 0)
    assert logits.dtype == torch.float32 and logits.shape == (2, 2, 16)
    assert seen == [(torch.float32, torch.bfloat16)] * 2
    assert all(p.dtype == torch.bfloat16 for p in lm.parameters())


def test_layer_norm_with_bf16_parameters_normalises_float32_inputs():
    norm = LayerNorm(24)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    norm = norm.bfloat16()
    x = torch.randn(3, 24)
    with torch.inference_mode():
        out = norm(x)
        ref = F.layer_norm(x, (24,), norm.weight.float(), norm.bias.float(), norm.eps)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, ref)
        norm.weight.mul_(2.0)  # the float32 copies follow a change of the parameters
        torch.testing.assert_close(norm(x), F.layer_norm(x, (24,), norm.weight.float(), norm.bias.float(), norm.eps))
        assert norm(x.bfloat16()).dtype == torch.bfloat16  # same dtype: nn.LayerNorm's own path
    with torch.enable_grad():  # with autograd: differentiable through the bf16 parameters
        x.requires_grad_(True)
        norm(x).sum().backward()
    assert norm.weight.grad is not None and x.grad is not None
    assert norm.float()._copies is None  # a dtype change drops the copies
