"""SynthFoley event classifier: shapes, windows, checkpoints, class accuracy, and the shipped weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foleygen.data.synthfoley import SynthFoleyConfig, generate_clip
from foleygen.errors import CheckpointError
from foleygen.eval.event_classifier import (
    DEFAULT_DIR,
    ClassAccuracy,
    ClassifierWeightsMissing,
    EventClassifier,
    EventClassifierConfig,
    aggregate_accuracy,
    class_accuracy,
    load_event_classifier,
)

TINY = EventClassifierConfig(channels=(4, 8), embedding_dim=16)


def test_shapes_and_clip_embedding():
    model = EventClassifier(TINY).eval()
    x = torch.randn(3, TINY.window_samples) * 0.1
    assert tuple(model(x).shape) == (3, 6)
    assert tuple(model.embed_windows(x).shape) == (3, 16)
    wav = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1
    emb = model.embedding(wav, 16000)
    assert tuple(emb.shape) == (13, 16)  # 0.3 s windows every 0.15 s over 2 s: 1 + ceil((2 - 0.3) / 0.15)
    assert tuple(model.embedding(np.stack([wav, wav]), 16000).shape) == (2, 13, 16)
    assert tuple(model.embedding(wav[:1000], 16000).shape) == (1, 16)  # short clip: one padded window
    assert tuple(model.embedding(wav[::2], 8000).shape) == (13, 16)  # resampled to 16 kHz first


def test_windows_start_before_the_onset():
    model = EventClassifier(TINY)
    wav = np.zeros(16000, np.float32)
    wav[8000] = 1.0  # an impulse at 0.5 s
    win = model.windows_at(wav, 16000, np.array([0.5, 0.99]))
    assert tuple(win.shape) == (2, TINY.window_samples)
    assert int(torch.argmax(win[0])) == TINY.pre_samples  # the onset sits pre_seconds into the window
    assert float(win[1].abs().sum()) == 0.0  # past the end: zero padding


def test_save_load_roundtrip(tmp_path):
    model = EventClassifier(TINY).eval()
    model.save_pretrained(tmp_path / "clf")
    loaded = load_event_classifier(tmp_path / "clf")
    assert loaded.config == TINY and not loaded.training
    x = torch.randn(2, TINY.window_samples) * 0.1
    assert torch.allclose(model(x), loaded(x))
    with pytest.raises(ClassifierWeightsMissing) as info:
        load_event_classifier(tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CheckpointError)
    (tmp_path / "clf" / "config.json").write_text('{"model_type": "something_else"}')
    with pytest.raises(CheckpointError):
        load_event_classifier(tmp_path / "clf")


class _Fixed(EventClassifier):
    """Predicts a fixed class sequence, to test the bookkeeping of class_accuracy."""

    def __init__(self, answers):
        super().__init__(TINY)
        self.answers = answers
        self.seen = None

    def classify(self, wav, sample_rate, times):
        self.seen = np.asarray(times)
        return np.asarray(self.answers[: len(times)])


def test_class_accuracy_bookkeeping():
    events = [
        {"time": 0.5, "class": "wood", "kind": "impact", "offscreen": False},
        {"time": 1.0, "class": "glass", "kind": "impact", "offscreen": False},
        {"time": 1.02, "class": "metal", "kind": "impact", "offscreen": False},  # same onset as glass
        {"time": 2.0, "class": "drum", "kind": "impact", "offscreen": True},  # off-screen: skipped
        {"time": 3.0, "class": "paper", "kind": "impact", "offscreen": False},  # not detected: not counted
    ]
    clf = _Fixed([0, 1])  # wood (right), metal (right: one of the onset's classes)
    acc = class_accuracy(np.zeros(64000), 16000, events, clf, pred_onsets=np.array([0.51, 1.01, 2.0]))
    assert (acc.correct, acc.total, acc.accuracy) == (2, 2, 1.0)
    assert np.allclose(clf.seen, [0.51, 1.01])  # windows are taken at the detected onsets
    acc = class_accuracy(np.zeros(64000), 16000, events, _Fixed([5, 2]), pred_onsets=np.array([0.51, 1.01]))
    assert (acc.correct, acc.total) == (1, 2) and acc.confusion[0, 5] == 1
    agg = aggregate_accuracy([acc, acc])
    assert (agg.correct, agg.total, agg.accuracy) == (2, 4, 0.5)
    none = class_accuracy(np.zeros(16000), 16000, events, clf, pred_onsets=np.array([]))
    assert none.total == 0 and np.isnan(none.accuracy)


def test_shipped_classifier_on_clean_test_clips():
    """The committed weights: small, and accurate on held-out (test-split) ground-truth audio."""
    size = sum(p.stat().st_size for p in DEFAULT_DIR.iterdir())
    assert size < 2_000_000
    clf = load_event_classifier()
    assert clf.classes == ("wood", "metal", "glass", "drum", "rubber", "paper")
    config = SynthFoleyConfig(size=16)
    clips = [generate_clip("test", 0, i, config) for i in range(12)]
    acc = aggregate_accuracy([class_accuracy(c.audio, c.sample_rate, c.events, clf) for c in clips])
    assert acc.total >= 60 and acc.accuracy >= 0.95, acc.as_dict()
    assert int(np.trace(acc.confusion)) == acc.correct
    emb = clf.embedding(clips[0].audio, 16000)
    assert tuple(emb.shape) == (26, 128) and torch.isfinite(emb).all()


def test_class_accuracy_per_class_reads_the_confusion_rows():
    confusion = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 2]])
    acc = ClassAccuracy(5 / 8, 5, 8, confusion)
    assert acc.per_class(["a", "b", "c"]) == {"a": 0.75, "b": None, "c": 0.5}
