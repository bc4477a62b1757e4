"""``foleygen eval`` end to end on tiny folders, and the SynthFoley onset metrics through evaluate()."""

import json

import numpy as np
import pytest

from foleygen.cli import main
from foleygen.eval.report import EvalConfig, evaluate


def test_cli_end_to_end(folders, tmp_path, capsys, monkeypatch, stand_in_embedder):
    monkeypatch.delenv("FOLEYGEN_PASST", raising=False)
    monkeypatch.delenv("FOLEYGEN_PANNS", raising=False)
    gen, ref = folders
    out_json, out_md = tmp_path / "out" / "r.json", tmp_path / "out" / "r.md"
    rc = main(
        [
            "eval",
            "--generated",
            str(gen),
            "--reference",
            str(ref),
            "--metrics",
            "fad-synthfoley",
            "kl",  # a group: its members without weights are optional, skipped with the reason
            "--duration",
            "1",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
            "--cache",
            str(tmp_path / "c"),
            "-q",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr()
    assert "| FAD (SynthFoley classifier) |" in printed.out and "| KL (PaSST) | skipped |" in printed.out
    assert printed.err == ""  # quiet: no progress, no chatter
    report = json.loads(out_json.read_text())
    assert report["settings"]["duration"] == 1.0
    assert report["metrics"]["fad-synthfoley"]["value"] > 0
    assert "FOLEYGEN_PASST" in report["metrics"]["kl-passt"]["skipped"]
    assert report["pairing"]["only_reference"] == ["extra_ref"]
    assert out_md.read_text() == printed.out
    assert len(list((tmp_path / "c").rglob("*.npz"))) == 10


def test_a_metric_asked_for_by_name_that_cannot_run_is_an_error(
    folders, tmp_path, capsys, monkeypatch, stand_in_embedder
):
    """Issue 40 item 8: named and unable to run -> one line, exit 1; the other metrics still computed."""
    monkeypatch.delenv("FOLEYGEN_PASST", raising=False)
    gen, ref = folders
    out_json = tmp_path / "r.json"
    argv = ["eval", "--generated", str(gen), "--reference", str(ref), "--duration", "1", "--json", str(out_json)]
    rc = main([*argv, "--metrics", "fad-synthfoley", "kl-passt", "-q"])
    printed = capsys.readouterr()
    lines = printed.err.strip().splitlines()
    assert rc == 1 and len(lines) == 1
    assert (
        lines[0].startswith("foleygen eval: error: kl-passt: asked for but cannot run") and "FOLEYGEN_PASST" in lines[0]
    )
    report = json.loads(out_json.read_text())
    assert report["metrics"]["fad-synthfoley"]["value"] > 0  # computed and reported all the same
    assert (
        report["metrics"]["kl-passt"]["skipped"] is None and "FOLEYGEN_PASST" in report["metrics"]["kl-passt"]["error"]
    )
    assert "| KL (PaSST) | error |" in printed.out
    # Named metrics that need an input not given are errors too; through a group they are skipped.
    assert main([*argv, "--metrics", "ib-score", "-q"]) == 1
    assert "error: ib-score: asked for but cannot run: needs --videos" in capsys.readouterr().err
    assert main([*argv, "--metrics", "fad-synthfoley", "ib", "-q"]) == 0
    assert json.loads(out_json.read_text())["metrics"]["ib-score"]["skipped"] == "needs --videos"


def test_cli_flag_points_at_missing_file(folders, tmp_path, capsys, stand_in_embedder):
    gen, ref = folders
    rc = main(
        [
            "eval",
            "--generated",
            str(gen),
            "--reference",
            str(ref),
            "--metrics",
            "fad-vggish",
            "--vggish",
            str(tmp_path / "vggish.pth"),
            "--duration",
            "1",
        ]
    )
    assert rc == 1  # weights pointed at by a flag that cannot be read: an error, not a quiet skip
    err = capsys.readouterr().err
    assert "error: fad-vggish" in err and "vggish.pth: vggish weights file not found" in err
    # The flag alone (metrics from the default group) makes fad-vggish required too.
    rc = main(
        ["eval", "--generated", str(gen), "--reference", str(ref), "--metrics", "fad"]
        + ["--vggish", str(tmp_path / "vggish.pth"), "--duration", "1", "-q"]
    )
    assert rc == 1 and "error: fad-vggish" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, capsys):
    rc = main(["eval", "--generated", str(tmp_path / "nope"), "--reference", str(tmp_path), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "nope: folder not found" in err
    rc = main(["eval", "--generated", str(tmp_path), "--reference", str(tmp_path), "--metrics", "fid", "-q"])
    assert rc == 1 and "unknown metric 'fid'" in capsys.readouterr().err


def _clicks(times, seconds=2.0, sr=16000):
    wav = np.zeros(int(seconds * sr))
    for t in times:
        i = int(t * sr)
        n = np.arange(1600)
        wav[i : i + 1600] = 0.6 * np.exp(-n / 300) * np.sin(2 * np.pi * 900 * n / sr)
    return wav


def test_onset_metrics_from_events(tmp_path, wavtools):
    gen, ref, events = tmp_path / "gen", tmp_path / "ref", tmp_path / "events"
    for d in (gen, ref, events):
        d.mkdir()
    truth = {"a": [0.3, 0.9, 1.5], "b": [0.5, 1.2]}
    played = {"a": [0.3, 0.9, 1.5], "b": [0.5]}  # b misses its second impact
    for stem in truth:
        wavtools.write_wav(gen / f"{stem}.wav", _clicks(played[stem]))
        wavtools.write_wav(ref / f"{stem}.wav", _clicks(truth[stem]))
        meta = {
            "duration": 2.0,
            "fps": 25.0,
            "sample_rate": 16000,
            "events": [{"time": t, "kind": "impact", "class": "wood"} for t in truth[stem]],
        }
        (events / f"{stem}.json").write_text(json.dumps(meta))
    report = evaluate(gen, ref, events=events, metrics=["onsets"], config=EvalConfig(duration=8.0, quiet=True))
    r = report["metrics"]["onsets"]
    assert r["n_clips"] == 2 and r["hits"] == 4 and r["misses"] == 1 and r["false_alarms"] == 0
    assert r["value"] == pytest.approx(r["f1"]) and r["f1"] == pytest.approx(2 * 1.0 * 0.8 / 1.8)
    # Class accuracy comes from the built-in classifier when its assets are installed, else it says why not.
    assert r["class_accuracy"] is not None or "event classifier unavailable" in r["class_accuracy_skipped"]


def test_cli_with_event_classifier_checkpoint(tmp_path, wavtools, capsys):
    """The real SynthFoley classifier class (tiny, random) through --synthfoley: FAD and class accuracy."""
    from foleygen.eval.event_classifier import (
        EventClassifier,
        EventClassifierConfig,
        class_accuracy,
        load_event_classifier,
    )

    classifier = EventClassifier(EventClassifierConfig(channels=(4, 4, 4, 4), embedding_dim=8)).eval()
    classifier.save_pretrained(tmp_path / "clf")
    gen, ref, events = tmp_path / "gen", tmp_path / "ref", tmp_path / "events"
    for d in (gen, ref, events):
        d.mkdir()
    truth = {"a": [0.3, 0.9, 1.5], "b": [0.5, 1.2], "c": [0.7]}
    for stem, times in truth.items():
        wavtools.write_wav(gen / f"{stem}.wav", _clicks([t + 0.01 for t in times]))
        wavtools.write_wav(ref / f"{stem}.wav", _clicks(times))
        meta = {
            "duration": 2.0,
            "sample_rate": 16000,
            "events": [{"time": t, "kind": "impact", "class": "metal"} for t in times],
        }
        (events / f"{stem}.json").write_text(json.dumps(meta))
    out = tmp_path / "r.json"
    rc = main(
        [
            "eval",
            "--generated",
            str(gen),
            "--reference",
            str(ref),
            "--events",
            str(events),
            "--metrics",
            "fad-synthfoley",
            "onsets",
            "--synthfoley",
            str(tmp_path / "clf"),
            "--duration",
            "2",
            "--json",
            str(out),
            "-q",
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    fad, onset = report["metrics"]["fad-synthfoley"], report["metrics"]["onsets"]
    # 2 s clips tiled by 0.3 s windows every 0.15 s -> 13 windows per clip, 8-d embeddings.
    assert fad["embedding_dim"] == 8 and fad["n_generated"] == 3 * 13 and fad["value"] > 0
    loaded = load_event_classifier(tmp_path / "clf")
    want = [
        class_accuracy(
            _clicks([t + 0.01 for t in truth[s]]).astype(np.float32),
            16000,
            json.loads((events / f"{s}.json").read_text())["events"],
            loaded,
        )
        for s in sorted(truth)
    ]
    assert onset["class_total"] == sum(w.total for w in want) > 0
    assert onset["class_correct"] == sum(w.correct for w in want)
    assert onset["classes"] == list(loaded.classes)
    assert "class accuracy" in capsys.readouterr().out


def _builtin_classifier_installed():
    from foleygen.eval.event_classifier import DEFAULT_DIR

    return (DEFAULT_DIR / "model.safetensors").is_file()


@pytest.mark.skipif(
    not _builtin_classifier_installed(),
    reason="foleygen/assets/event_classifier not installed yet (trained by its own script)",
)
def test_cli_with_builtin_classifier(folders, tmp_path, capsys):
    """The default: fad-synthfoley and class accuracy from the built-in classifier, no flags, no download."""
    gen, ref = folders
    events = tmp_path / "events"
    events.mkdir()
    for i in range(4):
        meta = {"duration": 1.0, "sample_rate": 16000, "events": [{"time": 0.0, "kind": "impact", "class": "metal"}]}
        (events / f"clip{i}.json").write_text(json.dumps(meta))
    out = tmp_path / "r.json"
    rc = main(
        [
            "eval",
            "--generated",
            str(gen),
            "--reference",
            str(ref),
            "--events",
            str(events),
            "--metrics",
            "fad-synthfoley",
            "onsets",
            "--duration",
            "1",
            "--json",
            str(out),
            "-q",
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    fad = report["metrics"]["fad-synthfoley"]
    assert fad["skipped"] is None and fad["value"] >= 0 and fad["embedding_dim"] > 0
    assert "class_accuracy_skipped" not in report["metrics"]["onsets"]
