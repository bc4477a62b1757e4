from dataclasses import dataclass, field

import pytest

from foleygen.config import KEYS_OF, SequenceConfig, from_dict, load_yaml, parse_overrides, to_dict
from foleygen.errors import ConfigError


def test_sequence_lengths_paper_setting():
    seq = SequenceConfig(duration=10.0, sample_rate=16000, frame_rate=50, fps=25)
    assert seq.num_samples == 160000
    assert seq.hop_length == 320
    assert seq.num_audio_frames == 500
    assert seq.num_visual_frames == 250


def test_sequence_rounding_and_partial_frames():
    seq = SequenceConfig(duration=4.01, sample_rate=16000, frame_rate=50, fps=29.97)
    assert seq.num_samples == 64160
    assert seq.num_audio_frames == 201  # ceil(64160 / 320)
    assert seq.num_visual_frames == round(4.01 * 29.97)


def test_sequence_rejects_bad_values():
    with pytest.raises(ConfigError):
        SequenceConfig(duration=0, sample_rate=16000, frame_rate=50, fps=25)
    with pytest.raises(ConfigError):
        _ = SequenceConfig(duration=1, sample_rate=16000, frame_rate=48, fps=25).hop_length


@dataclass
class Inner:
    dim: int = 4
    kind: str = "a"


@dataclass
class Outer:
    lr: float = 1e-3
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)
    maybe: int | None = None


def test_from_dict_round_trip_and_unknown_keys():
    obj = from_dict(Outer, {"lr": 1, "inner": {"dim": 8}, "tags": ["x"], "maybe": 3})
    assert obj == Outer(lr=1.0, inner=Inner(dim=8), tags=["x"], maybe=3)
    assert from_dict(Outer, to_dict(obj)) == obj
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(Outer, {"lrr": 1})
    with pytest.raises(ConfigError, match="expected an integer"):
        from_dict(Outer, {"inner": {"dim": "big"}})


def test_yaml_overrides_and_base(tmp_path):
    (tmp_path / "base.yaml").write_text("a: 1\nb: {c: 2, d: 3}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nb: {c: 5}\n")
    data = load_yaml(tmp_path / "child.yaml", ["b.d=7", "e=hello"])
    assert data == {"a": 1, "b": {"c": 5, "d": 7}, "e": "hello"}
    assert parse_overrides(["x.y=1e-3"]) == {"x": {"y": 1e-3}}
    with pytest.raises(ConfigError):
        parse_overrides(["novalue"])
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")


@dataclass
class Run:
    inner: Inner | None = None
    free: dict = field(default_factory=dict)
    partial: dict = field(default_factory=dict, metadata={KEYS_OF: Inner})


def test_unknown_names_are_one_line_with_the_nearest_valid_one():
    from foleygen.config import UnknownKeyError, check_override_keys, parse_config

    with pytest.raises(UnknownKeyError, match=r"^unknown section 'inne' in run\.yaml \(did you mean 'inner'\?\)$"):
        parse_config(Run, {"inne": {}}, "run.yaml")
    # below an optional section, and in a dict whose keys are another dataclass's fields
    with pytest.raises(UnknownKeyError, match=r"^unknown key 'inner\.dimm' \(did you mean 'inner\.dim'\?\)$"):
        parse_config(Run, {"inner": {"dimm": 3}})
    with pytest.raises(
        UnknownKeyError, match=r"unknown key 'partial\.knd' in x\.yaml \(did you mean 'partial\.kind'\?\)"
    ):
        parse_config(Run, {"partial": {"knd": "b"}}, "x.yaml")
    with pytest.raises(UnknownKeyError, match=r"'partial\.zzz' \(known: dim, kind\)"):  # nothing close
        parse_config(Run, {"partial": {"zzz": 1}})
    assert parse_config(Run, {"free": {"anything": 1}, "partial": {"dim": 2}}).partial == {"dim": 2}
    with pytest.raises(UnknownKeyError, match=r"unknown key 'inner\.dimm' in override 'inner\.dimm=3'"):
        check_override_keys(Run, ["inner.dim=2", "inner.dimm=3"])
    check_override_keys(Run, ["free.x.y=1", "partial.kind=b"])
    with pytest.raises(UnknownKeyError, match=r"'partial\.knd'"):
        check_override_keys(Run, ["partial.knd=b"])
    # other errors keep their text and gain the file's name
    with pytest.raises(ConfigError, match=r"^run\.yaml: inner\.dim: expected an integer"):
        parse_config(Run, {"inner": {"dim": "big"}}, "run.yaml")
