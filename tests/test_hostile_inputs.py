"""Hostile inputs to ``info`` and ``generate`` (issue 40, items 1-4 and 7): FIFOs, devices, broken and
looping links, folders named like videos, bad output folders, bad CSV lists, huge durations, names
with a newline. Each gives one line naming the file, exit 1, and the other inputs still run."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest
import torch
from media_factory import make_media

from foleygen.cli import main
from foleygen.cli.inputs import expand_folder
from foleygen.errors import MediaError, one_line, quote_path
from foleygen.io import probe
from foleygen.io._common import make_output_dir, not_a_file_problem

NEWLINE_NAME = "new\nline.mp4"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_media(tmp_path_factory.mktemp("src") / "clip.mp4", fps=25, duration=0.4).path


def _generate(capsys, *argv) -> tuple[int, dict, list[str]]:
    code = main(["generate", *map(str, argv), "--model", "debug", "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err.strip().splitlines()


def _within(seconds: float, fn, *args):
    """Run ``fn(*args)`` in a thread; fail (instead of hanging the suite) if it blocks."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as err:  # noqa: BLE001 -- handed to the test below
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn.__name__} blocked for more than {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


# -- item 1: non-regular files never block ----------------------------------------------------------


def test_a_fifo_is_refused_without_opening_it(tmp_path, capsys):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(MediaError, match="not a regular file but a named pipe") as err:
        _within(10, probe, fifo)
    assert err.value.path == str(fifo)
    assert _within(10, main, ["info", str(fifo)]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    code = _within(60, main, ["generate", str(fifo), "-o", str(tmp_path / "o"), "--model", "debug", "-q"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "named pipe" in lines[0] and "1 failed" in lines[1]


def test_a_character_device_is_not_a_file():
    assert not_a_file_problem("/dev/null").startswith("not a regular file but a character device")


# -- item 4: folder expansion reports what it cannot use ---------------------------------------------


def _hostile_folder(root: Path, clip: Path) -> Path:
    folder = root / "mixed"
    folder.mkdir()
    (folder / "good.mp4").write_bytes(clip.read_bytes())
    (folder / "broken.mp4").symlink_to("nowhere.mp4")
    (folder / "loop1.mp4").symlink_to("loop2.mp4")
    (folder / "loop2.mp4").symlink_to("loop1.mp4")
    os.mkfifo(folder / "fifo.mp4")
    (folder / "dir.mp4").mkdir()
    (folder / "dir.mp4" / "inner.mp4").write_bytes(clip.read_bytes())  # still found
    (folder / "notes.txt").write_text("not a video")  # not named like one: ignored
    (folder / "back").symlink_to(folder)  # a link to a parent is no loop for the walk
    return folder


def test_expand_folder_names_every_entry_it_cannot_use(tmp_path, clip):
    folder = _hostile_folder(tmp_path, clip)
    found = {e.path.relative_to(folder).as_posix(): e.problem for e in expand_folder(folder, {".mp4"})}
    assert found == {
        "broken.mp4": "broken symbolic link (to nowhere.mp4)",
        "dir.mp4": "is a directory, not a media file",
        "dir.mp4/inner.mp4": None,
        "fifo.mp4": found["fifo.mp4"],
        "good.mp4": None,
        "loop1.mp4": "symbolic link loop",
        "loop2.mp4": "symbolic link loop",
    }
    assert found["fifo.mp4"].startswith("not a regular file but a named pipe")


def test_generate_reports_them_and_runs_the_rest(tmp_path, clip, capsys):
    folder = _hostile_folder(tmp_path, clip)
    empty = tmp_path / "empty"
    empty.mkdir()
    video_named_dir = tmp_path / "x.mp4"
    video_named_dir.mkdir()
    code, summary, lines = _generate(capsys, folder, empty, video_named_dir, "-o", tmp_path / "out", "-q")
    assert code == 1
    assert sorted(Path(g["input"]).name for g in summary["generated"]) == ["good.mp4", "inner.mp4"]
    failed = {Path(f["input"]).name: f["error"] for f in summary["failed"]}
    assert set(failed) == {"broken.mp4", "dir.mp4", "fifo.mp4", "loop1.mp4", "loop2.mp4", "empty", "x.mp4"}
    assert "folder holds no video files" in failed["empty"] and "folder holds no video files" in failed["x.mp4"]
    assert all("\n" not in e for e in failed.values())


def test_info_reports_them_and_describes_the_rest(tmp_path, clip, capsys):
    folder = _hostile_folder(tmp_path, clip)
    assert main(["info", str(folder)]) == 1
    out, err = capsys.readouterr()
    assert [Path(json.loads(line)["path"]).name for line in out.splitlines()] == ["good.mp4"]
    assert len(err.strip().splitlines()) == 5  # broken, dir.mp4, fifo, two loops


# -- item 2: output folders --------------------------------------------------------------------------


def test_bad_output_folders_are_one_line(tmp_path, clip, capsys, monkeypatch):
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    for target, words in ((a_file, "is a file, not a folder"), (a_file / "sub", "a part of its path is a file")):
        code = main(["generate", str(clip), "-o", str(target), "--model", "debug", "-q"])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and words in err and str(target) in err
        assert "unexpected" not in err

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(MediaError, match=r"cannot be created \(Read-only file system\)"):
        make_output_dir(tmp_path / "new")


def test_an_output_that_would_replace_its_input_is_refused(tmp_path, clip, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes(clip.read_bytes())
    code, summary, _ = _generate(capsys, video, "-o", tmp_path)
    assert code == 1 and not summary["generated"]
    assert "would replace the input" in summary["failed"][0]["error"]
    assert video.read_bytes() == clip.read_bytes() and not (tmp_path / "v.wav").exists()


# -- item 3: CSV lists and durations ---------------------------------------------------------------


def test_bad_csv_rows_are_skipped_one_line_each(tmp_path, clip, capsys):
    (tmp_path / "a.mp4").write_bytes(clip.read_bytes())
    (tmp_path / "b.mp4").write_bytes(clip.read_bytes())
    table = tmp_path / "list.csv"
    table.write_text("path,duration\na.mp4,0.2\nb.mp4,abc\nb.mp4,nan\nb.mp4,-1\n,3\nb.mp4,1e9\n")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    code, summary, lines = _generate(capsys, table, binary, "-o", tmp_path / "out")
    assert code == 1
    assert [Path(g["input"]).name for g in summary["generated"]] == ["a.mp4"]
    assert probe(tmp_path / "out" / "a.wav").duration == pytest.approx(0.2, abs=1e-3)
    errors = [f["error"] for f in summary["failed"]]
    assert len(errors) == 6 == len(lines)  # --json: no summary line on stderr
    assert sum("row skipped" in e for e in errors) == 4 and any("not a text CSV list" in e for e in errors)
    assert any("b.mp4: duration 1e+09 s is too long" in e for e in errors)


def test_a_huge_duration_is_refused_before_any_allocation(tmp_path, clip, capsys):
    code, summary, _ = _generate(capsys, clip, "--duration", "1e9", "-o", tmp_path / "out")
    assert code == 1 and "at most 10 s past its end" in summary["failed"][0]["error"]
    assert main(["generate", str(clip), "--duration", "inf", "-o", str(tmp_path / "o"), "--model", "debug"]) == 1
    assert "--duration must be a positive number" in capsys.readouterr().err
    code, summary, _ = _generate(capsys, clip, "--duration", "0.6", "-o", tmp_path / "longer")
    assert code == 0  # a little past the end is still allowed: the last frame stays on


# -- item 7: a newline in a file name --------------------------------------------------------------


def test_a_newline_in_a_name_stays_on_one_line(tmp_path, capsys):
    weird = tmp_path / NEWLINE_NAME
    weird.write_text("not a video at all")
    assert quote_path(weird) == repr(str(weird))
    assert one_line(ValueError("a\nb"), weird) == f"{quote_path(weird)}: unexpected ValueError: a b " + (
        "(rerun with --debug for the traceback)"
    )
    for argv in (["info", str(weird)], ["generate", str(weird), "-o", str(tmp_path / "o"), "--model", "debug", "-q"]):
        assert main(argv) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert repr(str(weird)) in lines[0] and "not a readable media file" in lines[0]
        assert len(lines) == (1 if argv[0] == "info" else 2)
    assert quote_path("/plain/name.mp4") == "/plain/name.mp4"


# -- item 11: warnings obey -q ---------------------------------------------------------------------


def test_reencode_warnings_obey_quiet(tmp_path, capsys):
    ffv1 = make_media(tmp_path / "lossless.mkv", fps=25, duration=0.4).path  # FFV1: re-encoded for .mp4
    assert main(["generate", str(ffv1), "-o", str(tmp_path / "loud"), "--model", "debug", "--json"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == [f"foleygen generate: warning: {ffv1}: video codec ffv1 is re-encoded to H.264 for lossless.mp4"]
    assert main(["generate", str(ffv1), "-o", str(tmp_path / "quiet"), "--model", "debug", "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert (tmp_path / "quiet" / "lossless.mp4").is_file()


def test_a_stem_clash_fails_the_second_input_only(tmp_path, clip, capsys):
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "take.mp4").write_bytes(clip.read_bytes())
    code, summary, _ = _generate(capsys, tmp_path / "one", tmp_path / "two", "-o", tmp_path / "out")
    assert code == 1 and [Path(g["input"]).parent.name for g in summary["generated"]] == ["one"]
    (failure,) = summary["failed"]
    assert failure["input"] == str(tmp_path / "two" / "take.mp4")
    assert f"would write the same outputs (take.*) as {tmp_path / 'one' / 'take.mp4'}" in failure["error"]
