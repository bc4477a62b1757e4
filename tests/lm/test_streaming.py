"""``StreamingDecoder``: sliding-window decoding fed piece by piece makes exactly ``generate_windowed``'s codes."""

import pytest
import torch

from foleygen.errors import ConfigError
from foleygen.lm import AudioLM, LMConfig
from foleygen.lm.streaming import StreamingDecoder

# (frame_rate, fps, T audio frames, F visual frames, window W, stride S)
SHAPES = [
    (50, 25, 40, 20, 20, 10),  # two whole windows
    (50, 25, 57, 29, 20, 10),  # a short last window
    (50, 25, 15, 8, 20, 10),  # shorter than one window
    (50, 25, 50, 20, 20, 10),  # audio past the end of the video: the last frame stays on screen
    (40, 10, 63, 16, 24, 12),  # 4 audio frames per visual frame
]
FEEDS = {"all at once": [10**6], "frame by frame": [1] * 1000, "uneven": [3, 1, 7, 2, 5] * 50}


def tiny_lm(kind, lookahead, frame_rate, fps, K=3, dtype=torch.float32):
    torch.manual_seed(0)
    cfg = LMConfig(
        dim=32, num_layers=2, num_heads=4, num_codebooks=K, cardinality=16, frame_rate=frame_rate, fps=fps,
        visual_dim=8, visual_attention=kind, visual_lookahead=lookahead,
    )  # fmt: skip
    return AudioLM(cfg).eval().to(dtype)


def streamed(lm, visual, T, W, S, feed, *, known_length, cfg_coef=3.0, prompt=None):
    fr, fps = lm.frame_rate, lm.fps
    dec = StreamingDecoder(
        lm, window_frames=W, stride_frames=S, num_audio_frames_for=lambda n: int(n * fr / fps),
        temperature=1.0, top_k=8, cfg_coef=cfg_coef, generator=torch.Generator().manual_seed(5),
        num_audio_frames=T if known_length else None, prompt_codes=prompt,
    )  # fmt: skip
    pieces, i = [], 0
    with torch.inference_mode():
        for n in feed:
            if i >= visual.shape[1]:
                break
            dec.push(visual[:, i : i + n])
            i += n
            pieces.append(dec.advance())
        dec.end(T)
        pieces.append(dec.advance())
    assert dec.done
    return torch.cat(pieces, dim=-1)


def offline(lm, visual, T, W, S, cfg_coef=3.0, prompt=None):
    g = torch.Generator().manual_seed(5)
    with torch.inference_mode():
        return lm.generate_windowed(
            visual, T, window_frames=W, stride_frames=S, temperature=1.0, top_k=8, cfg_coef=cfg_coef,
            generator=g, prompt_codes=prompt,
        )  # fmt: skip


@pytest.mark.parametrize("kind,lookahead", [("causal", 0), ("causal", 2), ("frame_specific", 1), ("full", 0)])
@pytest.mark.parametrize("shape", SHAPES)
def test_streamed_codes_equal_windowed_generation(kind, lookahead, shape):
    fr, fps, T, F, W, S = shape
    lm = tiny_lm(kind, lookahead, fr, fps)
    visual = torch.randn(1, F, 8, generator=torch.Generator().manual_seed(1))
    ref = offline(lm, visual, T, W, S)
    for name, feed in FEEDS.items():
        got = streamed(lm, visual, T, W, S, feed, known_length=True)
        assert torch.equal(got, ref), name
    if int(F * fr / fps) <= T:  # the length rule never overstates: the length need not be known up front
        assert torch.equal(streamed(lm, visual, T, W, S, FEEDS["frame by frame"], known_length=False), ref)


@pytest.mark.parametrize("cfg_coef", [1.0, 3.0])
def test_bf16_four_codebooks_and_a_prompt(cfg_coef):
    lm = tiny_lm("causal", 2, 50, 25, K=4, dtype=torch.bfloat16)
    visual = torch.randn(1, 29, 8, generator=torch.Generator().manual_seed(2)).bfloat16()
    prompt = torch.randint(0, 16, (1, 4, 6), generator=torch.Generator().manual_seed(3))
    ref = offline(lm, visual, 57, 20, 10, cfg_coef, prompt)
    got = streamed(lm, visual, 57, 20, 10, FEEDS["uneven"], known_length=True, cfg_coef=cfg_coef, prompt=prompt)
    assert torch.equal(prompt, ref[:, :, :6]) and torch.equal(got, ref[:, :, 6:])  # the prompt is not handed back


def test_codes_come_out_as_soon_as_they_are_final():
    lm = tiny_lm("causal", 0, 50, 25)
    dec = StreamingDecoder(lm, window_frames=20, stride_frames=10, num_audio_frames_for=lambda n: 2 * n, cfg_coef=1.0)
    out = []
    with torch.inference_mode():
        for _ in range(10):
            dec.push(torch.randn(1, 1, 8))
            out.append(dec.advance().shape[-1])
    # After n frames, 2n audio frames are known to exist, so steps up to 2n - 1 can run, and frame t is final
    # after step t + K - 1: 2n - (K - 1) frames. The window's last steps (past frame W - 1) run at once.
    assert dec.latency_frames == 2
    assert out == [0] + [2] * 8 + [4]


def test_refusals():
    lm = tiny_lm("causal", 0, 50, 25)
    with pytest.raises(ConfigError, match="whole number of visual frames"):
        StreamingDecoder(lm, window_frames=20, stride_frames=9, num_audio_frames_for=lambda n: 2 * n)
    prefix = AudioLM(
        LMConfig(dim=32, num_layers=1, num_heads=4, num_codebooks=2, cardinality=16, conditioning="prefix")
    )
    with pytest.raises(ConfigError, match="cross-attention"):
        StreamingDecoder(prefix, window_frames=20, stride_frames=10, num_audio_frames_for=lambda n: 2 * n)
    dec = StreamingDecoder(lm, window_frames=20, stride_frames=10, num_audio_frames_for=lambda n: 2 * n, cfg_coef=1.0)
    with pytest.raises(ConfigError, match="before its first frame"):
        dec.end()
    with torch.inference_mode():
        dec.push(torch.randn(1, 5, 8))
        dec.advance()
    with pytest.raises(ConfigError, match="overstated"):
        dec.end(3)  # steps already ran for audio frames the caller now says do not exist
