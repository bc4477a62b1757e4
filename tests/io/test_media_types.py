"""The one list of media extensions (foleygen.io.media_types), and every folder-reading command using it."""

from __future__ import annotations

from pathlib import Path

import pytest

from foleygen.io import media_types as mt
from foleygen.io.media_types import (
    AUDIO_EXTENSIONS,
    AUDIO_OUTPUT_EXTENSIONS,
    AUDIO_SOURCE_EXTENSIONS,
    MEDIA_EXTENSIONS,
    MUX_FORMATS,
    STREAM_MUX_FORMATS,
    VIDEO_EXTENSIONS,
    describe_extensions,
    extension_of,
    has_audio_extension,
    is_audio_path,
    is_media_path,
    is_video_path,
)

#: names no media reader should pick up
NOT_MEDIA = ("notes.txt", "list.csv", "frame.png", "model.safetensors", "README", "archive.tar.gz")


def test_the_sets_fit_together():
    assert not AUDIO_EXTENSIONS & VIDEO_EXTENSIONS
    assert MEDIA_EXTENSIONS == AUDIO_EXTENSIONS | VIDEO_EXTENSIONS
    assert AUDIO_EXTENSIONS < AUDIO_SOURCE_EXTENSIONS < MEDIA_EXTENSIONS
    assert ".gif" in VIDEO_EXTENSIONS and ".gif" not in AUDIO_SOURCE_EXTENSIONS  # a GIF has no sound
    assert set(AUDIO_OUTPUT_EXTENSIONS) <= AUDIO_EXTENSIONS
    assert set(MUX_FORMATS) <= VIDEO_EXTENSIONS and set(STREAM_MUX_FORMATS) <= VIDEO_EXTENSIONS
    for ext in MEDIA_EXTENSIONS:
        assert ext.startswith(".") and ext == ext.lower() and ext.count(".") == 1
    with pytest.raises(TypeError):
        MUX_FORMATS[".avi"] = "avi"  # read-only: nobody widens the list for everyone by accident


@pytest.mark.parametrize(
    ("name", "ext"),
    [("clip.MP4", ".mp4"), ("a/b.c/clip", ""), ("x.tar.gz", ".gz"), (".mp4", ""), ("dir/.hidden.wav", ".wav")],
)
def test_extension_of(name, ext):
    assert extension_of(name) == ext
    assert extension_of(Path(name)) == ext


def test_predicates():
    assert is_video_path("Movie.MKV") and not is_audio_path("Movie.MKV") and is_media_path("Movie.MKV")
    assert is_audio_path(Path("s.flac")) and not is_video_path("s.flac") and has_audio_extension("s.flac")
    assert has_audio_extension("clip.mp4") and not has_audio_extension("anim.gif") and is_video_path("anim.gif")
    for name in NOT_MEDIA:
        assert not is_media_path(name) and not has_audio_extension(name)


def test_describe_extensions():
    assert describe_extensions(MUX_FORMATS) == ".mp4, .m4v or .mov"  # a mapping keeps its order
    assert describe_extensions(AUDIO_OUTPUT_EXTENSIONS) == ".wav or .flac"
    assert describe_extensions({".b", ".a"}) == ".a or .b"  # a set is sorted
    assert describe_extensions([".wav"]) == ".wav" and describe_extensions([]) == ""


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """One non-empty file per known extension (some upper-case), and files that are not media."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i, ext in enumerate(sorted(MEDIA_EXTENSIONS)):
        name = f"clip_{ext[1:]}{ext.upper() if i % 3 == 0 else ext}"
        (folder / name).write_bytes(b"not really media")
    for name in NOT_MEDIA:
        (folder / name).write_bytes(b"x")
    return folder


def _expected(folder: Path, extensions: frozenset[str]) -> set[Path]:
    return {p for p in folder.iterdir() if p.suffix.lower() in extensions}


def test_generate_and_eval_videos_accept_the_same_files(mixed_folder):
    """``foleygen generate folder/`` runs on exactly the files ``foleygen eval --videos folder/`` pairs."""
    from foleygen.cli.commands.generate import collect_jobs
    from foleygen.eval import clip_metrics
    from foleygen.eval.pairing import list_media

    jobs, problems = collect_jobs([str(mixed_folder)], None)
    assert problems == []
    generated = {job.path for job in jobs}
    assert clip_metrics.VIDEO_EXTENSIONS is VIDEO_EXTENSIONS  # the set `eval --videos` lists with
    paired = set(list_media(mixed_folder, clip_metrics.VIDEO_EXTENSIONS).values())
    assert generated == paired == _expected(mixed_folder, VIDEO_EXTENSIONS)
    assert {p.suffix.lower() for p in generated} == VIDEO_EXTENSIONS


def test_prepare_and_info_and_eval_audio_use_the_list(mixed_folder):
    from foleygen.cli.commands.info import expand
    from foleygen.data.manifest import index_video_dir
    from foleygen.eval.pairing import list_media

    assert set(index_video_dir(mixed_folder).values()) == _expected(mixed_folder, VIDEO_EXTENSIONS)
    described = {Path(path) for path, problem in expand([str(mixed_folder)]) if problem is None}
    assert described == _expected(mixed_folder, MEDIA_EXTENSIONS)
    # generated/reference sound: every file that can hold sound (an animated GIF cannot)
    assert set(list_media(mixed_folder).values()) == _expected(mixed_folder, AUDIO_SOURCE_EXTENSIONS)


def test_codec_training_reads_every_file_that_can_hold_sound(mixed_folder):
    from foleygen.train.codec_task import _AudioFiles

    found = _AudioFiles({"kind": "audio", "path": str(mixed_folder)}, 16000, 1).files
    assert set(found) == _expected(mixed_folder, AUDIO_SOURCE_EXTENSIONS)


def test_no_module_keeps_a_list_of_its_own():
    """The sets above are the only ones: a search of the package finds no literal list of video names."""
    import re

    import foleygen

    root = Path(foleygen.__file__).parent
    literal = re.compile(r"""["']\.(mkv|webm|avi|m4v|mpeg|3gp|ogv)["']""")
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p != Path(mt.__file__) and literal.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []
