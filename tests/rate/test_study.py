"""Study set-up: pairing by stem, muxed media, anchors, trials, the balanced order, bad input."""

from __future__ import annotations

import collections

import pytest
import torch
from rate_helpers import STEMS, make_sources, small_config

from foleygen.errors import ConfigError, DataError
from foleygen.io import probe, read_audio
from foleygen.rate.store import DB_NAME, MEDIA_DIR, Store
from foleygen.rate.study import StudyConfig, SystemSpec, add_rater, config_from_yaml, create_study, trial_order


def test_built_study_has_every_clip_and_trial(built_study):
    store = Store(built_study / DB_NAME)
    assert [(s["name"], s["role"]) for s in store.systems()] == [
        ("good", "system"), ("bad", "system"), ("original", "reference"), ("shuffled", "anchor")
    ]  # fmt: skip
    media = store.query("SELECT file FROM media")
    assert len(media) == 3 * 4
    for row in media:
        info = probe(built_study / MEDIA_DIR / row["file"])
        assert info.has_video and info.has_audio and info.duration == pytest.approx(1.0, abs=0.02)
    kinds = collections.Counter((r["kind"], r["is_check"]) for r in store.query("SELECT kind, is_check FROM trials"))
    assert kinds == {("mos", 0): 12, ("ab", 0): 3, ("ab", 1): 2}
    assert [r["name"] for r in store.raters()] == ["alice", "bob"]
    assert store.integrity_ok()
    # nothing left beside the study from the build
    assert [p.name for p in built_study.parent.iterdir() if p.name.startswith(".")] == []


def _dominant_freq(wav):
    spectrum = torch.fft.rfft(wav[0]).abs()
    return float(spectrum.argmax()) * 16000 / wav.shape[1]


def test_shuffled_anchor_is_another_videos_reference(built_study):
    store = Store(built_study / DB_NAME)
    rows = store.query(
        """SELECT v.stem, s.name, m.file FROM media m JOIN videos v ON v.id = m.video_id
           JOIN systems s ON s.id = m.system_id"""
    )
    freq = {
        (r["stem"], r["name"]): _dominant_freq(read_audio(built_study / MEDIA_DIR / r["file"], 16000)) for r in rows
    }
    for i, stem in enumerate(STEMS):
        assert freq[stem, "original"] == pytest.approx(300 + 100 * i, abs=3)
        assert freq[stem, "good"] == pytest.approx(500, abs=3) and freq[stem, "bad"] == pytest.approx(900, abs=3)
    refs = sorted(freq[s, "original"] for s in STEMS)
    shuffled = [freq[s, "shuffled"] for s in STEMS]
    assert sorted(shuffled) == pytest.approx(refs, abs=3)  # a permutation of the references...
    assert all(abs(freq[s, "shuffled"] - freq[s, "original"]) > 50 for s in STEMS)  # ...with no fixed point


