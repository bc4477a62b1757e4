import json

import pytest

from foleygen.data.manifest import load_manifest, read_synthfoley_dir
from foleygen.errors import DataError


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_vggsound_csv_naming_fallbacks_and_missing(tmp_path):
    video = tmp_path / "video"
    a = _touch(video / "AAAAAAAAAAA_000030.mp4")  # the common dump naming
    b = _touch(video / "sub" / "B-B_BBBBBBB_10_20.mp4")  # {id}_{start}_{end}, in a subfolder
    c = _touch(video / "CCCCCCCCCCC.mp4")  # the full video
    _touch(video / "EEEEEEEEEEE_000005.000_000015.000.mkv")
    csv = tmp_path / "vggsound.csv"
    csv.write_text(
        "AAAAAAAAAAA,30,dog barking,train\n"
        'B-B_BBBBBBB,10,"people, cheering",test\n'
        "CCCCCCCCCCC,40,rain,train\n"
        "DDDDDDDDDDD,0,missing clip,train\n"
        "EEEEEEEEEEE,5,engine,test\n"
    )
    m = load_manifest(csv)  # video/ beside the CSV is the default
    by_id = {e.id: e for e in m.entries}
    assert set(by_id) == {"AAAAAAAAAAA_000030", "B-B_BBBBBBB_000010", "CCCCCCCCCCC_000040", "EEEEEEEEEEE_000005"}
    assert by_id["AAAAAAAAAAA_000030"].path == a and by_id["AAAAAAAAAAA_000030"].start == 0.0
    assert by_id["B-B_BBBBBBB_000010"].path == b and by_id["B-B_BBBBBBB_000010"].label == "people, cheering"
    assert by_id["CCCCCCCCCCC_000040"].path == c and by_id["CCCCCCCCCCC_000040"].start == 40.0
    assert by_id["EEEEEEEEEEE_000005"].split == "test"
    assert m.missing == ["DDDDDDDDDDD_000000"]
    assert len(m.split("train")) == 2
    shards = [m.shard(i, 3) for i in range(3)]
    assert sorted(e.id for s in shards for e in s.entries) == sorted(by_id)


def test_generic_csv_and_jsonl(tmp_path):
    _touch(tmp_path / "clips" / "one.mp4")
    _touch(tmp_path / "clips" / "two.mp4")
    csv = tmp_path / "m.csv"
    csv.write_text("path,split,label\nclips/one.mp4,train,knock\nclips/two.mp4,val,\nclips/gone.mp4,train,x\n")
    m = load_manifest(csv)
    assert [(e.id, e.split, e.label) for e in m.entries] == [("one", "train", "knock"), ("two", "val", None)]
    assert m.entries[0].path == tmp_path / "clips" / "one.mp4"
    assert m.missing == ["gone"]
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(json.dumps({"path": str(tmp_path / "clips" / "one.mp4"), "split": "train", "start": 1.5}) + "\n")
    (e,) = load_manifest(jsonl).entries
    assert e.start == 1.5 and e.path.is_absolute()
    dup = tmp_path / "dup.csv"
    dup.write_text("path,split\nclips/one.mp4,train\nclips/one.mp4,val\n")
    with pytest.raises(DataError, match="appears twice"):
        load_manifest(dup)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "x.mp4"}\n')
    with pytest.raises(DataError, match="needs 'path' and 'split'"):
        load_manifest(bad)


def test_synthfoley_directory(tmp_path):
    for split, idx in (("train", 0), ("train", 1), ("val", 0)):
        d = tmp_path / split
        _touch(d / f"{idx:05d}.mp4")
        events = [{"time": 0.5, "class": "glass"}, {"time": 1.0, "class": "drum"},
                  {"time": 1.5, "class": "metal", "offscreen": True}]
        (d / f"{idx:05d}.json").write_text(json.dumps({"split": split, "seed": 1, "events": events}))
    (tmp_path / "train" / "00002.json").write_text(json.dumps({"split": "train", "events": []}))  # no video
    m = read_synthfoley_dir(tmp_path)
    assert [e.id for e in m.entries] == ["train/00000", "train/00001", "val/00000"]
    assert m.entries[0].label == "drum+glass"  # on-screen classes only: an off-screen sound is not seen
    assert m.missing == ["train/00002"]
    assert load_manifest(tmp_path).entries == m.entries
    with pytest.raises(DataError, match="no SynthFoley clips"):
        read_synthfoley_dir(tmp_path / "val" / "empty")
