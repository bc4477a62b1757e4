import torch

from foleygen.lm import AudioLM, LMConfig
from foleygen.lm.transformer import apply_rope, rope_tables


def rotate(x, positions):
    cos, sin = rope_tables(torch.tensor(positions, dtype=torch.float64), x.shape[-1])
    return apply_rope(x, cos, sin)


def test_rope_is_a_rotation_with_relative_scores():
    q, k = torch.randn(1, 16), torch.randn(1, 16)
    # norms are kept
    torch.testing.assert_close(rotate(q, [3.7]).norm(), q.norm())
    # the score depends only on the distance, also for fractional positions (visual frames between steps)
    for p, d in [(0.0, 2.5), (7.0, 2.5), (100.25, -1.0), (3.0, -1.0)]:
        a = (rotate(q, [p + d]) * rotate(k, [p])).sum()
        b = (rotate(q, [d]) * rotate(k, [0.0])).sum()
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # matches the textbook pairwise rotation of (x_i, x_{i + d/2}) by angle p * base^(-i / (d/2))
    x = torch.randn(8)
    p = 5.0
    out = rotate(x[None], [p])[0]
    for i in range(4):
        theta = torch.tensor(p * 10000.0 ** (-i / 4))
        c, s = torch.cos(theta), torch.sin(theta)
        torch.testing.assert_close(out[i], x[i] * c - x[i + 4] * s)
        torch.testing.assert_close(out[i + 4], x[i + 4] * c + x[i] * s)


def test_visual_frames_share_the_audio_time_axis():
    lm = AudioLM(
        LMConfig(dim=32, num_layers=1, num_heads=4, num_codebooks=2, cardinality=8, visual_dim=4, frame_rate=50, fps=25)
    )
    assert lm.visual_positions(4).tolist() == [0.0, 2.0, 4.0, 6.0]  # frame f at audio step f * 50 / 25
    lm = AudioLM(
        LMConfig(dim=32, num_layers=1, num_heads=4, num_codebooks=2, cardinality=8, visual_dim=4, frame_rate=50, fps=8)
    )
    assert lm.visual_positions(3).tolist() == [0.0, 6.25, 12.5]
