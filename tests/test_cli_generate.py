"""`foleygen generate` end to end with the tiny random "debug" model."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import torch

from foleygen.cli import main
from foleygen.io import probe


def make_video(path: Path, seconds: float, fps: int = 25, size=(48, 64), with_audio: bool = False) -> Path:
    """A small H.264 clip with a moving square, optionally with an AAC sine track."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=16000) if with_audio else None
        for i in range(round(seconds * fps)):
            img = np.zeros((*size, 3), dtype=np.uint8)
            img[10:18, (3 * i) % (size[1] - 8) :][:, :8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio is not None:
            t = np.arange(round(seconds * 16000)) / 16000
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            frame.sample_rate = 16000
            for packet in audio.encode(frame):
                out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    make_video(root / "a.mp4", 0.6)
    (root / "sub").mkdir()
    make_video(root / "sub" / "b.mp4", 0.4, with_audio=True)
    (root / "broken.mp4").write_bytes(b"\x00not a video at all")
    return root


def run_json(capsys, *argv):
    code = main(["generate", *map(str, argv), "--model", "debug", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_files_and_folder_with_a_bad_file(videos, tmp_path, capsys):
    out = tmp_path / "out"
    code, summary = run_json(capsys, videos / "a.mp4", videos / "sub", videos / "broken.mp4", "-o", out)
    assert code == 1
    assert [Path(g["input"]).name for g in summary["generated"]] == ["a.mp4", "b.mp4"]
    assert len(summary["failed"]) == 1 and "broken.mp4" in summary["failed"][0]["error"]
    assert "\n" not in summary["failed"][0]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "a.wav", "b.mp4", "b.wav"]  # nothing for broken
    for stem in ("a", "b"):
        info = probe(out / f"{stem}.wav")
        source = probe(videos / f"{stem}.mp4" if stem == "a" else videos / "sub" / "b.mp4")
        assert info.audio_sample_rate == 16000
        assert abs(info.duration - source.duration) < 1e-3  # the soundtrack lasts exactly as long as the video
        muxed = probe(out / f"{stem}.mp4")
        assert muxed.has_video and muxed.has_audio


def test_csv_durations_flac_no_mux_and_skip_existing(videos, tmp_path, capsys):
    table = tmp_path / "list.csv"
    table.write_text(f"path,duration\n{videos / 'a.mp4'},0.3\n{videos / 'sub' / 'b.mp4'}\n")
    out = tmp_path / "out"
    code, summary = run_json(
        capsys, table, "-o", out, "--format", "flac", "--no-mux", "--duration", "0.5", "--batch-size", "2"
    )
    assert code == 0 and len(summary["generated"]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["a.flac", "b.flac"]
    assert probe(out / "a.flac").duration == pytest.approx(0.3, abs=1e-3)  # CSV column
    assert probe(out / "b.flac").duration == pytest.approx(0.5, abs=1e-3)  # --duration
    before = (out / "a.flac").stat().st_mtime_ns
    code, summary = run_json(capsys, table, "-o", out, "--format", "flac", "--no-mux", "--skip-existing")
    assert code == 0 and len(summary["skipped"]) == 2 and not summary["generated"]
    assert (out / "a.flac").stat().st_mtime_ns == before


def test_same_seed_same_audio_and_keep_original_audio(videos, tmp_path, capsys):
    from foleygen.io import read_audio

    outs = []
    for name in ("x", "y"):
        code, _ = run_json(
            capsys,
            videos / "sub" / "b.mp4",
            "-o",
            tmp_path / name,
            "--seed",
            "7",
            "--keep-original-audio",
            "--top-k",
            "10",
        )
        assert code == 0
        outs.append(read_audio(tmp_path / name / "b.wav", 16000))
    assert torch.equal(outs[0], outs[1])
    import av as pyav

    with pyav.open(str(tmp_path / "x" / "b.mp4")) as container:
        assert len(container.streams.audio) == 2  # new soundtrack first, the original second


def test_errors_are_one_line(tmp_path, capsys):
    code = main(["generate", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o"), "--model", "debug", "-q"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 2  # the failure on one line, then the summary
    assert "missing.mp4" in lines[0] and lines[1].endswith(str(tmp_path / "o")) and "1 failed" in lines[1]
    code = main(["generate", str(tmp_path / "a.mp4"), "-o", str(tmp_path / "o"), "--model", str(tmp_path)])
    assert code == 1 and "not a FoleyGen checkpoint" in capsys.readouterr().err


def test_plot_writes_alignment_picture_with_true_events(videos, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes((videos / "a.mp4").read_bytes())
    (tmp_path / "clip.json").write_text(json.dumps({"events": [{"time": 0.2, "class": "wood", "strength": 1.0}]}))
    out = tmp_path / "out"
    code, summary = run_json(capsys, clip, "-o", out, "--plot", "--no-mux")
    assert code == 0 and len(summary["generated"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["clip.png", "clip.wav"]
    png = (out / "clip.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    from foleygen.cli.commands.generate import ground_truth_events

    assert ground_truth_events(clip) == [{"time": 0.2, "class": "wood", "strength": 1.0}]
    assert ground_truth_events(videos / "a.mp4") is None


def test_sampling_flags_default_to_the_checkpoints_own_settings(videos, tmp_path, capsys, monkeypatch):
    from foleygen import FoleyGen

    saved = FoleyGen.from_pretrained("debug")
    saved.set_generation_params(top_k=7, temperature=0.3, cfg_coef=2.0)
    saved.save_pretrained(tmp_path / "ckpt")
    seen = []
    real = FoleyGen.generate_loaded

    def spy(self, *args, **kwargs):
        seen.append(kwargs["params"])  # the settings travel with the call, the model is left as loaded
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FoleyGen, "generate_loaded", spy)
    video = videos / "a.mp4"
    assert main(["generate", str(video), "-o", str(tmp_path / "o1"), "--model", str(tmp_path / "ckpt"), "-q"]) == 0
    assert (seen[-1].top_k, seen[-1].temperature, seen[-1].cfg_coef) == (7, 0.3, 2.0)
    argv = [
        "generate",
        str(video),
        "-o",
        str(tmp_path / "o2"),
        "--model",
        str(tmp_path / "ckpt"),
        "-q",
        "--temperature",
        "0.9",
        "--top-k",
        "0",
    ]
    assert main(argv) == 0
    assert (seen[-1].top_k, seen[-1].temperature, seen[-1].cfg_coef) == (0, 0.9, 2.0)  # flags win, cfg kept


def test_an_unexpected_error_in_one_file_does_not_abort_the_batch(videos, tmp_path, capsys, monkeypatch):
    """A bug met by one input (any exception, not only ours): one line for it, the others all done, exit 1."""
    from foleygen import api

    folder = tmp_path / "batch"
    folder.mkdir()
    for stem in ("a1", "b2_cursed", "c3"):
        (folder / f"{stem}.mp4").write_bytes((videos / "a.mp4").read_bytes())
    original = api.load_video

    def sometimes_broken(model, video, *args, **kwargs):
        if "cursed" in str(video):
            raise ZeroDivisionError("the stage blew up")
        return original(model, video, *args, **kwargs)

    monkeypatch.setattr(api, "load_video", sometimes_broken)
    for batch_size in ("1", "3"):
        out = tmp_path / f"out{batch_size}"
        code = main(["generate", str(folder), "-o", str(out), "--model", "debug", "-q", "--batch-size", batch_size])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 1
        assert sorted(p.name for p in out.iterdir()) == ["a1.mp4", "a1.wav", "c3.mp4", "c3.wav"]
        assert len(lines) == 2 and "b2_cursed.mp4" in lines[0] and "ZeroDivisionError" in lines[0]
        assert "--debug" in lines[0] and "2 generated" in lines[1] and "1 failed" in lines[1]
    # --debug adds the traceback for a bug report, and still goes on
    code = main(["generate", str(folder), "-o", str(tmp_path / "dbg"), "--model", "debug", "-q", "--debug"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback (most recent call last)" in err and "sometimes_broken" in err
    assert (tmp_path / "dbg" / "c3.wav").is_file()


def test_a_video_shorter_than_one_visual_frame_gets_its_exact_length(tmp_path, capsys):
    """0.01 s (one frame at 100 fps): shorter than one encoder frame and one codec frame."""
    clip = make_video(tmp_path / "blink.mp4", 0.01, fps=100)
    code, summary = run_json(capsys, clip, "-o", tmp_path / "out")
    assert code == 0 and len(summary["generated"]) == 1
    info = probe(tmp_path / "out" / "blink.wav")
    assert abs(info.duration - probe(clip).duration) < 1e-3


def test_unexpected_errors_outside_the_batch_are_one_line(tmp_path, capsys, monkeypatch):
    from foleygen.cli.commands import generate

    def broken(*_args):
        raise KeyError("surprise")

    monkeypatch.setattr(generate, "collect_jobs", broken)
    code = main(["generate", str(tmp_path), "-o", str(tmp_path / "o"), "--model", "debug", "-q"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "unexpected KeyError" in lines[0]


def test_generate_overlapped_equals_one_after_another(videos, tmp_path, capsys):
    clips = [str(videos / "a.mp4"), str(videos / "sub" / "b.mp4")]
    summaries = {}
    for name, extra in (("overlap", ["--overlap", "on"]), ("sequential", ["--overlap", "off"])):
        argv = ["generate", *clips, "-o", str(tmp_path / name), "--model", "debug", "--no-mux", "--json", *extra]
        capsys.readouterr()
        assert main(argv) == 0
        summaries[name] = json.loads(capsys.readouterr().out)
    for stem in ("a", "b"):
        a, _ = soundfile.read(tmp_path / "overlap" / f"{stem}.wav")
        b, _ = soundfile.read(tmp_path / "sequential" / f"{stem}.wav")
        assert (a == b).all()  # the same draws: overlap changes when stages run, not what they compute
    stages = summaries["overlap"]["stages"]
    assert stages["overlapped"] and not summaries["sequential"]["stages"]["overlapped"]
    assert stages["stages_sum_s"] > 0 and summaries["overlap"]["clips_per_second"] > 0
