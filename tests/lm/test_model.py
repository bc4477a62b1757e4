import pytest
import torch

from foleygen.errors import CodecError, ConfigError
from foleygen.lm import AudioLM, LMConfig
from foleygen.lm.patterns import build_delay_pattern, revert_delay_pattern
from foleygen.lm.sampling import guide

K, CARD, D = 3, 16, 8
VARIANTS = [(c, v) for c in ("cross", "prefix") for v in ("full", "causal", "frame_specific")]


def tiny(conditioning="cross", visual_attention="causal", fps=25, **kw):
    cfg = LMConfig(
        dim=32,
        num_layers=2,
        num_heads=4,
        num_codebooks=K,
        cardinality=CARD,
        visual_dim=D,
        frame_rate=50,
        fps=fps,
        conditioning=conditioning,
        visual_attention=visual_attention,
        **kw,
    )
    return AudioLM(cfg).eval()


def incremental_logits(lm, codes, visual, *, cfg=False, prefill=1):
    """Logits step by step through the KV cache, as generate() computes them -> [B, K, T, card]."""
    B = codes.shape[0]
    seq = build_delay_pattern(codes, lm.special_token)
    L = seq.shape[-1]
    inputs = torch.cat([seq.new_full((B, K, 1), lm.special_token), seq[:, :, :-1]], dim=-1)
    memory = lm.condition(visual)
    if cfg:
        memory = torch.cat([memory, lm.null_memory(B, memory.shape[1])])
        inputs = torch.cat([inputs, inputs])
    state = lm._start(memory, L)
    steps = [lm._step(state, inputs[:, :, :prefill], 0)]  # a chunked prefill, then one step at a time
    for s in range(prefill, L):
        steps.append(lm._step(state, inputs[:, :, s : s + 1], s))
    out = torch.stack(steps, dim=2)  # [rows, K, L - prefill + 1, card]
    return out, prefill


