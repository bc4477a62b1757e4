"""Checkpoints holding pickled Python objects (issue 40, item 5): every loader refuses them with one
``CheckpointError`` line that names the file and never advises ``weights_only=False``."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch

from foleygen.checkpoint import safe_torch_load
from foleygen.errors import CheckpointError, one_line

transformers = pytest.importorskip("transformers")

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, image_size=32)


def _pickled(path: Path) -> Path:
    # Not tensors: a weights-only load must refuse these (nothing executes, but nothing is built either).
    torch.save({"counts": collections.Counter(a=1), "where": Path("/etc")}, path)
    return path


def _assert_refused(err: CheckpointError, name: str) -> None:
    line = one_line(err)
    assert "\n" not in line and name in line
    assert "pickled Python objects (pathlib.PosixPath)" in line
    assert "weights_only" not in line and "trust" not in line and "\x1b" not in line


@pytest.mark.parametrize(
    "kind, config",
    [
        ("clip", lambda: transformers.CLIPVisionConfig(projection_dim=24, patch_size=8, **TINY)),
        ("vit", lambda: transformers.ViTConfig(patch_size=8, **TINY)),
        ("videomae", lambda: transformers.VideoMAEConfig(patch_size=8, num_frames=4, **TINY)),
    ],
)
def test_hf_folders_with_a_pickled_weights_file(tmp_path, kind, config):
    from foleygen.vision import load_visual_encoder

    folder = tmp_path / kind
    config().save_pretrained(folder)
    _pickled(folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as err:
        load_visual_encoder(kind, folder)
    _assert_refused(err.value, "pytorch_model.bin")
    assert err.value.path == str(folder) and str(err.value).startswith(f"{folder}: {kind}: ")


def test_safe_torch_load_and_imagebind(tmp_path):
    from foleygen.vision.imagebind import _read_state_dict

    bad = _pickled(tmp_path / "bad.pth")
    for load in (safe_torch_load, _read_state_dict):
        with pytest.raises(CheckpointError) as err:
            load(bad)
        _assert_refused(err.value, "bad.pth")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match=r"junk.pt: cannot be read \(") as err:
        safe_torch_load(junk)
    assert "\n" not in str(err.value)
