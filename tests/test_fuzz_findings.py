"""What the fuzzers found (issue 37, item 2), one regression test per finding.

Each input below once ended in a traceback (or a crash) instead of one clear line; the fix is in the
module named. The fuzz targets themselves are in tests/fuzz_targets.py, the bounded CI run in
tests/test_fuzz.py.
"""

from __future__ import annotations

import pytest
import torch

from foleygen.checkpoint import build_from_config
from foleygen.codecs.compact import CompactCodec, CompactCodecConfig
from foleygen.config import from_dict, load_json
from foleygen.data.manifest import load_manifest
from foleygen.errors import CheckpointError, CodecError, ConfigError, DataError
from foleygen.lm import LMConfig


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# --------------------------------------------------------------- config.json (foleygen/config.py)
@pytest.mark.parametrize(
    "content, expected",
    [
        (b'{"a": "\xff\xfe"}', "not a text JSON file (byte"),
        (b"[1, 2, 3]", "expected a JSON object at the top, got list"),
        (b'"just text"', "expected a JSON object at the top, got str"),
        (b'{"_format_version": "2"}', "_format_version must be an integer, got '2'"),
        (b'{"_format_version": true}', "_format_version must be an integer, got True"),
        (b"[" * 100_000 + b"]" * 100_000, "cannot be read (RecursionError)"),
    ],
    ids=["non-utf8", "list", "string", "version-text", "version-bool", "deep-nesting"],
)
def test_load_json_says_what_is_wrong(tmp_path, content, expected):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_json(path)
    text = one_line(err)
    assert expected in text and "config.json" in text


@pytest.mark.parametrize("data", [[1, 2], "dim", 3, None])
def test_a_section_that_is_not_a_mapping(data):
    with pytest.raises(ConfigError, match=r"lm: expected a mapping, got"):
        from_dict(LMConfig, data, "lm")


