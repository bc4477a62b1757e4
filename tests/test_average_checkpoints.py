"""scripts/average_checkpoints.py: the weighted mean of checkpoints, written as a loadable checkpoint."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from script_loader import load_script

from foleygen import FoleyGen

ROOT = Path(__file__).resolve().parent.parent
avg = load_script("average_checkpoints")


def test_weighted_mean_keeps_dtypes_and_integer_tensors():
    a = {"w": torch.zeros(2, 2, dtype=torch.float16), "n": torch.tensor([1])}
    b = {"w": torch.ones(2, 2, dtype=torch.float16), "n": torch.tensor([7])}
    out = avg.average_state_dicts([a, b], [1.0, 3.0])  # normalised: 0.25 / 0.75
    assert out["w"].dtype == torch.float16 and torch.equal(out["w"], torch.full((2, 2), 0.75, dtype=torch.float16))
    assert torch.equal(out["n"], torch.tensor([7]))
    with pytest.raises(ValueError, match="different shapes"):
        avg.average_state_dicts([a, {"w": torch.ones(3), "n": b["n"]}], [1, 1])
    with pytest.raises(ValueError, match="other tensors"):
        avg.average_state_dicts([a, {"w": b["w"]}], [1, 1])
    with pytest.raises(ValueError, match="weights must be"):
        avg.average_state_dicts([a, b], [0, 0])


def test_cli_averages_two_models_into_a_loadable_checkpoint(tmp_path, capsys):
    FoleyGen.from_pretrained("debug").save_pretrained(tmp_path / "a")
    other = FoleyGen.from_pretrained("debug")
    with torch.no_grad():
        for p in other.lm.parameters():
            p.add_(torch.randn_like(p))  # another set of weights, same architecture
    other.save_pretrained(tmp_path / "b")
    rc = avg.main(
        [f"{tmp_path / 'a'}:0.5", f"{tmp_path / 'b'}:0.5", "--out", str(tmp_path / "soup"), "--temperature", "0.45"]
    )
    assert rc == 0
    sa, sb = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("a", "b"))
    soup = load_file(str(tmp_path / "soup" / "model.safetensors"))
    name = next(k for k in soup if k.startswith("lm.") and soup[k].is_floating_point() and sa[k].ne(sb[k]).any())
    assert torch.allclose(soup[name], (sa[name] + sb[name]) / 2, atol=1e-6)
    assert json.loads((tmp_path / "soup" / "config.json").read_text())["generation"]["temperature"] == 0.45
    model = FoleyGen.from_pretrained(tmp_path / "soup")
    assert model.generation.temperature == 0.45
    assert not (tmp_path / "soup.averaging").exists()


def test_cli_rejects_a_directory_that_is_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert avg.main([str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 1
    assert "not a FoleyGen checkpoint directory" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
