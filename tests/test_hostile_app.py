"""The web demo against hostile requests (issue 40, item 9): settings out of range or not numbers,
images, the upload limit, refused uploads in Gradio's cache, and what the server log gets."""

from __future__ import annotations

import logging
import socket

import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")

from test_app import make_video  # noqa: E402

from foleygen.app import MB, DemoService, launch, make_handler, make_upload_check  # noqa: E402
from foleygen.app_limits import check_setting  # noqa: E402


@pytest.fixture
def service(tmp_path):
    return DemoService(("debug",), work_root=tmp_path / "demo-root", max_upload_mb=5, max_duration_s=3)


def _call(service, video, **settings) -> gr.Error:
    values = {"cfg": 3.0, "top_k": 50, "temperature": 1.0, "seed": 0, "duration": 0.5, **settings}
    with pytest.raises(gr.Error) as err:
        make_handler(service)(
            None if video is None else str(video),
            "debug",
            values["cfg"],
            values["top_k"],
            values["temperature"],
            values["seed"],
            values["duration"],
            progress=lambda *a, **k: None,
        )
    return err.value


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"cfg": float("nan")}, "cfg must be a number from 0 to 10, got nan"),
        ({"seed": 1e30}, "seed must be a whole number from 0 to 9223372036854775807, got 1e+30"),
        ({"seed": 2.5}, "seed must be a whole number"),
        ({"top_k": float("inf")}, "top_k must be a whole number from 0 to 1024"),
        ({"temperature": "hot"}, "temperature must be a number from 0 to 2, got 'hot'"),
        ({"duration": float("nan")}, "duration must be a number from 0 to 3, got nan"),
    ],
)
def test_bad_settings_say_what_is_allowed(tmp_path, service, settings, expected, caplog):
    video = make_video(tmp_path / "v.mp4")
    with caplog.at_level(logging.WARNING, logger="foleygen"):
        err = _call(service, video, **settings)
    assert err.title == "Cannot generate" and expected in err.message and "\n" not in err.message
    assert err.print_exception is False  # Gradio prints no traceback for a visitor's bad input
    assert [r.getMessage() for r in caplog.records] == [f"refused a request: {err.message}"]
    assert all(r.exc_info is None for r in caplog.records)
    assert video.exists()  # a bad setting is no reason to throw the upload away


def test_settings_in_range_pass():
    assert check_setting("seed", 7.0) == 7 and isinstance(check_setting("seed", 7.0), int)
    assert check_setting("seed", 2**63 - 1) == 2**63 - 1
    assert check_setting("cfg", 0) == 0.0 and check_setting("top_k", 1024) == 1024


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_images_are_refused(tmp_path, service, suffix):
    from PIL import Image

    picture = tmp_path / f"photo{suffix}"
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(picture)
    err = _call(service, picture)
    assert err.message == f"photo{suffix}: is a still image, not a video (images are not supported)"


def test_one_upload_limit_in_bytes(tmp_path, service):
    assert service.max_upload_bytes == 5 * MB
    just_over = make_video(tmp_path / "big.mp4")
    with open(just_over, "ab") as fh:
        fh.truncate(5 * MB + 1)
    err = _call(service, just_over)
    assert err.message == "big.mp4: file is 5.0 MB; this demo accepts at most 5 MB"
    at_limit = tmp_path / "fits.mp4"
    at_limit.write_bytes(make_video(tmp_path / "src.mp4").read_bytes())
    with open(at_limit, "ab") as fh:
        fh.truncate(5 * MB)  # padding after the moov box: still a playable mp4
    assert service.validate_upload(at_limit).has_video


def test_the_server_refuses_the_same_bytes(tmp_path):
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    app = launch(
        "127.0.0.1", port, "debug", max_upload_mb=2.5, work_root=tmp_path / "root", block=False, quiet=True, examples=0
    )
    try:
        assert app.max_file_size == round(2.5 * MB) == app.foleygen_service.max_upload_bytes
    finally:
        app.close()


def test_refused_uploads_leave_gradio_cache(tmp_path, service, monkeypatch):
    cache = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    upload = cache / "0123abcd" / "notes.mp4"
    upload.parent.mkdir(parents=True)
    upload.write_text("not a video\n" * 50)
    with pytest.raises(gr.Error, match="not a readable video"):
        make_upload_check(service)(str(upload))
    assert not upload.exists() and not upload.parent.exists() and cache.is_dir()
    # A refused file outside Gradio's cache (an example clip, a path from a script) is never deleted.
    elsewhere = tmp_path / "notes.mp4"
    elsewhere.write_text("not a video\n" * 50)
    with pytest.raises(gr.Error):
        make_upload_check(service)(str(elsewhere))
    assert elsewhere.exists()
    long_upload = cache / "4567cdef" / "long.mp4"
    long_upload.parent.mkdir()
    make_video(long_upload, seconds=4.0)
    err = _call(service, long_upload)
    assert "video is 4.0 s long" in err.message and not long_upload.exists()


def test_a_bug_is_one_line_in_the_log(tmp_path, service, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("the stage\nblew up")

    monkeypatch.setattr(DemoService, "_run", broken)
    with caplog.at_level(logging.WARNING, logger="foleygen"):
        err = _call(service, make_video(tmp_path / "v.mp4"))
    assert err.title == "Internal error" and err.message == "generation failed: ZeroDivisionError: the stage blew up"
    (record,) = caplog.records
    assert record.exc_info is None and "\n" not in record.getMessage()
    assert record.getMessage().startswith("generation failed: v.mp4: unexpected ZeroDivisionError")
