"""Onset detection and scoring: matching rules, grouping, and F1 >= 0.99 on clean SynthFoley audio."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from foleygen.data.synthfoley import SynthFoleyConfig, generate_clip
from foleygen.eval.onsets import (
    OnsetScore,
    aggregate_scores,
    detect_onsets,
    evaluate_clip,
    match_groups,
    match_onsets,
    reference_onsets,
)


def test_match_is_one_to_one_within_tolerance():
    s = match_onsets([0.10, 0.11, 0.50, 0.95], [0.1, 0.53, 0.9], tolerance=0.04)
    assert (s.hits, s.false_alarms, s.misses) == (2, 2, 1)  # 0.11 duplicates 0.10; 0.95 is 50 ms late
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s.mean_abs_offset_ms == pytest.approx((0.0 + 30.0) / 2, abs=1e-6)
    assert sorted(m[1] for m in s.matches) == [0, 1]


def test_doubled_false_alarms_are_counted_apart():
    # a hit at 1.0 s with a second attack 60 ms after it (doubled), one 150 ms after (not doubled: a
    # sound of its own), and a false alarm far from any hit
    s = match_onsets([1.0, 1.06, 1.15, 3.0], [1.0, 2.0])
    assert (s.hits, s.false_alarms, s.misses, s.doubled) == (1, 3, 1, 1)
    assert s.as_dict()["doubled_false_alarms"] == 1
    # an early start before the hit counts too; without any hit nothing is doubled
    assert match_onsets([0.93, 1.0], [1.0]).doubled == 1
    assert match_onsets([0.5], [1.0]).doubled == 0
    assert aggregate_scores([match_onsets([0.93, 1.0], [1.0])] * 3).doubled == 3


def test_match_prefers_more_pairs_over_closer_pairs():
    # greedy-by-distance would pair 0.12 with 0.10 and leave 0.07 and 0.15 unmatched: Hungarian finds 2
    s = match_onsets([0.07, 0.12], [0.10, 0.15], tolerance=0.031)
    assert s.hits == 2 and s.false_alarms == 0 and s.misses == 0


def test_match_empty_and_ignore():
    assert match_onsets([], []).f1 == 1.0
    s = match_onsets([], [0.5])
    assert (s.recall, s.misses) == (0.0, 1) and np.isnan(s.mean_abs_offset_ms)
    assert match_onsets([0.5], []).precision == 0.0
    s = match_onsets([0.5, 1.0], [1.0], ignore=[0.51])  # a prediction on an off-screen sound is no false alarm
    assert (s.hits, s.false_alarms, s.misses) == (1, 0, 0)
    s = match_onsets([1.0], [1.0], ignore=[2.0])  # an unheard off-screen sound is no miss
    assert (s.hits, s.false_alarms, s.misses) == (1, 0, 0)


def test_groups_accept_any_member_and_split_detections():
    # one group of two impacts 45 ms apart: a detector may report one onset (at either) or two
    for pred in ([1.0], [1.045], [1.0, 1.045]):
        s = match_groups(pred, [[1.0, 1.045]], [True])
        assert (s.hits, s.false_alarms, s.misses) == (1, 0, 0), pred
    s = match_groups([1.05], [[1.0, 1.045]], [True])
    assert s.matches[0][2] == pytest.approx(0.005)


def test_reference_onsets_grouping_and_offscreen():
    events = [
        {"time": 1.0, "class": "wood", "kind": "impact", "offscreen": False},
        {"time": 1.03, "class": "metal", "kind": "impact", "offscreen": True},
        {"time": 1.07, "class": "glass", "kind": "impact", "offscreen": False},  # chained: 40 ms after 1.03
        {"time": 1.2, "class": "rubber", "kind": "roll", "end": 2.0, "offscreen": False},  # not an onset
        {"time": 2.0, "class": "drum", "kind": "impact", "offscreen": True},
    ]
    refs = reference_onsets(events)
    assert [r["time"] for r in refs] == [1.0, 2.0]
    assert refs[0]["times"] == [1.0, 1.03, 1.07] and refs[0]["onscreen_classes"] == ["glass", "wood"]
    assert refs[0]["classes"] == ["glass", "wood", "metal"] and not refs[0]["offscreen"] and refs[1]["offscreen"]


def test_detector_finds_clicks_in_noise():
    sr = 16000
    rng = np.random.default_rng(0)
    wav = 0.003 * rng.standard_normal(3 * sr)
    times = [0.25, 0.7, 0.78, 1.5, 2.61]
    for t in times:
        n = round(t * sr)
        k = np.arange(2000)
        wav[n : n + 2000] += 0.3 * np.exp(-k / 300) * np.sin(2 * np.pi * 600 * k / sr)
    pred = detect_onsets(wav.astype(np.float32), sr)
    assert len(pred) == len(times)
    assert np.abs(pred - np.array(times)).max() < 0.006


def test_aggregate_is_micro_average():
    a = OnsetScore.from_counts(9, 1, 0, [0.001] * 9)
    b = OnsetScore.from_counts(0, 0, 1, [])
    agg = aggregate_scores([a, b])
    assert (agg.hits, agg.false_alarms, agg.misses) == (9, 1, 1)
    assert agg.precision == pytest.approx(0.9) and agg.recall == pytest.approx(0.9)


def test_detector_f1_on_clean_synthfoley_audio():
    """The metric's own sanity check: ground-truth audio must score F1 >= 0.99 (30 test-split clips)."""
    config = dataclasses.replace(SynthFoleyConfig(), size=16)  # frames are not needed: keep them tiny
    scores = [
        evaluate_clip(c.audio, c.sample_rate, c.events)
        for c in (generate_clip("test", 0, i, config) for i in range(30))
    ]
    agg = aggregate_scores(scores)
    assert agg.hits >= 150  # enough onsets for the number to mean something
    assert agg.f1 >= 0.99, agg.as_dict()
    assert agg.mean_abs_offset_ms < 3.0


def test_detector_averages_channels():
    sr = 16000
    wav = np.zeros(sr, np.float32)
    k = np.arange(1600)
    wav[8000:9600] = 0.3 * np.exp(-k / 300) * np.sin(2 * np.pi * 600 * k / sr)
    mono = detect_onsets(wav, sr)
    assert np.allclose(detect_onsets(np.stack([wav, wav]), sr), mono)
    assert np.allclose(detect_onsets(wav[None], sr), mono) and len(mono) == 1


def test_onsets_at_the_very_end_are_dont_care():
    events = [
        {"time": 0.5, "class": "wood", "kind": "impact", "offscreen": False},
        {"time": 0.99, "class": "wood", "kind": "impact", "offscreen": False},
    ]
    wav = np.zeros(16000, np.float32)  # 1 s: the second impact has 10 ms of sound left
    s = evaluate_clip(wav, 16000, events, pred=np.array([0.5]))
    assert (s.hits, s.false_alarms, s.misses) == (1, 0, 0)
    s = evaluate_clip(wav, 16000, events, pred=np.array([0.5, 0.99]))
    assert (s.hits, s.false_alarms, s.misses) == (1, 0, 0)  # detecting it is no false alarm either
