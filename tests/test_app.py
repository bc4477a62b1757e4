"""The web demo without a browser: the page builds, the handler generates, bad uploads are refused."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

gr = pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")

from foleygen.app import (  # noqa: E402
    DemoService,
    UploadError,
    build_app,
    make_handler,
    make_upload_check,
    safe_filename,
)
from foleygen.errors import ConfigError  # noqa: E402


def make_video(
    path: Path, seconds: float = 1.0, fps: int = 25, size: tuple[int, int] = (48, 64), codec: str = "libx264"
) -> Path:
    """A small .mp4 (H.264 by default, no audio) with a square that moves right, written with PyAV."""
    h, w = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        for i in range(int(seconds * fps)):
            img = np.full((h, w, 3), 30, np.uint8)
            x = (i * 3) % (w - 8)
            img[10:18, x : x + 8] = (240, 120, 20)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture
def service(tmp_path):
    return DemoService(("debug",), work_root=tmp_path / "demo-root", max_upload_mb=5, max_duration_s=3)


# ---- tests ----------------------------------------------------------------------------------------


def test_app_builds_with_a_queue_of_one(tmp_path):
    app = build_app("debug", work_root=tmp_path / "root", max_upload_mb=5, max_duration_s=3, examples=0)
    assert isinstance(app, gr.Blocks)
    assert app._queue.default_concurrency_limit == 1
    fns = list(app.fns.values()) if isinstance(app.fns, dict) else list(app.fns)
    generate = [fn for fn in fns if fn.name == "generate_soundtrack"]
    assert len(generate) == 1 and generate[0].concurrency_limit == 1
    assert app.foleygen_service.models[0] == "debug"
    assert set(app.foleygen_service.models) >= {"debug", "demo"}


def test_handler_generates_video_audio_and_plot(tmp_path, service):
    video = make_video(tmp_path / "my clip.mp4")
    calls = []
    handler = make_handler(service)
    out_video, file_video, file_audio, plot, summary = handler(
        str(video), "debug", 3.0, 50, 1.0, 7, 0, progress=lambda frac, desc=None: calls.append((frac, desc))
    )

    from foleygen.io import probe

    info = probe(out_video)
    assert info.has_video and info.has_audio
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert file_video == out_video and Path(file_audio).suffix == ".wav"
    assert Path(file_audio).name == "my_clip_foley.wav"  # sanitised from the visitor's name
    assert probe(file_audio).has_audio and Path(plot).stat().st_size > 10_000
    fractions = [c[0] for c in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 4
    assert "Done" in summary and "seed 7" in summary
    for p in (out_video, file_audio, plot):
        assert Path(p).resolve().is_relative_to(service.results_dir)
    # The per-request temporary directory (with the private copy of the upload) is gone.
    assert list(service.work_dir.iterdir()) == []


def test_video_the_browser_cannot_play_is_reencoded_to_h264(tmp_path, service):
    from foleygen.io import probe

    video = make_video(tmp_path / "old.mp4", codec="mpeg4")  # MPEG-4 Part 2: fits .mp4, no browser plays it
    assert probe(video).video_codec == "mpeg4"
    result = service.generate(video, model="debug", duration=0.5)
    info = probe(result.video)
    assert info.video_codec == "h264" and info.has_audio


def test_same_seed_same_audio_and_model_loaded_once(tmp_path, service):
    video = make_video(tmp_path / "v.mp4")
    a = service.generate(video, model="debug", seed=3, top_k=50, duration=0.5)
    b = service.generate(video, model="debug", seed=3, top_k=50, duration=0.5)
    from foleygen.io import read_audio

    sr = service.load_model("debug").sample_rate
    assert torch.equal(read_audio(a.audio, sr), read_audio(b.audio, sr))
    assert a.video.parent != b.video.parent  # each request gets its own result directory
    assert service.load_model("debug") is service.load_model("debug")
    with pytest.raises(ConfigError, match="unknown model 'other'"):
        service.load_model("other")


@pytest.mark.parametrize("case", ["none", "not_video", "too_big", "too_long", "audio_only", "empty"])
def test_bad_uploads_give_one_line_errors(tmp_path, service, case):
    target = tmp_path / "upload"
    target.mkdir()
    if case == "none":
        path, expected = None, "no video uploaded"
    elif case == "not_video":
        path = target / "notes.mp4"
        path.write_text("this is not a video\n" * 50)
        expected = "notes.mp4: not a readable video"
    elif case == "too_big":
        path = make_video(target / "big.mp4")
        with open(path, "ab") as f:
            f.write(b"\0" * 6 * 1024 * 1024)  # MB = 2**20 bytes, as the browser counts
        expected = "big.mp4: file is 6.0 MB; this demo accepts at most 5 MB"
    elif case == "too_long":
        path = make_video(target / "long.mp4", seconds=4.0)
        expected = "long.mp4: video is 4.0 s long; this demo accepts at most 3 s"
    elif case == "audio_only":
        from foleygen.io import write_audio

        path = target / "sound.wav"
        write_audio(path, torch.zeros(1, 16000), 16000)
        expected = "sound.wav: has no video stream"
    else:
        path = target / "empty.mp4"
        path.write_bytes(b"")
        expected = "empty.mp4: file is empty"
    handler = make_handler(service)
    with pytest.raises(gr.Error) as err:
        handler(None if path is None else str(path), "debug", 3.0, 250, 1.0, 0, 0, progress=lambda *a, **k: None)
    message = str(err.value.message if hasattr(err.value, "message") else err.value)
    assert expected in message
    assert "\n" not in message and str(tmp_path) not in message  # no server paths leak to visitors


def test_paths_stay_inside_the_work_root(tmp_path, service):
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("..\\..\\Windows\\evil.mp4") == "evil"
    assert safe_filename("..") == "video" and safe_filename(".hidden.mp4") == "hidden"
    assert safe_filename("Été à la plage (1).MOV") == "Ete_a_la_plage_1"
    assert safe_filename("a" * 300 + ".mp4") == "a" * 60
    video = make_video(tmp_path / "v.mp4")
    result = service.generate(video, model="debug", display_name="../../../../tmp/owned.mp4", duration=0.5)
    for p in (result.video, result.audio, result.plot):
        assert p.resolve().is_relative_to(service.results_dir)
        assert p.name.startswith("owned_")
    assert not (Path("/tmp") / "owned_foley.mp4").exists()


def test_old_results_are_pruned(tmp_path, service):
    old = service.results_dir / "old"
    fresh = service.results_dir / "fresh"
    for d in (old, fresh):
        d.mkdir()
        (d / "x.wav").write_bytes(b"x")
    past = time.time() - 2 * service.result_ttl_s
    os.utime(old, (past, past))
    assert service.prune_results() == 1
    assert not old.exists() and fresh.exists()


def test_demo_command_flags(tmp_path):
    from foleygen.cli import build_parser

    args = build_parser().parse_args(["demo", "--port", "7999", "--model", "debug", "--share", "false"])
    assert (args.host, args.port, args.model, args.share) == ("127.0.0.1", 7999, "debug", False)
    assert build_parser().parse_args(["demo", "--share"]).share is True
    with pytest.raises(UploadError):  # also the type the CLI would print on one line
        DemoService(("debug",), work_root=tmp_path).validate_upload("/nonexistent/file.mp4")


def test_demo_command_without_gradio_says_what_to_install(monkeypatch, capsys):
    from foleygen.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` raise ImportError
    assert main(["demo", "--model", "debug"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "foleygen demo: error: the web demo needs Gradio: pip install 'foleygen[demo]'"


@pytest.mark.slow
def test_requests_queue_one_at_a_time_and_see_their_position(tmp_path):
    """Two visitors at once: the second waits in the queue (with a rank) until the first is done."""
    import socket

    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    from foleygen.app import launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = launch(
        "127.0.0.1", port, "debug", work_root=tmp_path / "root", max_duration_s=3, block=False, quiet=True, examples=0
    )
    service = app.foleygen_service
    spans = []
    real_generate = service.generate

    def timed_generate(*args, **kwargs):
        start = time.monotonic()
        try:
            return real_generate(*args, **kwargs)
        finally:
            spans.append((start, time.monotonic()))

    service.generate = timed_generate  # the handler calls the service through this attribute
    try:
        video = make_video(tmp_path / "clip.mp4")
        client = Client(
            f"http://127.0.0.1:{port}/",
            verbose=False,
            analytics_enabled=False,
            download_files=str(tmp_path / "downloads"),
        )
        jobs = [
            client.submit(handle_file(str(video)), "debug", 3.0, 50, 1.0, seed, 0, api_name="/generate")
            for seed in (1, 2)
        ]
        # Meanwhile an upload check answers at once: it does not queue behind the generations.
        client.predict(handle_file(str(video)), api_name="/check_upload")
        checked_while_busy = not jobs[1].done()
        ranks = set()
        deadline = time.monotonic() + 120
        while not all(job.done() for job in jobs) and time.monotonic() < deadline:
            for job in jobs:
                status = job.status()
                if status.code == Status.IN_QUEUE and status.rank is not None:
                    ranks.add(status.rank)
            time.sleep(0.05)
        results = [job.result(timeout=60) for job in jobs]
    finally:
        app.close()
    assert len(spans) == 2
    (s1, e1), (s2, e2) = sorted(spans)
    assert e1 <= s2, "two generations ran at the same time"
    assert ranks, "no queue position was reported while waiting"
    assert checked_while_busy, "the upload check waited for the generations"
    for out_video, _, out_audio, plot, summary in results:
        assert Path(out_video["video"] if isinstance(out_video, dict) else out_video).is_file()
        assert Path(out_audio).suffix == ".wav" and Path(plot).suffix == ".png"
        assert "Done" in summary


def test_example_clips_bring_their_ground_truth_to_the_picture(tmp_path, monkeypatch):
    from foleygen.viz import Event

    service = DemoService(("debug",), work_root=tmp_path / "root", max_duration_s=5)
    (example,) = service.prepare_examples(1)
    assert example.is_file() and example.resolve().is_relative_to(service.root)
    assert service.prepare_examples(1) == [example]  # made once, then reused
    upload = tmp_path / "upload" / "copy.mp4"  # Gradio hands examples back as copies elsewhere
    upload.parent.mkdir()
    upload.write_bytes(example.read_bytes())
    seen = {}
    import foleygen.viz

    real_plot = foleygen.viz.plot_alignment

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_plot(*args, **kwargs)

    monkeypatch.setattr(foleygen.viz, "plot_alignment", spy)
    result = service.generate(upload, model="debug", duration=1.0)
    events = seen["events"]
    assert events and all(isinstance(e, Event) and 0 <= e.time <= 1.0 for e in events)
    assert "true impacts" in result.summary
    # Fewer examples than asked when the clips are longer than the upload limit.
    assert DemoService(("debug",), work_root=tmp_path / "root", max_duration_s=2).prepare_examples(1) == []


def test_a_failed_generation_leaves_no_files_behind(tmp_path, service, monkeypatch):
    import foleygen.io
    from foleygen.errors import MediaError

    def broken_mux(video_path, wav, sample_rate, out_path, **kwargs):
        Path(out_path).write_bytes(b"half a file")
        raise MediaError("disk full", out_path)

    monkeypatch.setattr(foleygen.io, "mux", broken_mux)
    video = make_video(tmp_path / "v.mp4")
    with pytest.raises(gr.Error) as err:
        make_handler(service)(str(video), "debug", 3.0, 50, 1.0, 0, 0.5, progress=lambda *a, **k: None)
    assert err.value.message == "v.mp4: disk full"  # the visitor's file, not our working path
    assert list(service.results_dir.iterdir()) == [] and list(service.work_dir.iterdir()) == []


def test_uploads_are_checked_on_arrival(tmp_path, service):
    check = make_upload_check(service)
    assert check(None) is None  # a cleared box is fine
    assert check(str(make_video(tmp_path / "ok.mp4"))) is None
    with pytest.raises(gr.Error) as err:
        check(str(make_video(tmp_path / "long.mp4", seconds=4.0)))
    assert err.value.message.startswith("long.mp4: video is 4.0 s long")


def test_sliders_start_at_the_checkpoint_decoding_settings(tmp_path):
    from foleygen.app import _cached_model

    model = _cached_model("debug")
    saved = dataclasses.asdict(model.generation)
    model.set_generation_params(**{**saved, "cfg_coef": 2.5, "top_k": 7, "temperature": 0.7})
    try:
        app = build_app("debug", work_root=tmp_path / "root", examples=0)
    finally:
        model.set_generation_params(**saved)
    values = {c.elem_id: c.value for c in app.blocks.values() if getattr(c, "elem_id", None)}
    assert (values["cfg"], values["top-k"], values["temperature"]) == (2.5, 7, 0.7)
