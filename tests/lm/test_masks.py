import math

import pytest
import torch

from foleygen.errors import ConfigError
from foleygen.lm.masks import step_unit, visual_attention_mask


@pytest.mark.parametrize("fr,fps", [(50, 25), (50, 8), (50, 30), (75, 29.97), (50, 60)])
@pytest.mark.parametrize("T,F", [(40, 20), (40, 3), (1, 1), (10, 40)])
def test_definitions(fr, fps, T, F):
    full = visual_attention_mask("full", T, fr, F, fps)
    causal = visual_attention_mask("causal", T, fr, F, fps)
    spec = visual_attention_mask("frame_specific", T, fr, F, fps)
    assert full.shape == causal.shape == spec.shape == (T, F)
    assert full.dtype == torch.bool and full.all()
    for t in range(T):
        for f in range(F):
            # exact comparison of f / fps <= t / fr (the rates are exact decimals here)
            assert bool(causal[t, f]) == (f * fr <= t * fps + 1e-9)
        on_screen = min(math.floor(t * fps / fr + 1e-9), F - 1)
        assert spec[t].nonzero().flatten().tolist() == [on_screen]
    # every row may attend somewhere (an all-False row would make attention NaN)
    assert causal.any(dim=1).all() and spec.any(dim=1).all()
    # frame_specific sees a subset of what causal sees while the video lasts
    inside = torch.arange(T) * fps / fr < F
    assert (spec[inside] <= causal[inside]).all()


def test_exact_boundaries():
    # 50 Hz / 25 fps: audio frame 2 starts at 0.04 s, exactly when visual frame 1 is shown.
    causal = visual_attention_mask("causal", 4, 50, 4, 25)
    assert causal[1].tolist() == [True, False, False, False]
    assert causal[2].tolist() == [True, True, False, False]
    spec = visual_attention_mask("frame_specific", 4, 50, 4, 25)
    assert spec.nonzero()[:, 1].tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("fr,fps", [(50, 25), (50, 30), (75, 29.97)])
@pytest.mark.parametrize("T,F", [(40, 20), (40, 3), (10, 40)])
@pytest.mark.parametrize("n", [1, 2])
def test_lookahead_definitions(fr, fps, T, F, n):
    causal = visual_attention_mask("causal", T, fr, F, fps, lookahead=n)
    spec = visual_attention_mask("frame_specific", T, fr, F, fps, lookahead=n)
    assert torch.equal(visual_attention_mask("full", T, fr, F, fps, lookahead=n), torch.ones(T, F, dtype=torch.bool))
    for t in range(T):
        on_screen = math.floor(t * fps / fr + 1e-9)
        assert causal[t].nonzero().flatten().tolist() == list(range(min(on_screen + n, F - 1) + 1))
        first = min(on_screen, F - 1)
        assert spec[t].nonzero().flatten().tolist() == list(range(first, min(first + n, F - 1) + 1))
    # lookahead only adds frames: the paper's masks are the lookahead-0 case and subsets of these
    assert (visual_attention_mask("causal", T, fr, F, fps) <= causal).all()
    assert (visual_attention_mask("frame_specific", T, fr, F, fps) <= spec).all()
    assert torch.equal(
        visual_attention_mask("causal", T, fr, F, fps, lookahead=0), visual_attention_mask("causal", T, fr, F, fps)
    )


def test_lookahead_at_an_impact_between_frames():
    # 50 Hz / 25 fps: audio frame 62 is 1.24-1.26 s; frame 31 is shown at 1.24 s, frame 32 at 1.28 s
    assert visual_attention_mask("causal", 63, 50, 40, 25)[62].nonzero().max() == 31
    assert visual_attention_mask("causal", 63, 50, 40, 25, lookahead=1)[62].nonzero().max() == 32
    assert visual_attention_mask("frame_specific", 63, 50, 40, 25, lookahead=1)[62].nonzero().flatten().tolist() == [
        31,
        32,
    ]


def test_unknown_kind_raises():
    with pytest.raises(ConfigError):
        visual_attention_mask("sideways", 4, 50, 4, 25)
    with pytest.raises(ConfigError, match="lookahead"):
        visual_attention_mask("causal", 4, 50, 4, 25, lookahead=-1)


def test_step_unit():
    assert step_unit(50, 25) == pytest.approx(0.04)
    assert step_unit(50, 8) == pytest.approx(0.5)
    u = float(step_unit(50, 30))
    assert (u * 50) == pytest.approx(round(u * 50)) and (u * 30) == pytest.approx(round(u * 30))
