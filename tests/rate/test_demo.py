"""``foleygen rate demo`` end to end on a tiny scale: 2 SynthFoley test clips of 0.4 s, the shipped model plus
one of the three ablation variants (a tiny debug model saved in ``run_ablation.py``'s layout; of the other
two, one never finished and one is absent, so both must be left out), served and answered over HTTP."""

from __future__ import annotations

import collections
import json
import threading

import pytest
import torch
from test_server import answer_body, request, tokens

from foleygen.api import FoleyGen
from foleygen.cli import main
from foleygen.io import probe, read_audio
from foleygen.rate.server import RateServer
from foleygen.rate.store import DB_NAME, MEDIA_DIR, Store


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("rate_demo")
    debug = FoleyGen.from_pretrained("debug", visual_attention="frame_specific", duration=0.4)
    debug.save_pretrained(root / "abl" / "frame_specific" / "final")
    (root / "abl" / "causal").mkdir()  # a run that never finished: no final/config.json; "full" is absent
    study = root / "study"
    args = ["rate", "demo", str(study), "--clips", "2", "--duration", "0.4", "--ablation", str(root / "abl"), "-q"]
    assert main(args) == 0
    return study


def test_demo_builds_the_documented_study(demo_study, capsys):
    store = Store(demo_study / DB_NAME)
    assert [(s["name"], s["role"]) for s in store.systems()] == [
        ("demo", "system"), ("frame_specific", "system"),
        ("original", "reference"), ("shuffled", "anchor"),
    ]  # fmt: skip
    assert [r["name"] for r in store.raters()] == ["rater1", "rater2"]
    assert store.meta()["title"] == "FoleyGen demo listening test" and store.integrity_ok()
    kinds = collections.Counter((r["kind"], r["is_check"]) for r in store.query("SELECT kind, is_check FROM trials"))
    # MOS: 2 clips x 4 soundtracks; A/B: the pair of systems per clip, + reference-vs-anchor checks
    assert kinds == {("mos", 0): 8, ("ab", 0): 2, ("ab", 1): 2}
    rows = store.query(
        """SELECT v.stem, s.name, m.file FROM media m JOIN videos v ON v.id = m.video_id
           JOIN systems s ON s.id = m.system_id"""
    )
    audio = {}
    for r in rows:
        info = probe(demo_study / MEDIA_DIR / r["file"])
        assert info.has_video and info.has_audio and info.duration == pytest.approx(0.4, abs=0.05)
        audio[r["stem"], r["name"]] = read_audio(demo_study / MEDIA_DIR / r["file"], 16000)
    # the anchor is the shipped model's audio for the other clip (2 clips: a swap)
    for mine, other in (("00000", "00001"), ("00001", "00000")):
        scale = float(audio[other, "demo"].abs().max())
        assert scale > 0 and torch.equal(audio[mine, "shuffled"], audio[other, "demo"])  # the same AAC encode
        assert float((audio[mine, "shuffled"] - audio[mine, "demo"]).abs().max()) > 0.1 * scale
    # the generated sources were only scaffolding: nothing is left beside the study
    assert sorted(p.name for p in demo_study.parent.iterdir()) == ["abl", "study"]
    # and a second demo into the same folder is refused at once, before anything is generated
    assert main(["rate", "demo", str(demo_study), "-q"]) == 1
    assert "already exists and is not empty" in capsys.readouterr().err


def test_demo_study_is_served_and_answered(demo_study, tmp_path):
    import shutil

    study = tmp_path / "study"
    shutil.copytree(demo_study, study)
    srv = RateServer(study, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        token = tokens(study)["rater1"]
        assert request(srv, "GET", f"/r/{token}")[0] == 200
        state = json.loads(request(srv, "GET", f"/api/r/{token}/state")[2])
        assert state["total"] == 12 and state["trial"]["kind"] == "mos"
        status, headers, body = request(srv, "GET", state["trial"]["clips"][0])
        assert status == 200 and headers["Content-Type"] == "video/mp4" and body[4:8] == b"ftyp"
        status, _, reply = request(srv, "POST", f"/api/r/{token}/answer", answer_body(state))
        assert status == 200 and json.loads(reply)["done"] == 1
    finally:
        srv.shutdown()
        srv.server_close()
    assert Store(study / DB_NAME).query("SELECT COUNT(*) FROM answers")[0][0] == 3  # quality, relevance, sync


def test_demo_needs_two_clips(tmp_path, capsys):
    assert main(["rate", "demo", str(tmp_path / "s"), "--clips", "1", "-q"]) == 1
    assert "at least 2 clips" in capsys.readouterr().err and not (tmp_path / "s").exists()
