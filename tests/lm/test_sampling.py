import torch

from foleygen.lm.sampling import guide, sample, top_k_filter, top_p_filter


def test_top_k_keeps_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    out = top_k_filter(logits, 2)
    assert torch.isfinite(out).flatten().tolist() == [False, True, False, True, False]
    assert torch.equal(top_k_filter(logits, 0), logits)


def test_top_p_keeps_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    assert torch.isfinite(top_p_filter(logits, 0.7)).flatten().tolist() == [True, True, False, False]
    assert torch.isfinite(top_p_filter(logits, 0.5)).flatten().tolist() == [True, False, False, False]
    assert torch.isfinite(top_p_filter(logits, 0.81)).flatten().tolist() == [True, True, True, False]
    # a tiny p keeps the argmax, never nothing
    assert torch.isfinite(top_p_filter(logits, 1e-6)).sum() == 1
    # unsorted input: the filter follows the probabilities, not the positions
    shuffled = logits[:, [2, 0, 3, 1]]
    assert torch.isfinite(top_p_filter(shuffled, 0.7)).flatten().tolist() == [False, True, False, True]


def test_greedy_and_seeded_sampling():
    logits = torch.randn(3, 4, 50)
    assert torch.equal(sample(logits, temperature=0.0), logits.argmax(-1))
    assert torch.equal(sample(logits, top_k=1), logits.argmax(-1))
    a = sample(logits, top_k=10, generator=torch.Generator().manual_seed(7))
    b = sample(logits, top_k=10, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.shape == (3, 4)


def test_samples_stay_inside_filters():
    logits = torch.randn(2000, 20)
    gen = torch.Generator().manual_seed(0)
    top3 = logits.topk(3, dim=-1).indices
    drawn = sample(logits, top_k=3, generator=gen)
    assert (drawn[:, None] == top3).any(dim=1).all()
    kept = torch.isfinite(top_p_filter(logits, 0.6))
    drawn = sample(logits, top_p=0.6, generator=gen)
    assert kept.gather(1, drawn[:, None]).all()
    drawn = sample(logits, top_k=5, top_p=0.6, generator=gen)  # both filters at once
    kept = torch.isfinite(top_p_filter(top_k_filter(logits, 5), 0.6))
    assert kept.gather(1, drawn[:, None]).all()


def test_top_k_sampling_follows_probabilities():
    logits = torch.tensor([0.0, 1.0, 2.0, -5.0]).log_softmax(-1).expand(20000, 4)
    drawn = sample(logits, top_k=3, generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(drawn, minlength=4).float() / drawn.numel()
    expected = torch.tensor([0.0, 1.0, 2.0]).softmax(-1)
    assert torch.allclose(freq[:3], expected, atol=0.02) and freq[3] == 0


def test_guide():
    cond, null = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    assert torch.allclose(guide(cond, null, 1.0), cond)
    assert torch.allclose(guide(cond, null, 0.0), null)
    assert torch.allclose(guide(cond, null, 3.0), null + 3 * (cond - null))
