"""``foleygen rate`` end to end in-process: create (flags and bad input), raters, export, report."""

from __future__ import annotations

import json

from rate_helpers import make_sources

from foleygen.cli import main
from foleygen.rate.store import DB_NAME, Store


def test_create_raters_export_report(tmp_path, capsys):
    make_sources(tmp_path)
    study = tmp_path / "st"
    code = main([
        "rate", "create", str(study), "--videos", str(tmp_path / "videos"), "--system", f"good={tmp_path / 'good'}",
        "--system", f"bad={tmp_path / 'bad'}", "--reference", "original=videos", "--anchor", "shuffled",
        "--anchor", "delayed:0.4@good", "--ab-all", "--raters", "ann,ben", "--question", "sync=Is it in time?", "-q",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "admin: http://127.0.0.1:8000/admin/" in out and "ann: http://127.0.0.1:8000/r/" in out
    store = Store(study / DB_NAME)
    assert [s["name"] for s in store.systems()] == ["good", "bad", "original", "shuffled", "delayed0.4"]
    assert store.meta()["questions"] == [{"key": "sync", "text": "Is it in time?"}]
    assert main(["rate", "raters", str(study), "--add", "cat", "--base-url", "http://host:9"]) == 0
    assert "cat: http://host:9/r/" in capsys.readouterr().out
    rid = store.rater_by_token(next(r["token"] for r in store.raters() if r["name"] == "cat"))["id"]
    a = store.assignment(rid, 0)
    store.save_answers(rid, a["trial_id"], {"sync": 4}, 10)
    assert main(["rate", "export", str(study)]) == 0
    data = json.loads((study / "export" / "answers.json").read_text())
    assert len(data) == 1 and data[0]["rater"] == "cat" and data[0]["value"] == 4
    assert main(["rate", "report", str(study), "--out", str(tmp_path / "rep")]) == 0
    assert "| system | sync |" in capsys.readouterr().out
    assert (tmp_path / "rep" / "report.png").is_file()


def test_bad_input_is_one_line_and_exit_1(tmp_path, capsys):
    make_sources(tmp_path)
    (tmp_path / "good" / "clip_c.wav").unlink()
    study = tmp_path / "st"
    args = ["rate", "create", str(study), "--videos", str(tmp_path / "videos"), "--system", f"good={tmp_path / 'good'}"]
    assert main([*args, "-q"]) == 1  # the study is made from the other two videos, the skip is an error line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("foleygen rate create: error: skipped clip_c.mp4")
    assert len(Store(study / DB_NAME).query("SELECT * FROM videos")) == 2
    assert main(args) == 1  # exists now
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"foleygen rate: error: {study}: already exists and is not empty; choose a new study folder"]
    assert main(["rate", "create", str(tmp_path / "x"), "--system", "nodir"]) == 1
    assert "--videos" in capsys.readouterr().err
    assert main(["rate", "serve", str(tmp_path / "nowhere")]) == 1
    assert "no study database here" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
