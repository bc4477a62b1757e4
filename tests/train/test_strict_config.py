"""A typo anywhere in a run config stops the run with one line naming the nearest valid name."""

from pathlib import Path

import foleygen_tiny_task  # noqa: F401 -- registers the "tiny_test" task
import pytest
import yaml

from foleygen.cli import main
from foleygen.config import UnknownKeyError, load_yaml
from foleygen.errors import ConfigError
from foleygen.train.task import parse_run_config
from foleygen.train.trainer import Trainer, train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def tiny(**sections):
    cfg = {
        "task": "tiny_test",
        "task_module": "foleygen_tiny_task",
        "tiny": {"n": 16},
        "train": {"steps": 2, "batch_size": 4, "tensorboard": False, "device": "cpu"},
    }
    cfg.update(sections)
    return cfg


def test_python_a_misspelled_section_names_the_right_one(tmp_path):
    cfg = tiny(trian={"lr": 1.0})
    with pytest.raises(UnknownKeyError, match=r"^unknown section 'trian' \(did you mean 'train'\?\)$"):
        train(cfg, out_dir=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()  # nothing started
    with pytest.raises(ConfigError, match=r"unknown section 'trian' in run\.yaml \(did you mean 'train'\?\)"):
        Trainer(cfg, out_dir=tmp_path / "run", quiet=True, source="run.yaml")


def test_python_a_misspelled_nested_key_names_its_path():
    with pytest.raises(UnknownKeyError, match=r"unknown key 'train\.lrr' \(did you mean 'train\.lr'\?\)"):
        Trainer(tiny(train={"lrr": 1.0, "device": "cpu"}), quiet=True)
    with pytest.raises(UnknownKeyError, match=r"unknown key 'tiny\.hiden' \(did you mean 'tiny\.hidden'\?\)"):
        parse_run_config(tiny(tiny={"hiden": 8}))


def test_every_task_checks_its_own_sections():
    lm = load_yaml(CONFIGS / "tiny_test.yaml", ["lm.dimm=64", "data.cache=x"])
    with pytest.raises(UnknownKeyError, match=r"'lm\.dimm' in tiny_test\.yaml \(did you mean 'lm\.dim'\?\)"):
        parse_run_config(lm, "tiny_test.yaml")
    codec = load_yaml(CONFIGS / "codec_tiny.yaml", ["codec_train.w_mell=2"])
    with pytest.raises(UnknownKeyError, match=r"'codec_train\.w_mell' \(did you mean 'codec_train\.w_mel'\?\)"):
        parse_run_config(codec)
    with pytest.raises(UnknownKeyError, match=r"unknown section 'modle' \(did you mean 'model'\?\)"):
        parse_run_config({**load_yaml(CONFIGS / "codec_tiny.yaml"), "modle": {}})
    with pytest.raises(ConfigError, match=r"unknown task 'cdec' \(did you mean 'codec'\?\)"):
        parse_run_config({"task": "cdec"})


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses_strictly(path):
    cfg = load_yaml(path)
    if isinstance(cfg.get("data"), dict) and cfg["data"].get("cache", "") is None:
        cfg["data"]["cache"] = "any"  # filled on the command line (data.cache=...)
    assert parse_run_config(cfg, str(path)).task in ("lm", "codec")


def _cli_error(capsys, argv):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    return err


def test_cli_typos_exit_1_with_one_line(tmp_path, capsys):
    good = tiny()
    out = ["--out", str(tmp_path / "run"), "-q"]
    section = tmp_path / "section.yaml"
    section.write_text(yaml.safe_dump({**good, "trian": {"lr": 1.0}}))
    err = _cli_error(capsys, ["train", str(section), *out])
    assert f"unknown section 'trian' in {section} (did you mean 'train'?)" in err
    nested = tmp_path / "nested.yaml"
    nested.write_text(yaml.safe_dump({**good, "train": {**good["train"], "stepss": 3}}))
    err = _cli_error(capsys, ["train", str(nested), *out])
    assert f"unknown key 'train.stepss' in {nested} (did you mean 'train.steps'?)" in err
    fine = tmp_path / "fine.yaml"
    fine.write_text(yaml.safe_dump(good))
    err = _cli_error(capsys, ["train", str(fine), "trian.lr=1", *out])
    assert "unknown section 'trian' in override 'trian.lr=1' (did you mean 'train'?)" in err
    err = _cli_error(capsys, ["train", str(fine), *out, "train.warmup_step=1"])  # a late override too
    assert (
        "unknown key 'train.warmup_step' in override 'train.warmup_step=1' (did you mean 'train.warmup_steps'?)" in err
    )
    assert not (tmp_path / "run").exists()
    assert main(["train", str(fine), "train.steps=1", *out]) == 0  # the same file, spelled right, trains