# ---------------------------------------------------- impossible sizes (foleygen/checkpoint.py)
@pytest.mark.parametrize(
    "build",
    [lambda: torch.nn.Linear(-1, 3), lambda: torch.nn.Embedding(2**62, 2**62), lambda: 1 // 0],
    ids=["negative", "overflow", "zero-division"],
)
def test_impossible_sizes_are_one_checkpoint_error(tmp_path, build):
    with pytest.raises(CheckpointError) as err:
        build_from_config(build, "lm", tmp_path)
    text = one_line(err)
    assert "config.json lm: these values do not make a model" in text and str(tmp_path) in text


def test_a_possible_size_builds():
    layer = build_from_config(lambda: torch.nn.Linear(2, 3), "lm", "here")
    assert layer.weight.shape == (3, 2)


# ------------------------------------------------- num_codebooks (foleygen/codecs/base.py)
@pytest.mark.parametrize("value", [2.5, "2", None])
def test_num_codebooks_must_be_an_integer(value):
    codec = CompactCodec(CompactCodecConfig())
    with pytest.raises(CodecError, match="num_codebooks must be an integer"):
        codec.set_num_codebooks(value)


def test_num_codebooks_takes_numpy_integers():
    np = pytest.importorskip("numpy")
    codec = CompactCodec(CompactCodecConfig())
    codec.set_num_codebooks(np.int64(1))
    assert codec.num_codebooks == 1 and type(codec.num_codebooks) is int


# -------------------------------------------------------- manifests (foleygen/data/manifest.py)
@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("m.csv", b"path,split\n\xff\xfe.mp4,train\n", "not a text manifest (byte"),
        ("m.csv", b"path,split\n" + b'"' + b"a" * 200_000 + b'",train\n', "not a CSV manifest"),
        ("m.csv", b"path,split,start\nclip.mp4,train,-3\n", "start must be a number of seconds >= 0"),
        ("m.csv", b"path,split,start\nclip.mp4,train,inf\n", "start must be a number of seconds >= 0"),
        ("m.csv", b"path,split,start\nclip.mp4,train,soon\n", "start must be a number of seconds >= 0"),
        ("m.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
        ("m.csv", b"path,split\n" + b"d/" * 3000 + b"x.mp4,train\n", "cannot be used"),
    ],
    ids=["non-utf8", "field-too-large", "negative-start", "inf-start", "text-start", "deep-json", "long-path"],
)
def test_manifests_say_what_is_wrong(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_manifest(path)
    text = one_line(err)
    assert expected in text and name in text


def test_vggsound_csv_with_an_infinite_start(tmp_path):
    (tmp_path / "video").mkdir()
    path = tmp_path / "vggsound.csv"
    path.write_text("abcdefghijk,30,dog barking,train\nbcdefghijkl,inf,dog barking,train\n")
    with pytest.raises(DataError) as err:
        load_manifest(path)
    assert "line 2: start_seconds 'inf' is not a number" in one_line(err)


def test_a_model_larger_than_the_machine_is_refused_before_any_memory_is_taken(tmp_path):
    from foleygen.checkpoint import _memory_bytes

    have = _memory_bytes()
    if have is None:
        pytest.skip("this OS does not tell its memory size")
    rows = have // (4 * 1024) + 1  # one float32 embedding of 1024 columns, just over the machine's memory
    with pytest.raises(CheckpointError) as err:
        build_from_config(lambda: torch.nn.Embedding(rows, 1024), "lm", tmp_path)
    text = one_line(err)
    assert "GiB, more than this machine's" in text and str(tmp_path) in text


@pytest.mark.parametrize(
    "kind,section,key,value",
    [
        ("codec", "config", "num_codebooks", 2**63),  # found by the fuzzer: it built codebooks for ever
        ("codec", "config", "strides", [1] * 5000),
        ("lm", "lm", "num_layers", 10**9),
        ("lm", "lm", "num_codebooks", 0),
    ],
)
def test_absurd_block_counts_are_refused_at_once(tmp_path, kind, section, key, value):
    """A config asking for billions of layers or codebooks fails in one line before anything is built
    (each block is built one by one even on the meta device, so the memory check alone would hang)."""
    import json
    import shutil

    from foleygen.api import FoleyGen
    from foleygen.errors import MAX_REPEATS

    base = tmp_path / "ckpt"
    FoleyGen._debug().save_pretrained(base)
    config = base / ("codec" if kind == "codec" else ".") / "config.json"
    data = json.loads(config.read_text())
    data[section][key] = value
    config.write_text(json.dumps(data))
    with pytest.raises((CheckpointError, ConfigError)) as err:  # before the fix: building for ever
        FoleyGen.from_pretrained(base, device="cpu")
    text = one_line(err)
    assert f"between 1 and {MAX_REPEATS}" in text and key in text
    shutil.rmtree(base)


def test_a_last_frame_the_scaler_refuses_is_one_line(tmp_path):
    from fuzz_found import UNCONVERTIBLE_LAST_FRAME_MKV

    from foleygen.errors import MediaError
    from foleygen.io import read_frames

    path = tmp_path / "damaged.mkv"
    path.write_bytes(UNCONVERTIBLE_LAST_FRAME_MKV)
    with pytest.raises(MediaError) as err:
        read_frames(path, 10, size=32)
    text = one_line(err)
    assert str(path) in text and "last frame cannot be converted" in text


@pytest.mark.parametrize(
    "section,key,value",
    [  # kind a list: found by the fuzzer
        ("visual", "kind", ["compact"]),
        ("visual", "options", [1]),
        ("visual", "path", 3),
        ("visual", "fps", "fast"),
        ("codec", "path", 3),
    ],
)
def test_a_section_of_the_wrong_types_is_one_line(tmp_path, section, key, value):
    import json

    from foleygen.api import FoleyGen

    FoleyGen._debug().save_pretrained(tmp_path)
    config = tmp_path / "config.json"
    data = json.loads(config.read_text())
    data[section][key] = value
    config.write_text(json.dumps(data))
    with pytest.raises(CheckpointError) as err:
        FoleyGen.from_pretrained(tmp_path, device="cpu")
    text = one_line(err)
    assert f"{section}.{key} has the wrong type" in text and str(tmp_path) in text
