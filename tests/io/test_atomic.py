"""foleygen.atomic: files and folders appear complete under their final name, or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import foleygen.atomic
from foleygen.atomic import (
    AtomicFile,
    atomic_dir,
    atomic_file,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    replace_dir,
)
from foleygen.staging import TEMP_NAME, _held, remove_stale_temporaries


class Boom(Exception):
    pass


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_file_success_keeps_the_suffix_and_a_hidden_temporary(tmp_path):
    final = tmp_path / "out.wav"
    with atomic_file(final) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.wav.") and tmp.suffix == ".wav"
        assert TEMP_NAME.match(tmp.name)  # the clean-up of a killed run knows it
        assert _held(tmp)  # ...and leaves it alone while we write
        assert not final.exists()
        tmp.write_bytes(b"RIFF")
    assert final.read_bytes() == b"RIFF" and _names(tmp_path) == ["out.wav"]


def test_file_explicit_suffix_and_long_extensions(tmp_path):
    with atomic_file(tmp_path / "pic", ".png") as tmp:
        assert tmp.name.endswith(".tmp.png")
        tmp.write_bytes(b"x")
    # An extension the clean-up's pattern does not cover is left off, so that a leftover is still found.
    with atomic_file(tmp_path / "model.safetensors") as tmp:
        assert tmp.name.endswith(".tmp") and TEMP_NAME.match(tmp.name)
        tmp.write_bytes(b"y")
    assert _names(tmp_path) == ["model.safetensors", "pic"]


@pytest.mark.parametrize("existing", [False, True])
def test_file_exception_leaves_no_file_and_no_temporary(tmp_path, existing):
    final = tmp_path / "result.json"
    if existing:
        final.write_text("old")
    with pytest.raises(Boom), atomic_file(final) as tmp:
        tmp.write_text("half of the new")
        raise Boom
    assert _names(tmp_path) == (["result.json"] if existing else [])
    if existing:
        assert final.read_text() == "old"  # the previous result is untouched


def test_file_replaces_an_existing_file(tmp_path):
    final = tmp_path / "a.txt"
    final.write_text("old")
    with atomic_file(final, fsync=False) as tmp:
        tmp.write_text("new")
    assert final.read_text() == "new" and _names(tmp_path) == ["a.txt"]


def test_file_a_failing_rename_removes_the_temporary(tmp_path, monkeypatch):
    final = tmp_path / "a.txt"
    final.write_text("old")

    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(foleygen.atomic.os, "replace", refuse)
    with pytest.raises(PermissionError), atomic_file(final) as tmp:
        tmp.write_text("new")
    assert final.read_text() == "old" and _names(tmp_path) == ["a.txt"]


def test_file_missing_folder_is_an_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_file(tmp_path / "missing" / "a.txt")


def test_file_without_with_commit_and_abort(tmp_path):
    grow = AtomicFile(tmp_path / "log.txt")
    grow.path.write_text("line 1\n")
    assert grow.open and not (tmp_path / "log.txt").exists()
    assert grow.commit() == tmp_path / "log.txt"
    grow.abort()  # after a commit: nothing to do
    assert (tmp_path / "log.txt").read_text() == "line 1\n" and not grow.open
    gone = AtomicFile(tmp_path / "other.txt")
    gone.path.write_text("x")
    gone.abort()
    gone.commit()  # after an abort: nothing to do
    assert _names(tmp_path) == ["log.txt"]


def test_relock_holds_a_temporary_a_writer_replaced(tmp_path):
    temp = AtomicFile(tmp_path / "a.wav")
    inner = tmp_path / "inner"
    inner.write_bytes(b"data")
    os.replace(inner, temp.path)  # what write_audio(tmp) does: its own file renamed over ours
    assert not _held(temp.path)
    temp.relock()
    assert _held(temp.path)
    assert remove_stale_temporaries(tmp_path, grace_s=0) == []
    temp.commit()
    assert (tmp_path / "a.wav").read_bytes() == b"data"


def test_writers_of_bytes_text_json(tmp_path):
    atomic_write_bytes(tmp_path / "deep" / "b.bin", b"\x00\x01")  # parent folders are created
    atomic_write_text(tmp_path / "t.txt", "héllo")
    atomic_write_json(tmp_path / "j.json", {"a": [1, 2]}, indent=1)
    atomic_write(tmp_path / "w.bin", lambda fh: fh.write(b"abc"), fsync=False)
    assert (tmp_path / "deep" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "t.txt").read_bytes() == "héllo".encode()
    assert (tmp_path / "j.json").read_text().endswith("\n")
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": [1, 2]}
    assert (tmp_path / "w.bin").read_bytes() == b"abc"
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "bad.json", {"x": object()})
    assert _names(tmp_path) == ["deep", "j.json", "t.txt", "w.bin"]


def test_dir_success_and_replacing_an_old_folder(tmp_path):
    final = tmp_path / "ckpt"
    with atomic_dir(final) as tmp:
        assert tmp.is_dir() and TEMP_NAME.match(tmp.name) and _held(tmp)
        (tmp / "a").write_text("1")
    assert _names(final) == ["a"]
    with atomic_dir(final) as tmp:
        (tmp / "b").write_text("2")
    assert _names(final) == ["b"]  # replaced as a whole, not merged
    assert _names(tmp_path) == ["ckpt"]  # no temporary, no `.ckpt.old-PID` left


def test_dir_exception_keeps_the_old_folder_and_removes_the_temporary(tmp_path):
    final = tmp_path / "ckpt"
    final.mkdir()
    (final / "weights").write_text("old")
    with pytest.raises(Boom), atomic_dir(final) as tmp:
        (tmp / "weights").write_text("half")
        raise Boom
    assert (final / "weights").read_text() == "old" and _names(tmp_path) == ["ckpt"]


def test_dir_failing_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    final = tmp_path / "ckpt"
    final.mkdir()
    (final / "weights").write_text("old")
    real = os.replace
    calls = []

    def second_fails(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:
            raise OSError("disk went away")
        real(src, dst)

    monkeypatch.setattr(foleygen.atomic.os, "replace", second_fails)
    with pytest.raises(OSError, match="disk went away"), atomic_dir(final) as tmp:
        (tmp / "weights").write_text("new")
    assert calls[0] == ("ckpt", f".ckpt.old-{os.getpid()}")
    assert (final / "weights").read_text() == "old" and _names(tmp_path) == ["ckpt"]


def test_replace_dir_over_a_file_and_into_an_empty_name(tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    (new / "x").write_text("x")
    target = tmp_path / "target"
    target.write_text("a file in the way")
    replace_dir(new, target)
    assert _names(target) == ["x"] and _names(tmp_path) == ["target"]
    other = tmp_path / "other"
    other.mkdir()
    replace_dir(other, tmp_path / "fresh")
    assert (tmp_path / "fresh").is_dir() and not other.exists()


def test_a_killed_dir_swap_is_restored_by_the_clean_up(tmp_path):
    """Killed between the two renames: `.NAME.old-PID` without NAME goes back to NAME."""
    final = tmp_path / "ckpt"
    aside = tmp_path / f".ckpt.old-{os.getpid()}"
    aside.mkdir()
    (aside / "weights").write_text("old")
    remove_stale_temporaries(tmp_path, grace_s=0)
    assert (final / "weights").read_text() == "old"
