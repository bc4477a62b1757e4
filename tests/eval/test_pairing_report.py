"""Pairing, caching, skipped metrics and the report, with a stand-in embedder."""

import json

import numpy as np
import pytest

from foleygen.errors import ConfigError, DataError
from foleygen.eval.pairing import list_media, load_clip, pair_by_stem
from foleygen.eval.report import EvalConfig, evaluate, expand_metrics, render_markdown, write_report


def test_pairing_reports_unpaired(folders):
    gen, ref = folders
    pairing = pair_by_stem(gen, ref)
    assert pairing.stems == ["clip0", "clip1", "clip2", "clip3"]
    assert pairing.only_generated == ["extra_gen"] and pairing.only_reference == ["extra_ref"]


def test_pairing_prefers_audio_and_rejects_ambiguity(tmp_path, wavtools):
    write_wav, tone = wavtools.write_wav, wavtools.tone
    write_wav(tmp_path / "a.wav", tone(300, 0.1))
    (tmp_path / "a.mp4").write_bytes(b"")
    assert list_media(tmp_path)["a"].suffix == ".wav"
    write_wav(tmp_path / "a.flac", tone(300, 0.1))  # not really FLAC; the name alone is ambiguous
    with pytest.raises(DataError, match="share the stem 'a'"):
        list_media(tmp_path)
    with pytest.raises(DataError, match="folder not found"):
        pair_by_stem(tmp_path / "missing", tmp_path)


def test_load_clip_resamples_and_pads(tmp_path, wavtools):
    write_wav, tone = wavtools.write_wav, wavtools.tone
    write_wav(tmp_path / "x.wav", tone(1000, 0.5, 16000))
    wav = load_clip(tmp_path / "x.wav", 32000, 1.0)
    assert wav.shape == (32000,)
    assert float(wav[:15000].abs().max()) > 0.2 and float(wav[17000:].abs().max()) == 0.0
    spectrum = np.abs(np.fft.rfft(wav[:16000].numpy()))
    assert abs(np.argmax(spectrum) * 32000 / 16000 - 1000) < 5  # the tone stays at 1 kHz


def test_expand_metrics():
    assert expand_metrics(["kl", "fad-vggish"]) == ["fad-vggish", "kl-panns", "kl-passt"]
    assert expand_metrics(None)[0] == "fad-vggish" and "onsets" in expand_metrics(None)
    with pytest.raises(ConfigError, match="unknown metric 'fid'"):
        expand_metrics(["fid"])


def test_evaluate_with_stand_in_and_skips(folders, tmp_path, monkeypatch, stand_in_embedder):
    for var in ("FOLEYGEN_VGGISH", "FOLEYGEN_PANNS", "FOLEYGEN_PASST", "FOLEYGEN_IMAGEBIND"):
        monkeypatch.delenv(var, raising=False)
    gen, ref = folders
    cache = tmp_path / "cache"
    config = EvalConfig(duration=1.0, cache_dir=str(cache), quiet=True)
    report = evaluate(gen, ref, metrics=["fad", "kl", "ib"], config=config)
    m = report["metrics"]
    fad = m["fad-synthfoley"]
    assert fad["skipped"] is None and fad["value"] > 0 and fad["n_generated"] == 10 and fad["n_reference"] == 10
    # Reached through groups: optional, skipped with the reason.
    assert "FOLEYGEN_VGGISH" in m["fad-vggish"]["skipped"] and "vggish-10086976.pth" in m["fad-vggish"]["skipped"]
    assert "FOLEYGEN_PANNS" in m["kl-panns"]["skipped"]
    assert m["ib-score"]["skipped"] == "needs --videos"
    assert not any(r.get("error") for r in m.values()) and report["failed"] == []
    assert report["pairing"]["only_generated"] == ["extra_gen"]
    # The FAD group also reaches FD-aisfx, whose real weights ship in a package: it runs
    # unless the package is missing, and keeps its own cache folder.
    aisfx = m["fad-aisfx"]
    assert aisfx["value"] > 0 or "aisfx" in (aisfx["skipped"] or "")
    calls = stand_in_embedder.calls
    assert calls == 10 and len(list(cache.glob("synthfoley-*/*.npz"))) == 10
    # Second run: every embedding from the cache, same number.
    again = evaluate(gen, ref, metrics=["fad-synthfoley"], config=config)
    assert stand_in_embedder.calls == calls and again["cache"]["hits"] == 10
    assert again["metrics"]["fad-synthfoley"]["value"] == pytest.approx(fad["value"])
    # Identical folders: FAD ~ 0.
    same = evaluate(ref, ref, metrics=["fad-synthfoley"], config=EvalConfig(duration=1.0, quiet=True))
    assert same["metrics"]["fad-synthfoley"]["value"] == pytest.approx(0.0, abs=1e-6)
    md = render_markdown(report)
    assert "| FAD (SynthFoley classifier) |" in md and "| FAD (VGGish) | skipped |" in md
    assert "Unpaired (only generated, 1): extra_gen" in md
    write_report(report, tmp_path / "r.json", tmp_path / "r.md")
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["fad-synthfoley"]["value"] == fad["value"]


def test_kl_and_is_with_stand_in_classifier(folders, stand_in_embedder, monkeypatch):
    from foleygen.eval.embedders import EMBEDDERS, EmbedderSpec

    # Serve the stand-in as "panns" too, so KL/IS (which need logits) run on it.
    monkeypatch.setitem(EMBEDDERS, "panns", EmbedderSpec("panns", None, "x", "tests", lambda p, **o: stand_in_embedder))
    gen, ref = folders
    report = evaluate(gen, ref, metrics=["kl-panns", "is-panns"], config=EvalConfig(duration=1.0, quiet=True))
    kl, is_ = report["metrics"]["kl-panns"], report["metrics"]["is-panns"]
    assert kl["n_pairs"] == 4 and kl["value"] > 0 and kl["kl_gen_ref"] > 0 and kl["direction"] == "KL(ref||gen)"
    assert is_["n_generated"] == 5 and is_["splits"] == 2 and is_["value"] >= 1.0


def test_markdown_rows_have_three_cells():
    from foleygen.eval.report import render_markdown

    report = {
        "settings": {"duration": 8.0},
        "pairing": {"paired": 2, "generated": 2, "reference": 2, "only_generated": [], "only_reference": []},
        "metrics": {
            "onsets": {
                "value": 0.5,
                "skipped": None,
                "precision": 0.5,
                "recall": 0.5,
                "mean_abs_offset_ms": 3.0,
                "n_clips": 2,
                "class_accuracy": None,
            },
            "kl-passt": {"value": None, "skipped": "a|b: not found"},
        },
    }
    table = [line for line in render_markdown(report).splitlines() if line.startswith("|")]
    assert all(line.count("|") == 4 for line in table)


def test_only_needed_clips_are_embedded(folders, stand_in_embedder, monkeypatch):
    from foleygen.eval.embedders import EMBEDDERS, EmbedderSpec

    monkeypatch.setitem(EMBEDDERS, "panns", EmbedderSpec("panns", None, "x", "tests", lambda p, **o: stand_in_embedder))
    gen, ref = folders
    evaluate(gen, ref, metrics=["kl-panns"], config=EvalConfig(duration=1.0, quiet=True))
    assert stand_in_embedder.calls == 8  # the 4 pairs, not the unpaired files
    evaluate(gen, ref, metrics=["is-panns"], config=EvalConfig(duration=1.0, quiet=True))
    assert stand_in_embedder.calls == 8 + 5  # generated files only
