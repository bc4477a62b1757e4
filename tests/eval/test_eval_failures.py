"""One bad file among many (issue 39): one line for it, its stem out of every metric, the rest scored, exit 1."""

import json

import numpy as np
import pytest

from foleygen.cli import main
from foleygen.eval.report import EvalConfig, evaluate, render_markdown

STEMS = ("a", "b_cursed", "c", "d")


@pytest.fixture
def four(tmp_path, wavtools):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    for i, stem in enumerate(STEMS):
        wavtools.write_wav(gen / f"{stem}.wav", wavtools.tone(330 * (i + 1) * 1.1, 1.0))
        wavtools.write_wav(ref / f"{stem}.wav", wavtools.tone(330 * (i + 1), 1.0))
    return gen, ref


def _without(folder, stem, tmp_path, name):
    """A copy of ``folder`` without ``stem``: what the metrics must equal once the stem is excluded."""
    out = tmp_path / name
    out.mkdir()
    for path in folder.iterdir():
        if path.stem != stem:
            (out / path.name).write_bytes(path.read_bytes())
    return out


def _eval_argv(gen, ref, out_json, *metrics):
    return ["eval", "--generated", str(gen), "--reference", str(ref), "--metrics", *metrics] + [
        "--duration",
        "1",
        "--json",
        str(out_json),
        "-q",
    ]


def test_an_arbitrary_exception_in_one_file_leaves_the_others_scored(
    four, tmp_path, capsys, monkeypatch, stand_in_embedder
):
    from foleygen.eval import report as report_module

    gen, ref = four
    original = report_module.load_clip

    def sometimes_broken(path, sample_rate, duration):
        if "cursed" in str(path) and "gen" in str(path):
            raise ZeroDivisionError("the stage blew up")
        return original(path, sample_rate, duration)

    monkeypatch.setattr(report_module, "load_clip", sometimes_broken)
    out_json = tmp_path / "r.json"
    rc = main(_eval_argv(gen, ref, out_json, "fad-synthfoley"))
    printed = capsys.readouterr()
    lines = printed.err.strip().splitlines()
    assert rc == 1 and len(lines) == 2
    assert lines[0].startswith(f"foleygen eval: failed: {gen / 'b_cursed.wav'}: unexpected ZeroDivisionError")
    assert "the stage blew up" in lines[0] and "--debug" in lines[0]
    assert "1 file(s) failed" in lines[1]
    report = json.loads(out_json.read_text())
    fad = report["metrics"]["fad-synthfoley"]
    # The three good stems on each side (two windows each); the bad stem's reference is left out too.
    assert fad["n_generated"] == 6 and fad["n_reference"] == 6
    assert report["excluded_stems"] == ["b_cursed"]
    assert [e["file"] for e in report["failed"]] == [str(gen / "b_cursed.wav")]
    assert report["failed"][0]["stage"] == "synthfoley"
    assert "Excluded from every metric (1 file(s) failed" in printed.out and "b_cursed.wav" in printed.out
    # Exactly the value of the same folders without that stem.
    monkeypatch.setattr(report_module, "load_clip", original)
    clean = evaluate(
        _without(gen, "b_cursed", tmp_path, "g2"),
        _without(ref, "b_cursed", tmp_path, "r2"),
        metrics=["fad-synthfoley"],
        config=EvalConfig(duration=1.0, quiet=True),
    )
    assert clean["metrics"]["fad-synthfoley"]["value"] == pytest.approx(fad["value"], rel=1e-9)
    assert clean["failed"] == [] and clean["excluded_stems"] == []


