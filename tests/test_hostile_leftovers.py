"""Leftovers of a killed process (issue 40, item 6): the temporaries a SIGKILL leaves behind are removed
by the next run, a temporary still being written is left alone, and a half-swapped checkpoint is restored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch
from media_factory import make_media

from foleygen.checkpoint import load_checkpoint_dir, save_checkpoint_dir
from foleygen.cli import main
from foleygen.staging import TEMP_NAME, remove_stale_temporaries

HOURS_AGO = time.time() - 2 * 3600

WRITER = textwrap.dedent(
    """
    import sys, time
    from foleygen.io._common import atomic_output
    with atomic_output(sys.argv[1], ".wav") as tmp:
        tmp.write_bytes(b"half a file")
        print(tmp, flush=True)
        time.sleep(120)
    """
)


def _age(path: Path, when: float = HOURS_AGO) -> Path:
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def test_a_killed_writer_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "a.wav")], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        tmp = Path(child.stdout.readline().strip())
        assert tmp.parent == tmp_path and TEMP_NAME.match(tmp.name)
        _age(tmp)
        assert remove_stale_temporaries(tmp_path) == []  # its writer holds it: not a leftover yet
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.stdout.close()
    assert tmp.exists() and not (tmp_path / "a.wav").exists()  # nothing under the final name
    assert remove_stale_temporaries(tmp_path) == [tmp]
    assert not tmp.exists()


def test_only_our_stale_names_are_removed(tmp_path):
    ours = [tmp_path / ".clip.mp4.ab12_x9z.tmp.mp4", tmp_path / ".clip.png.tmp.png", tmp_path / ".cfg.q1w2e3r4.tmp"]
    for path in ours:
        path.write_bytes(b"x")
        _age(path)
    step = tmp_path / ".step_00000100.k2j3h4g5.tmp"
    step.mkdir()
    (step / "model.safetensors").write_bytes(b"x")
    _age(step / "model.safetensors")
    _age(step)
    keep = {
        "fresh": tmp_path / ".new.wav.zz99yy88.tmp.wav",  # within the grace period
        "theirs": tmp_path / ".bashrc",
        "plain": tmp_path / "results.tmp",  # not hidden: not our naming
        "link": tmp_path / ".link.wav.aaaabbbb.tmp.wav",  # a link is never followed nor removed
    }
    keep["fresh"].write_bytes(b"x")
    for name in ("theirs", "plain"):
        keep[name].write_bytes(b"x")
        _age(keep[name])
    keep["link"].symlink_to(keep["theirs"])
    _age(keep["link"])
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([*ours, step])
    assert all(p.exists() or p.is_symlink() for p in keep.values())


def test_generate_cleans_its_output_folder(tmp_path, capsys):
    clip = make_media(tmp_path / "clip.mp4", fps=25, duration=0.4).path
    out = tmp_path / "out"
    out.mkdir()
    leftover = out / ".clip.mp4.abcd1234.tmp.mp4"
    leftover.write_bytes(b"half an mp4")
    _age(leftover)
    assert main(["generate", str(clip), "-o", str(out), "--model", "debug", "--json"]) == 0
    assert "removed 1 unfinished temporary file(s)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4", "clip.wav"]


def test_checkpoint_saves_clean_up_and_restore(tmp_path):
    root = tmp_path / "checkpoints"
    root.mkdir()
    stale = root / ".step_00000200.abcdefgh.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    _age(stale / "model.safetensors")
    _age(stale)
    # Killed between the two renames of a re-save: the previous checkpoint sits at `.NAME.old`.
    save_checkpoint_dir(root / "best", {"v": 1}, {"w": torch.ones(2)})
    os.replace(root / "best", root / ".best.old")
    for path in (*(root / ".best.old").iterdir(), root / ".best.old"):
        _age(path)
    save_checkpoint_dir(root / "step_00000300", {"v": 3}, {"w": torch.zeros(2)})
    assert sorted(p.name for p in root.iterdir()) == ["best", "step_00000300"]
    config, state = load_checkpoint_dir(root / "best")
    assert config["v"] == 1 and torch.equal(state["w"], torch.ones(2))


def test_a_fresh_unlocked_temporary_is_not_touched_within_its_grace(tmp_path):
    fresh = tmp_path / ".a.wav.abcdabcd.tmp.wav"
    fresh.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == []
    assert remove_stale_temporaries(tmp_path, grace_s=0.0) == [fresh]
