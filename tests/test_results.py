"""Generation results and the shared writer: one decoding pass per file, settings per call, all-or-nothing files."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from foleygen import FoleyGen
from foleygen.cli import main
from foleygen.io import FrameRequest, read_frames, read_frames_at


def make_video(path: Path, seconds: float = 1.0, fps: int = 25, size=(48, 64)) -> Path:
    """A small H.264 clip with a square that moves right."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(round(seconds * fps)):
            img = np.full((*size, 3), 20, dtype=np.uint8)
            img[10:18, (3 * i) % (size[1] - 8) :][:, :8] = 250
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_one_pass_gives_what_separate_reads_give(tmp_path):
    clip = make_video(tmp_path / "c.mp4", 1.0)
    requests = [
        FrameRequest(25.0, 32),
        FrameRequest(10.0, (24, 40), "letterbox", 0.6),
        FrameRequest(30.0, None, "crop", 1.5),  # past the end: the last frame held
    ]
    together = read_frames_at(clip, requests)
    for req, frames in zip(requests, together, strict=True):
        alone = read_frames(clip, req.fps, req.size, mode=req.mode, duration=req.duration)
        assert torch.equal(frames, alone)
    assert [f.shape[0] for f in together] == [25, 6, 45]


def test_generate_plot_opens_and_decodes_the_input_once_per_need(tmp_path, monkeypatch, capsys):
    """``generate --plot``: one probe, one decoding pass for the encoder's frames and the thumbnails
    together, one demux for the mux (before: five opens and two full decodes)."""
    from foleygen.io import video as video_module

    clip = make_video(tmp_path / "clip.mp4", 0.8)
    opens: list[str] = []
    passes: list[list[FrameRequest]] = []
    real_open, real_pass = av.open, video_module._read_frames

    def counting_open(file, *args, **kwargs):
        if str(file) == str(clip):
            opens.append(kwargs.get("mode", args[0] if args else "r"))
        return real_open(file, *args, **kwargs)

    def counting_pass(path, requests, *args, **kwargs):
        if str(path) == str(clip):
            passes.append(list(requests))
        return real_pass(path, requests, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    monkeypatch.setattr(video_module, "_read_frames", counting_pass)
    out = tmp_path / "out"
    assert main(["generate", str(clip), "-o", str(out), "--model", "debug", "--plot", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4", "clip.png", "clip.wav"]
    # One decoding pass, serving both rates it needs (the encoder's 25 fps 32 px, the picture's 128 px).
    assert len(passes) == 1 and [(r.fps, r.size) for r in passes[0]] == [(25.0, 32), (25.0, 128)]
    # Opens: probe, the packet-end check of the duration (once per file), the decoding pass, the mux.
    assert opens == ["r"] * 4


@pytest.fixture(scope="module")
def model():
    return FoleyGen.from_pretrained("debug")


def _frames(n: int) -> torch.Tensor:
    return (torch.arange(n * 32 * 32 * 3) % 251).to(torch.uint8).reshape(n, 32, 32, 3)


def test_params_per_call_leave_the_model_unchanged(model):
    before = dataclasses.replace(model.generation)
    params = model.generation_params(temperature=0.0, top_k=5, duration=0.5)
    assert (params.temperature, params.top_k, params.duration, params.cfg_coef) == (0.0, 5, 0.5, before.cfg_coef)
    [res] = model.generate_results([_frames(25)], params=params, seed=3)
    assert model.generation == before
    assert res.audio.shape == (1, 8000) and res.codes.shape[0] == 2 and res.frames.shape == (12, 32, 32, 3)
    assert res.info is None and res.source is None and res.duration == 0.5
    # the same as setting them on the model
    model.set_generation_params(**dataclasses.asdict(params))
    try:
        assert torch.equal(model.generate([_frames(25)], seed=3)[0], res.audio)
    finally:
        model.set_generation_params(**dataclasses.asdict(before))
    with pytest.raises(Exception, match="unknown generation settings"):
        model.generation_params(temprature=1.0)


def test_write_result_writes_all_files_or_none(tmp_path, monkeypatch, model):
    from foleygen import viz
    from foleygen.outputs.write import PLOT_FRAMES, write_result

    clip = make_video(tmp_path / "c.mp4", 0.5)
    [res] = model.generate_results([clip], extra_frames=[PLOT_FRAMES])
    assert res.info is not None and res.info.duration == pytest.approx(0.5, abs=0.05)
    assert res.extra_frames[0].shape[1:] == (128, 128, 3)
    out = tmp_path / "out"
    out.mkdir()

    def broken(*args, **kwargs):
        raise viz.VizError("the picture failed")

    monkeypatch.setattr(viz, "plot_alignment", broken)
    with pytest.raises(viz.VizError):
        write_result(res, audio=out / "c.wav", video=out / "c.mp4", plot=out / "c.png")
    assert list(out.iterdir()) == []  # neither the finished audio and video nor any temporary
    # (the complete set is written by `generate --plot` above)
    assert write_result(res, audio=out / "c.flac") == [out / "c.flac"]
    assert [p.name for p in out.iterdir()] == ["c.flac"]


def test_two_concurrent_app_requests_get_their_own_settings(tmp_path, monkeypatch):
    """Two requests on one shared model at the same time (no lock: both are inside the LM at once),
    each decoded with its own settings; the shared model's defaults stay as loaded."""
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    from foleygen.app import DemoService

    service = DemoService(("debug",), work_root=tmp_path / "root", max_duration_s=3)
    model = service.load_model("debug")
    before = dataclasses.replace(model.generation)
    both_inside = threading.Barrier(2, timeout=30)
    seen: dict[str, tuple[float, int, float]] = {}
    real = model.lm.generate_windowed

    def meet_then_generate(*args, **kwargs):
        both_inside.wait()  # a lock around the model would leave the second request outside: timeout
        seen[threading.current_thread().name] = (kwargs["temperature"], kwargs["top_k"], kwargs["cfg_coef"])
        return real(*args, **kwargs)

    monkeypatch.setattr(model.lm, "generate_windowed", meet_then_generate)
    clip = make_video(tmp_path / "c.mp4", 0.5)
    settings = {"a": (0.5, 7, 1.5), "b": (1.2, 40, 4.0)}
    errors: list[BaseException] = []

    def request(name: str) -> None:
        temperature, top_k, cfg = settings[name]
        try:
            service.generate(str(clip), model="debug", cfg=cfg, top_k=top_k, temperature=temperature, seed=1)
        except BaseException as err:  # reported below: a thread's exception is otherwise lost
            errors.append(err)

    threads = [threading.Thread(target=request, args=(n,), name=n) for n in settings]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert seen == settings
    assert model.generation == before