def test_debug_shows_the_traceback_and_still_goes_on(four, tmp_path, capsys, monkeypatch, stand_in_embedder):
    from foleygen.eval import report as report_module

    gen, ref = four
    original = report_module.load_clip

    def sometimes_broken(path, sample_rate, duration):
        if "cursed" in str(path):
            raise ZeroDivisionError("the stage blew up")
        return original(path, sample_rate, duration)

    monkeypatch.setattr(report_module, "load_clip", sometimes_broken)
    out_json = tmp_path / "r.json"
    assert main([*_eval_argv(gen, ref, out_json, "fad-synthfoley"), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "sometimes_broken" in err
    assert json.loads(out_json.read_text())["metrics"]["fad-synthfoley"]["n_generated"] == 6


def test_a_truly_bad_file_is_one_line(four, tmp_path, capsys, stand_in_embedder):
    gen, ref = four
    (gen / "b_cursed.wav").write_bytes(np.random.default_rng(0).bytes(5000))  # random bytes named .wav
    out_json = tmp_path / "r.json"
    rc = main(_eval_argv(gen, ref, out_json, "fad-synthfoley"))
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 2 and lines[0].startswith(f"foleygen eval: failed: {gen / 'b_cursed.wav'}: ")
    assert "Traceback" not in lines[0] and "unexpected" not in lines[0]  # ours: a MediaError, said plainly
    report = json.loads(out_json.read_text())
    assert report["metrics"]["fad-synthfoley"]["n_generated"] == 6 and report["excluded_stems"] == ["b_cursed"]


def test_each_bad_file_is_reported_once_across_models(four, tmp_path, monkeypatch, stand_in_embedder):
    """Two models read the same bad file: one line, not one per model; KL and IS leave its stem out."""
    from foleygen.eval.embedders import EMBEDDERS, EmbedderSpec

    monkeypatch.setitem(EMBEDDERS, "panns", EmbedderSpec("panns", None, "x", "tests", lambda p, **o: stand_in_embedder))
    gen, ref = four
    (ref / "c.wav").write_bytes(b"RIFF not really")
    seen = []
    report = evaluate(
        gen,
        ref,
        metrics=["fad-synthfoley", "kl-panns", "is-panns"],
        config=EvalConfig(duration=1.0, quiet=True),
        on_failure=seen.append,
    )
    assert len(seen) == 1 and seen[0].startswith(str(ref / "c.wav")) and len(report["failed"]) == 1
    m = report["metrics"]
    assert m["kl-panns"]["n_pairs"] == 3 and m["is-panns"]["n_generated"] == 3
    assert m["fad-synthfoley"]["n_reference"] == 6 and m["fad-synthfoley"]["n_generated"] == 6
    assert "c.wav" in render_markdown(report)


def _clicks(times, seconds=2.0, sr=16000):
    wav = np.zeros(int(seconds * sr))
    n = np.arange(1600)
    for t in times:
        i = int(t * sr)
        wav[i : i + 1600] = 0.6 * np.exp(-n / 300) * np.sin(2 * np.pi * 900 * n / sr)
    return wav


def test_onset_loop_goes_on_after_a_bad_events_file(tmp_path, wavtools, capsys):
    gen, ref, events = tmp_path / "gen", tmp_path / "ref", tmp_path / "events"
    for d in (gen, ref, events):
        d.mkdir()
    for stem in ("a", "b", "c"):
        wavtools.write_wav(gen / f"{stem}.wav", _clicks([0.2, 0.7]))
        wavtools.write_wav(ref / f"{stem}.wav", _clicks([0.2, 0.7]))
        meta = {
            "duration": 2.0,
            "sample_rate": 16000,
            "events": [{"time": t, "kind": "impact", "class": "wood"} for t in (0.2, 0.7)],
        }
        (events / f"{stem}.json").write_text(json.dumps(meta))
    (events / "b.json").write_bytes(b"\xff\xfe{ not json")
    out_json = tmp_path / "r.json"
    rc = main([*_eval_argv(gen, ref, out_json, "onsets"), "--events", str(events)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 2 and lines[0].startswith(f"foleygen eval: failed: {events / 'b.json'}: ")
    assert "cannot read events" in lines[0]
    onsets = json.loads(out_json.read_text())["metrics"]["onsets"]
    assert onsets["n_clips"] == 2 and onsets["hits"] == 4


def test_two_files_for_one_stem_leave_that_stem_out(four, tmp_path, capsys, wavtools, stand_in_embedder):
    """Ambiguous pairing (b_cursed.wav and b_cursed.flac): one line, the stem out, the others scored."""
    gen, ref = four
    wavtools.write_wav(gen / "b_cursed.flac", wavtools.tone(500, 1.0))  # not FLAC inside; the name decides
    out_json = tmp_path / "r.json"
    rc = main(_eval_argv(gen, ref, out_json, "fad-synthfoley"))
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 2
    assert lines[0].startswith("foleygen eval: failed: ") and "two files share the stem 'b_cursed'" in lines[0]
    report = json.loads(out_json.read_text())
    assert report["excluded_stems"] == ["b_cursed"] and report["failed"][0]["stage"] == "pairing"
    fad = report["metrics"]["fad-synthfoley"]
    assert fad["n_generated"] == 6 and fad["n_reference"] == 6