def test_order_is_a_balanced_latin_square(built_study):
    store = Store(built_study / DB_NAME)
    info = {r["id"]: r for r in store.query(
        "SELECT t.id, t.kind, m.video_id, m.system_id FROM trials t JOIN media m ON m.id = t.media_a")}  # fmt: skip
    n_sys, n_vid = 4, 3
    seen = collections.Counter()
    swaps = collections.Counter()
    for k in range(n_sys):
        order = trial_order(store, k, seed=1)
        assert sorted(t for t, _ in order) == sorted(info)  # every trial exactly once
        mos = [t for t, _ in order if info[t]["kind"] == "mos"]
        assert [info[t]["kind"] for t, _ in order] == ["mos"] * len(mos) + ["ab"] * (len(order) - len(mos))
        for r in range(n_sys):
            block = mos[r * n_vid : (r + 1) * n_vid]
            assert len({info[t]["video_id"] for t in block}) == n_vid  # each round: every video once
            seen.update((r, info[t]["video_id"], info[t]["system_id"]) for t in block)
        videos = [info[t]["video_id"] for t in mos]
        assert all(a != b for a, b in zip(videos, videos[1:], strict=False))  # never the same video twice in a row
        swaps.update(t for t, s in order if s)
    # over S raters each clip is heard in each round exactly once
    assert set(seen.values()) == {1} and len(seen) == n_sys * n_vid * n_sys
    ab = [t for t in info if info[t]["kind"] == "ab"]
    assert all(swaps[t] == n_sys // 2 for t in ab)  # each A/B trial shown both ways equally often
    assert trial_order(store, 0, seed=1) == trial_order(store, 0, seed=1)
    assert trial_order(store, 0, seed=1) != trial_order(store, 0, seed=2)


def test_missing_audio_skips_that_video_and_says_why(tmp_path):
    config = small_config(tmp_path)
    (tmp_path / "bad" / "clip_b_foley.wav").unlink()
    lines = []
    assert create_study(tmp_path / "s", config, log=lines.append) == 1
    skipped = [line for line in lines if line.startswith("skipped")]
    assert len(skipped) == 1 and "clip_b.mp4" in skipped[0] and "'bad'" in skipped[0]
    assert len(Store(tmp_path / "s" / DB_NAME).query("SELECT * FROM videos")) == 2


def test_existing_study_is_refused_and_nothing_half_made(tmp_path, built_study):
    config = small_config(tmp_path)
    with pytest.raises(DataError, match="not empty"):
        create_study(built_study, config)
    # a failure in the middle leaves no study and no temporary folder
    broken = StudyConfig(videos=config.videos, systems=[SystemSpec("x", "system", tmp_path / "nowhere")])
    with pytest.raises(DataError):
        create_study(tmp_path / "never", broken, log=lambda _: None)
    assert not (tmp_path / "never").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_configs_are_one_clear_error(tmp_path):
    videos = tmp_path
    with pytest.raises(ConfigError, match="at least one system"):
        StudyConfig(videos=videos, systems=[SystemSpec("r", "reference", own_audio=True)])
    with pytest.raises(ConfigError, match="unique"):
        StudyConfig(videos=videos, systems=[SystemSpec("a", folder=videos), SystemSpec("a", folder=videos)])
    with pytest.raises(ConfigError, match="source"):
        StudyConfig(videos=videos, systems=[SystemSpec("a", folder=videos), SystemSpec("s", "anchor", kind="shuffled")])
    with pytest.raises(ConfigError, match="A/B pair"):
        StudyConfig(videos=videos, systems=[SystemSpec("a", folder=videos)], ab_pairs=[("a", "zzz")])
    (tmp_path / "s.yaml").write_text("videos: v\nsystems: {a: a}\nbogus: 1\n")
    with pytest.raises(ConfigError, match=r"s\.yaml: unknown keys \['bogus'\]"):
        config_from_yaml(tmp_path / "s.yaml")


def test_yaml_study(tmp_path):
    make_sources(tmp_path)
    (tmp_path / "s.yaml").write_text(
        "videos: videos\nsystems: {good: good, bad: bad}\nreference: {truth: videos}\n"
        "anchors: [shuffled, 'delayed:0.3@good']\nab: all\nraters: 3\nseed: 4\n"
        "questions: {sync: 'In time?'}\nchecks: {questions: [sync], min_pass: 0.5}\n"
    )
    config = config_from_yaml(tmp_path / "s.yaml")
    assert [(s.name, s.role, s.source) for s in config.systems] == [
        ("good", "system", None), ("bad", "system", None), ("truth", "reference", None),
        ("shuffled", "anchor", "truth"), ("delayed0.3", "anchor", "good"),
    ]  # fmt: skip
    assert config.ab_pairs == [("good", "bad")] and config.raters == ["rater1", "rater2", "rater3"]
    assert create_study(tmp_path / "st", config, log=lambda _: None) == 0
    store = Store(tmp_path / "st" / DB_NAME)
    assert store.meta()["questions"] == [{"key": "sync", "text": "In time?"}]
    delayed = store.query(
        "SELECT m.file FROM media m JOIN systems s ON s.id = m.system_id WHERE s.name = 'delayed0.3' LIMIT 1"
    )[0]
    wav = read_audio(tmp_path / "st" / MEDIA_DIR / delayed["file"], 16000)
    assert wav[0, : int(0.28 * 16000)].abs().max() < 0.02 < wav[0, int(0.35 * 16000) :].abs().max()


def test_rater_names_and_tokens(study):
    store = Store(study / DB_NAME)
    token = add_rater(store, "carol")
    assert store.rater_by_token(token)["name"] == "carol"
    assert len({r["token"] for r in store.raters()}) == 3
    with pytest.raises(DataError, match="already exists"):
        add_rater(store, "carol")
    with pytest.raises(ConfigError):
        add_rater(store, "../evil")
    assert store.rater_by_token("") is None and store.rater_by_token("x" * 500) is None