@pytest.mark.parametrize("conditioning,visual_attention", VARIANTS)
@torch.inference_mode()
def test_teacher_forced_equals_kv_cache(conditioning, visual_attention):
    lm = tiny(conditioning, visual_attention)
    codes = torch.randint(0, CARD, (2, K, 12))
    visual = torch.randn(2, 6, D)
    ref = lm.compute_logits(codes, visual)  # [B, K, T, card]
    ref_seq = build_delay_pattern(torch.zeros_like(codes), 0)  # only for the shape of the sequence
    for prefill in (1, 5):
        out, p = incremental_logits(lm, codes, visual, prefill=prefill)
        # out[:, :, j] holds the logits of sequence step p - 1 + j; rebuild the full [B, K, L, card]
        full = torch.zeros(*ref_seq.shape, CARD)
        full[:, :, p - 1 :] = out
        inc = revert_delay_pattern(full)
        # steps before p - 1 were not emitted in the chunk: compare audio frames whose step >= p - 1 for all k
        t_from = p - 1
        torch.testing.assert_close(inc[:, :, t_from:], ref[:, :, t_from:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("conditioning", ["cross", "prefix"])
@torch.inference_mode()
def test_cfg_batch_with_coef_one_is_conditional(conditioning):
    lm = tiny(conditioning)
    codes, visual = torch.randint(0, CARD, (2, K, 8)), torch.randn(2, 4, D)
    out, _ = incremental_logits(lm, codes, visual, cfg=True)
    cond, null = out[:2], out[2:]
    ref = lm.compute_logits(codes, visual)
    torch.testing.assert_close(revert_delay_pattern(guide(cond, null, 1.0)), ref, atol=1e-5, rtol=1e-4)
    # and the null rows are the unconditional model
    ref_null = lm.compute_logits(codes, visual, drop_condition=torch.ones(2, dtype=torch.bool))
    torch.testing.assert_close(revert_delay_pattern(null), ref_null, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(ref_null, ref)


def _cut_frame_invariant(lm, T=16, F=8, cut=5):
    """Change visual frames >= cut; return (logits before, after, bool[K, T] allowed-to-change)."""
    codes = torch.randint(0, CARD, (1, K, T))
    visual = torch.randn(1, F, D)
    changed = visual.clone()
    changed[:, cut:] = torch.randn(1, F - cut, D)
    a, b = lm.compute_logits(codes, visual), lm.compute_logits(codes, changed)
    # Frame `cut` is shown at cut / fps; audio frame t + k ends at (t + k + 1) / frame_rate.
    t = torch.arange(T)[None, :]
    k = torch.arange(K)[:, None]
    may_change = (t + k + 1) / lm.frame_rate > cut / lm.fps  # ends after the changed frames start
    return a, b, may_change


@pytest.mark.parametrize("conditioning", ["cross", "prefix"])
@pytest.mark.parametrize("visual_attention", ["causal", "frame_specific"])
@pytest.mark.parametrize("fps", [25, 30])  # 30 fps: frames fall between audio steps (positions 5/3 apart)
@torch.inference_mode()
def test_future_frames_never_change_past_logits(conditioning, visual_attention, fps):
    lm = tiny(conditioning, visual_attention, fps=fps)
    a, b, may_change = _cut_frame_invariant(lm)
    diff = (a - b).abs().amax(dim=-1)[0]  # [K, T]
    assert diff[~may_change].max() == 0
    assert diff[may_change].max() > 1e-4  # the later logits do see the new frames


@pytest.mark.parametrize("conditioning", ["cross", "prefix"])
@pytest.mark.parametrize("visual_attention", ["causal", "frame_specific"])
@torch.inference_mode()
def test_lookahead_sees_exactly_its_frames_ahead(conditioning, visual_attention):
    T, F, cut = 16, 8, 5
    lm = tiny(conditioning, visual_attention, visual_lookahead=1)
    a, b, _ = _cut_frame_invariant(lm, T=T, F=F, cut=cut)
    diff = (a - b).abs().amax(dim=-1)[0]  # [K, T]
    # logits[:, k, t] may see frames up to the one on screen at audio frame t + k, plus one
    t, k = torch.arange(T)[None, :], torch.arange(K)[:, None]
    on_screen = torch.div((t + k) * lm.fps, lm.frame_rate, rounding_mode="floor")
    may_change = on_screen + 1 >= cut
    assert diff[~may_change].max() == 0
    # the frame ahead is really used: the logits of audio frames 8 and 9 (on screen: frame 4) change
    # for stream 0, where the paper's causal mask would keep them
    assert diff[0, 8:10].min() > 1e-6


@pytest.mark.parametrize("conditioning", ["cross", "prefix"])
@torch.inference_mode()
def test_full_attention_sees_the_future(conditioning):
    lm = tiny(conditioning, "full")
    a, b, may_change = _cut_frame_invariant(lm)
    diff = (a - b).abs().amax(dim=-1)[0]
    assert diff[~may_change].min() > 0  # even the very first step hears what is shown later


@pytest.mark.parametrize("conditioning", ["cross", "prefix"])
@torch.inference_mode()
def test_greedy_generation_is_self_consistent(conditioning):
    """Greedy codes are the argmax of the (guided) teacher-forced logits of those very codes."""
    lm = tiny(conditioning)
    visual = torch.randn(2, 5, D)
    for cfg in (1.0, 3.0):
        codes = lm.generate(visual, 10, temperature=0.0, cfg_coef=cfg)
        assert codes.shape == (2, K, 10) and codes.dtype == torch.long
        cond = lm.compute_logits(codes, visual)
        null = lm.compute_logits(codes, visual, drop_condition=torch.ones(2, dtype=torch.bool))
        assert torch.equal(guide(cond, null, cfg).argmax(-1), codes)


@torch.inference_mode()
def test_seeded_sampling_is_reproducible_and_prompt_is_kept():
    lm = tiny("cross", "frame_specific")
    visual = torch.randn(2, 5, D)

    def run(seed, **kw):
        return lm.generate(visual, 10, top_k=5, generator=torch.Generator().manual_seed(seed), **kw)

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))
    prompt = torch.randint(0, CARD, (2, K, 4))
    out = run(3, prompt_codes=prompt)
    assert torch.equal(out[:, :, :4], prompt)
    assert torch.equal(lm.generate(visual, 4, prompt_codes=prompt), prompt)


@torch.inference_mode()
def test_windowed_generation():
    lm = tiny("cross", "causal")
    visual = torch.randn(1, 15, D)  # 0.6 s at 25 fps -> 30 audio frames at 50 Hz
    kw = dict(top_k=4, cfg_coef=2.0)
    out = lm.generate_windowed(
        visual, 30, window_frames=12, stride_frames=6, generator=torch.Generator().manual_seed(0), **kw
    )
    assert out.shape == (1, K, 30)
    first = lm.generate(visual[:, :6], 12, generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(out[:, :, :12], first)  # window 0 is a plain generation
    again = lm.generate_windowed(
        visual, 30, window_frames=12, stride_frames=6, generator=torch.Generator().manual_seed(0), **kw
    )
    assert torch.equal(out, again)
    # greedy: window 1 continues from frames 6..11 of window 0 over visual frames 3..8
    g = lm.generate_windowed(visual, 30, window_frames=12, stride_frames=6, temperature=0.0)
    w1 = lm.generate(visual[:, 3:9], 12, temperature=0.0, prompt_codes=g[:, :, 6:12])
    assert torch.equal(g[:, :, 6:18], w1)
    with pytest.raises(ConfigError):  # 3 audio frames = 1.5 visual frames
        lm.generate_windowed(visual, 30, window_frames=12, stride_frames=3)


@torch.inference_mode()
def test_windowed_generation_passes_the_lookahead_frames():
    lm = tiny("cross", "causal", visual_lookahead=1)
    visual = torch.randn(1, 15, D)
    g = lm.generate_windowed(visual, 30, window_frames=12, stride_frames=6, temperature=0.0)
    # window 0 sees visual frames 0..5 plus frame 6 ahead; window 1 frames 3..8 plus frame 9
    assert torch.equal(g[:, :, :12], lm.generate(visual[:, :7], 12, temperature=0.0))
    w1 = lm.generate(visual[:, 3:10], 12, temperature=0.0, prompt_codes=g[:, :, 6:12])
    assert torch.equal(g[:, :, 6:18], w1)
    # the last window has no frame beyond the video to pass
    assert g.shape == (1, K, 30)


def test_training_mode_drops_condition_per_sample():
    lm = tiny(cfg_dropout=0.5).train()
    codes, visual = torch.randint(0, CARD, (64, K, 4)), torch.randn(64, 2, D)
    logits = lm.compute_logits(codes, visual)
    null = lm.eval().compute_logits(codes, visual, drop_condition=torch.ones(64, dtype=torch.bool))
    dropped = (logits - null).abs().flatten(1).amax(1) < 1e-5
    assert 10 < int(dropped.sum()) < 54  # about half, each sample on its own
    logits.sum().backward()  # trainable end to end, null condition included
    assert lm.null_condition.grad is not None and lm.visual_proj.weight.grad is not None


def test_bad_inputs_raise_foleygen_errors():
    lm = tiny()
    with pytest.raises(CodecError):
        lm.compute_logits(torch.full((1, K, 4), CARD), torch.randn(1, 2, D))
    with pytest.raises(CodecError):
        lm.compute_logits(torch.zeros(1, K + 1, 4, dtype=torch.long), torch.randn(1, 2, D))
    with pytest.raises(ConfigError):
        lm.compute_logits(torch.zeros(1, K, 4, dtype=torch.long), torch.randn(1, 2, D + 1))
    with pytest.raises(ConfigError):
        LMConfig(conditioning="sideways")
    with pytest.raises(ConfigError):
        LMConfig(dim=30, num_heads=4)
    with pytest.raises(ConfigError, match="visual_lookahead"):
        LMConfig(visual_lookahead=-1)


def test_public_attributes():
    lm = tiny()
    assert (lm.num_codebooks, lm.cardinality, lm.frame_rate, lm.fps, lm.visual_dim) == (K, CARD, 50.0, 25.0, D)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models: one thread beats two that fight with other processes for the two cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_decoding_reads_only_the_frames_a_step_may_attend_to(monkeypatch):
    from foleygen.lm.model import _contiguous_spans
    from foleygen.lm.transformer import Transformer

    mask = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 1]], dtype=torch.bool)
    assert _contiguous_spans(mask) == [(0, 1), (0, 2), (1, 3)]
    assert _contiguous_spans(torch.tensor([[1, 0, 1]], dtype=torch.bool)) is None  # a gap
    assert _contiguous_spans(torch.tensor([[0, 0, 0]], dtype=torch.bool)) is None  # nothing to attend

    frames_read = []
    forward = Transformer.forward
    monkeypatch.setattr(
        Transformer,
        "forward",
        lambda self, *a, **kw: frames_read.append(kw["memory_kv"][0][0].shape[2]) or forward(self, *a, **kw),
    )
    for kind, expected in (("frame_specific", lambda n: n == 1), ("full", lambda n: n == 6)):
        frames_read.clear()
        lm = tiny("cross", kind)
        lm.generate(torch.randn(1, 6, D), 8, temperature=0.0, cfg_coef=1.0)
        assert frames_read and all(expected(n) for n in frames_read), (kind, frames_read)
