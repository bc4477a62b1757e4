import pytest
import torch

from foleygen.errors import CodecError
from foleygen.lm.patterns import (
    build_delay_pattern,
    delay_valid_mask,
    num_frames_of,
    revert_delay_pattern,
    sequence_length,
)

SPECIAL = 99


def test_build_places_stream_k_k_steps_late():
    codes = torch.arange(2 * 3 * 4).view(2, 3, 4)  # [B=2, K=3, T=4], all < SPECIAL
    seq = build_delay_pattern(codes, SPECIAL)
    assert seq.shape == (2, 3, 6)
    for k in range(3):
        for s in range(6):
            t = s - k
            expected = codes[:, k, t] if 0 <= t < 4 else torch.full((2,), SPECIAL)
            assert torch.equal(seq[:, k, s], expected), (k, s)


def test_documented_example():
    codes = torch.tensor([[[0, 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23]]])
    seq = build_delay_pattern(codes, -1)
    assert seq[0].tolist() == [[0, 1, 2, 3, -1, -1], [-1, 10, 11, 12, 13, -1], [-1, -1, 20, 21, 22, 23]]


@pytest.mark.parametrize("K,T", [(1, 5), (4, 1), (4, 7), (8, 3)])
def test_round_trip_tokens(K, T):
    codes = torch.randint(0, 50, (3, K, T))
    seq = build_delay_pattern(codes, SPECIAL)
    assert seq.shape[-1] == sequence_length(T, K) == T + K - 1
    assert num_frames_of(seq.shape[-1], K) == T
    assert torch.equal(revert_delay_pattern(seq), codes)


def test_revert_carries_trailing_dims_like_logits():
    B, K, T, C = 2, 3, 5, 7
    logits = torch.randn(B, K, T + K - 1, C)
    out = revert_delay_pattern(logits)
    assert out.shape == (B, K, T, C)
    for k in range(K):
        assert torch.equal(out[:, k], logits[:, k, k : k + T])


def test_valid_mask_matches_non_special_slots():
    codes = torch.randint(0, 50, (1, 4, 6))
    seq = build_delay_pattern(codes, SPECIAL)
    assert torch.equal(delay_valid_mask(6, 4), seq[0] != SPECIAL)
    assert int(delay_valid_mask(6, 4).sum()) == 4 * 6


def test_bad_shapes_raise():
    with pytest.raises(CodecError):
        build_delay_pattern(torch.zeros(4, 5, dtype=torch.long), SPECIAL)
    with pytest.raises(CodecError):
        revert_delay_pattern(torch.zeros(1, 4, 2, dtype=torch.long))  # shorter than the delay
