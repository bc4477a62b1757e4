"""``--protocol av-benchmark``: av-benchmark's clip reading, its pairing and splits, MMAudio's Table 1 layout."""

import json

import numpy as np
import pytest
import torch

from foleygen.cli import main
from foleygen.eval.embedders import EMBEDDERS, EmbedderSpec
from foleygen.eval.protocol import (
    TABLE1_COLUMNS,
    imagebind_frame_times,
    load_audio_imagebind,
    load_clip_av_benchmark,
    sinc_resample,
)
from foleygen.eval.report import EvalConfig, evaluate


def _wav44(path, wavtools, seconds, dc=0.2):
    t = np.arange(int(44100 * seconds)) / 44100
    x = dc + 0.3 * np.sin(2 * np.pi * 1000 * t)
    wavtools.write_wav(path, x, 44100)
    return (np.clip(x, -1, 1) * 32767).astype("<i2") / 32768  # what the file holds (16-bit, as written)


def test_clip_reading_is_av_benchmarks(tmp_path, wavtools):
    """Whole file at its rate, mean removed, windowed-sinc resampled, cut to 8 s (padded when shorter)."""
    x = _wav44(tmp_path / "long.wav", wavtools, 9.0)
    clip = load_clip_av_benchmark(tmp_path / "long.wav", 16000, 8.0)
    want = sinc_resample(torch.from_numpy(x - x.mean()), 44100, 16000)[: 8 * 16000]
    assert clip.shape == (128000,) and clip.dtype == torch.float32
    np.testing.assert_allclose(clip.numpy(), want.numpy(), atol=1e-6)
    assert abs(float(clip.mean())) < 1e-3  # the 0.2 DC offset is gone
    _wav44(tmp_path / "short.wav", wavtools, 3.0)
    short = load_clip_av_benchmark(tmp_path / "short.wav", 16000, 8.0)
    assert short.shape == (128000,) and float(short[:47000].abs().max()) > 0.2 and not short[48100:].any()
    # PaSST: the 8 s clip at 32 kHz, zero-padded to PaSST's 10 s
    passt = load_clip_av_benchmark(tmp_path / "long.wav", 32000, 8.0, model="passt")
    assert passt.shape == (320000,) and float(passt[255000:256000].abs().max()) > 0.2 and not passt[256010:].any()
    # ImageBind's audio side: the whole file, not cut, DC kept
    whole = load_audio_imagebind(tmp_path / "long.wav", 16000)
    assert whole.shape == (144000,) and float(whole[1000:-1000].mean()) == pytest.approx(0.2, abs=1e-3)


def test_imagebind_frames_at_half_a_frame_per_second():
    assert imagebind_frame_times(8.0) == [0.0, 2.0, 4.0, 6.0]
    assert imagebind_frame_times(10.0) == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert imagebind_frame_times(2.0, 25.0) == [0.0, pytest.approx(1.96)]  # one 2-frame clip, the last frame


@pytest.fixture
def served(stand_in_embedder, monkeypatch):
    """The stand-in served as PANNs and PaSST too; VGGish left unconfigured."""
    for name in ("panns", "passt"):
        monkeypatch.setitem(EMBEDDERS, name, EmbedderSpec(name, None, "x", "tests", lambda p, **o: stand_in_embedder))
    for var in ("FOLEYGEN_VGGISH", "FOLEYGEN_IMAGEBIND"):
        monkeypatch.delenv(var, raising=False)
    return stand_in_embedder


def test_protocol_metrics_pairing_and_splits(folders, served):
    gen, ref = folders  # 4 pairs, one unpaired file on each side
    report = evaluate(gen, ref, config=EvalConfig(protocol="av-benchmark", quiet=True))
    m = report["metrics"]
    assert report["settings"]["protocol"] == "av-benchmark" and report["settings"]["duration"] == 8.0
    assert set(m) == {c[1] for c in TABLE1_COLUMNS if c[1]} | {"is-passt"}
    # PaSST's FD and IS on paired clips only (as av-benchmark); PANNs' on every clip (2 windows a clip)
    assert m["fad-passt"]["n_generated"] == 8 and m["fad-passt"]["n_reference"] == 8
    assert m["fad-panns"]["n_generated"] == 10 and m["fad-panns"]["n_reference"] == 10
    assert m["is-passt"]["n_generated"] == 4 and m["is-panns"]["n_generated"] == 5
    assert m["is-panns"]["splits"] == 5  # av-benchmark's 10 splits, capped by the clip count (ours: 2)
    assert m["kl-panns"]["n_pairs"] == 4
    # Missing models are rows that say so; the protocol's own set is optional (nothing named).
    assert "FOLEYGEN_VGGISH" in m["fad-vggish"]["skipped"] and m["ib-score"]["skipped"] == "needs --videos"
    assert not any(r.get("error") for r in m.values())


def test_protocol_reads_clips_differently_and_caches_apart(folders, served, tmp_path, wavtools):
    gen, ref = folders
    for i, path in enumerate(sorted(gen.glob("*.wav"))):  # 22.05 kHz with a DC offset: both steps differ
        wavtools.write_wav(path, 0.1 + wavtools.tone(310 + 40 * i, 1.0, 22050), 22050)
    cache = str(tmp_path / "cache")
    ours = evaluate(gen, ref, metrics=["fad-panns"], config=EvalConfig(duration=1.0, quiet=True, cache_dir=cache))
    bench = evaluate(
        gen,
        ref,
        metrics=["fad-panns"],
        config=EvalConfig(duration=1.0, quiet=True, cache_dir=cache, protocol="av-benchmark"),
    )
    assert bench["cache"]["hits"] == 0  # never served the other protocol's embeddings
    assert bench["metrics"]["fad-panns"]["value"] != pytest.approx(ours["metrics"]["fad-panns"]["value"], rel=1e-6)


def test_cli_prints_table_1(folders, served, tmp_path, capsys):
    gen, ref = folders
    out_json = tmp_path / "r.json"
    rc = main(
        ["eval", "--generated", str(gen), "--reference", str(ref), "--protocol", "av-benchmark"]
        + ["--json", str(out_json), "-q"]
    )
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    lines = printed.out.splitlines()
    heads = [c.strip() for c in lines[0].strip("|").split("|")]
    assert heads == ["Method"] + [f"{name}{'↓' if lower else '↑'}" for name, _, lower in TABLE1_COLUMNS]
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    report = json.loads(out_json.read_text())
    assert row[0] == "gen" and row[1] == f"{report['metrics']['fad-passt']['value']:.2f}"
    assert row[3] == row[7] == row[8] == "n/a"  # FD_VGG, IB-score (not configured) and DeSync
    assert any(line.startswith("- FD_VGG: vggish weights not configured") for line in lines)
    assert any(line.startswith("- DeSync: needs --videos") for line in lines)
    assert any(line.startswith("- IB-score: needs --videos") for line in lines)
    # Naming a metric under the protocol makes it required again.
    rc = main(
        ["eval", "--generated", str(gen), "--reference", str(ref), "--protocol", "av-benchmark"]
        + ["--metrics", "fad-vggish", "-q"]
    )
    assert rc == 1 and "error: fad-vggish" in capsys.readouterr().err
