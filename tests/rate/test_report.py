"""The report on known answers: attention-check filtering, scores, tests (vs scipy), files, export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import stats as sp

from foleygen.rate.report import analyse, export, rater_checks, write_report
from foleygen.rate.store import DB_NAME, Store
from foleygen.rate.study import add_rater

# what each rater answers: MOS score per system (+ per-video jitter for carol), A/B: prefer good / reference
PROFILES = {
    "alice": {"original": 5, "good": 4, "bad": 2, "shuffled": 1},
    "bob": {"original": 1, "good": 3, "bad": 3, "shuffled": 5},  # inattentive: fails the checks
    "carol": {"original": 5, "good": 4, "bad": 3, "shuffled": 2},
}


def fill(study):
    store = Store(study / DB_NAME)
    add_rater(store, "carol")
    trials = store.query(
        """SELECT a.rater_id, r.name, t.id, t.kind, sa.name AS sys_a, sb.name AS sys_b, ma.video_id
           FROM assignments a JOIN raters r ON r.id = a.rater_id JOIN trials t ON t.id = a.trial_id
           JOIN media ma ON ma.id = t.media_a JOIN systems sa ON sa.id = ma.system_id
           LEFT JOIN media mb ON mb.id = t.media_b LEFT JOIN systems sb ON sb.id = mb.system_id"""
    )
    for t in trials:
        profile = PROFILES[t["name"]]
        if t["kind"] == "mos":
            jitter = (t["video_id"] % 2) if t["name"] == "carol" and t["sys_a"] == "good" else 0
            v = profile[t["sys_a"]] - jitter
            store.save_answers(t["rater_id"], t["id"], {"quality": v, "relevance": v, "sync": v}, 1000)
        else:
            prefer_a = profile[t["sys_a"]] >= profile[t["sys_b"]]
            store.save_answers(t["rater_id"], t["id"], {"preference": 0 if prefer_a else 1}, 1000)
    return store


def test_attention_checks_filter_the_inattentive_rater(study):
    store = fill(study)
    checks = rater_checks(store.answer_rows(), store.meta())
    # per rater: 3 videos x 2 check questions (relevance, sync) + 2 reference-vs-anchor A/B trials
    assert {n: (c["total"], c["correct"], c["passed"]) for n, c in checks.items()} == {
        "alice": (8, 8, True), "bob": (8, 0, False), "carol": (8, 8, True)
    }  # fmt: skip
    report = analyse(store)
    assert [n for n, r in report["raters"].items() if r["kept"]] == ["alice", "carol"]
    assert analyse(store, keep_all=True)["mos"]["quality"]["scores"]["good"]["n"] == 9


def test_scores_and_tests_match_scipy(study):
    store = fill(study)
    report = analyse(store)
    good = report["mos"]["sync"]["scores"]["good"]
    values = [4, 4, 4, 4 - 1, 4 - 0, 4 - 1]  # alice 3 videos, carol 3 videos (video ids 1, 2, 3)
    ref = sp.t.interval(0.95, 5, loc=np.mean(values), scale=sp.sem(values))
    assert good["n"] == 6 and good["mean"] == pytest.approx(np.mean(values))
    assert (good["ci_low"], good["ci_high"]) == pytest.approx(ref)
    tests = {(t["a"], t["b"]): t for t in report["mos_tests"]["sync"]}
    assert set(tests) == {("good", "bad"), ("good", "original"), ("bad", "original")}  # anchors not compared
    rows = [r for r in store.answer_rows() if r["kind"] == "mos" and r["question"] == "sync" and r["rater"] != "bob"]
    by = {(r["system_a"], r["rater"], r["video"]): r["value"] for r in rows}
    keys = sorted({(r["rater"], r["video"]) for r in rows})
    x, y = [by["good", *k] for k in keys], [by["bad", *k] for k in keys]
    expected = sp.wilcoxon(x, y, zero_method="wilcox", correction=False, method="approx").pvalue
    assert tests["good", "bad"]["p"] == pytest.approx(expected)
    ps = [t["p"] for t in report["mos_tests"]["sync"]]
    assert tests["good", "bad"]["p_holm"] >= tests["good", "bad"]["p"] and len(ps) == 3
    (ab,) = report["ab"]
    assert (ab["a"], ab["b"], ab["n"], ab["wins_a"]) == ("good", "bad", 6, 6)
    assert ab["p"] == pytest.approx(sp.binomtest(6, 6).pvalue) and ab["p_holm"] == ab["p"]


def test_report_files(study, tmp_path):
    fill(study)
    out = write_report(study, tmp_path / "rep")
    data = json.loads((out / "report.json").read_text())  # standard JSON: no NaN
    assert data["mos"]["quality"]["scores"]["original"]["mean"] == 5.0
    md = (out / "report.md").read_text()
    assert "| good | 3.67 ± " in md and "| shuffled (anchor) |" in md and "2 of 3 raters kept" in md
    tex = (out / "report.tex").read_text()
    assert tex.startswith(r"\begin{tabular}{lccc}") and r"\textbf{3.67 $\pm$" in tex
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_export_csv_and_json(study, tmp_path):
    store = fill(study)
    n = store.query("SELECT COUNT(*) FROM answers")[0][0]
    csv_path, json_path = export(study, tmp_path / "exp")
    rows = list(csv.DictReader(csv_path.open()))
    data = json.loads(json_path.read_text())
    assert len(rows) == len(data) == n
    ab = [r for r in data if r["kind"] == "ab" and not r["is_check"]]
    assert all(r["preferred"] == "good" for r in ab if r["rater"] != "bob")
    assert {r["rater_kept"] for r in data if r["rater"] == "bob"} == {False}
    assert rows[0]["answered_at_utc"].endswith("Z") and rows[0]["elapsed_ms"] == "1000"
