"""Files and directories written atomically get the mode a plain ``open``/``mkdir`` would give.

``tempfile.mkstemp``/``mkdtemp`` create 0600/0700 entries; renamed into place, they would make every
output, cache entry and checkpoint private to its owner whatever the user's umask says.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from foleygen.atomic import atomic_write_text
from foleygen.checkpoint import save_checkpoint_dir
from foleygen.eval.embedders.base import EmbedderOutput
from foleygen.eval.embedders.cache import EmbeddingCache
from foleygen.io._common import atomic_output
from foleygen.utils import current_umask, temp_dir_beside, temp_file_beside


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing(umask: int) -> None:
    assert current_umask() == umask
    assert current_umask() == umask


def test_temp_entries_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    f = temp_file_beside(tmp_path / "out.wav", ".tmp.wav")
    d = temp_dir_beside(tmp_path / "ckpt")
    assert f.parent == tmp_path and f.name.startswith(".out.wav.") and f.name.endswith(".tmp.wav")
    assert f.stat().st_size == 0
    assert mode(f) == 0o666 & ~umask
    assert d.parent == tmp_path and d.name.startswith(".ckpt.") and not any(d.iterdir())
    assert mode(d) == 0o777 & ~umask


def test_atomic_writers_leave_readable_results(tmp_path: Path, umask: int) -> None:
    atomic_write_text(tmp_path / "a.json", "{}\n")
    with atomic_output(tmp_path / "b.wav", ".wav") as tmp:
        tmp.write_bytes(b"RIFF")
    ckpt = save_checkpoint_dir(tmp_path / "model", {"kind": "test"}, {"w": torch.zeros(2)})
    assert mode(tmp_path / "a.json") == 0o666 & ~umask
    assert mode(tmp_path / "b.wav") == 0o666 & ~umask
    assert mode(ckpt) == 0o777 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.wav", "model"]  # no temporaries left


def test_embedding_cache_entries_are_readable(tmp_path: Path, umask: int) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put("k", EmbedderOutput(embeddings=np.zeros((1, 4), np.float32), logits=None))
    (entry,) = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert entry.name == "k.npz"
    assert mode(entry) == 0o666 & ~umask


def test_a_failing_chmod_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError("chmod not supported here")

    monkeypatch.setattr(os, "fchmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)
    with pytest.raises(PermissionError):
        temp_file_beside(tmp_path / "out.wav")
    with pytest.raises(PermissionError):
        temp_dir_beside(tmp_path / "ckpt")
    assert not list(tmp_path.iterdir())
