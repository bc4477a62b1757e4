"""IB-score and AV-Align through evaluate(), on a synthetic mp4 (made with PyAV) with known timing."""

import av
import numpy as np
import pytest
import torch

from foleygen.eval.ib_score import audio_embedding, imagebind_score, video_clip_times, video_embedding
from foleygen.eval.report import EvalConfig, evaluate

FPS = 25
JUMPS = (10, 30, 42)


def _write_video(path, num_frames=50, size=64):
    frames = np.zeros((num_frames, size, size, 3), np.uint8)
    positions = [(4, 4), (36, 36), (4, 36), (36, 4)]
    pos = 0
    for f in range(num_frames):
        if f in JUMPS:
            pos += 1
        y, x = positions[pos % 4]
        frames[f, y : y + 20, x : x + 20] = (255, 200, 50)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames


def _clicks(times, seconds=2.0, sr=16000):
    wav = np.zeros(int(seconds * sr))
    for t in times:
        i = int(t * sr)
        wav[i : i + 400] = 0.5 * np.hanning(400) * np.sin(np.arange(400) * 0.7)
    return wav


def _energy_onsets(wav, sample_rate):
    hop = sample_rate // 100
    energy = wav[: len(wav) // hop * hop].reshape(-1, hop).square().mean(1)
    active = (energy > 1e-3).int()
    starts = torch.nonzero(torch.diff(active, prepend=torch.zeros(1, dtype=torch.int)) == 1).flatten()
    return (starts * hop / sample_rate).tolist()


@pytest.fixture
def av_folders(tmp_path, wavtools):
    videos, gen, ref = tmp_path / "videos", tmp_path / "gen", tmp_path / "ref"
    for d in (videos, gen, ref):
        d.mkdir()
    _write_video(videos / "a.mp4")
    _write_video(videos / "b.mp4")
    wavtools.write_wav(gen / "a.wav", _clicks([f / FPS for f in JUMPS]))  # in sync
    wavtools.write_wav(gen / "b.wav", _clicks([f / FPS + 0.2 for f in JUMPS]))  # 5 frames late
    wavtools.write_wav(ref / "a.wav", _clicks([f / FPS for f in JUMPS]))
    wavtools.write_wav(ref / "b.wav", _clicks([f / FPS for f in JUMPS]))
    return videos, gen, ref


def test_av_align_from_files(av_folders):
    videos, gen, ref = av_folders
    report = evaluate(
        gen,
        ref,
        videos=videos,
        metrics=["av-align"],
        onset_fn=_energy_onsets,
        config=EvalConfig(duration=2.0, quiet=True),
    )
    r = report["metrics"]["av-align"]
    assert r["n_scored"] == 2
    assert r["value"] == pytest.approx(0.5, abs=1e-6)  # clip a: 1.0, clip b: 0.0
    assert r["reference"] == pytest.approx(1.0)


def test_av_align_with_the_onset_module(av_folders):
    """The default detector (foleygen.eval.onsets.detect_onsets) finds the same clicks."""
    videos, gen, ref = av_folders
    report = evaluate(gen, ref, videos=videos, metrics=["av-align"], config=EvalConfig(duration=2.0, quiet=True))
    assert report["metrics"]["av-align"]["reference"] == pytest.approx(1.0)
    assert report["metrics"]["av-align"]["value"] == pytest.approx(0.5, abs=0.1)


def _tiny_imagebind(directory):
    from safetensors.torch import save_file

    from foleygen.config import save_json
    from foleygen.vision.imagebind import ImageBindConfig, ImageBindModel

    fields = dict(
        out_embed_dim=8,
        image_size=28,
        vision_embed_dim=16,
        vision_num_blocks=1,
        vision_num_heads=2,
        audio_embed_dim=16,
        audio_num_blocks=1,
        audio_num_heads=2,
    )
    model = ImageBindModel(ImageBindConfig(**fields)).eval()
    directory.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "model.safetensors"))
    save_json(directory / "config.json", fields)
    return model


def test_ib_score_from_files_matches_manual(av_folders, tmp_path, monkeypatch):
    videos, gen, ref = av_folders
    model = _tiny_imagebind(tmp_path / "ib")
    report = evaluate(
        gen,
        ref,
        videos=videos,
        metrics=["ib-score"],
        config=EvalConfig(duration=2.0, quiet=True, imagebind=str(tmp_path / "ib")),
    )
    r = report["metrics"]["ib-score"]
    assert r["skipped"] is None and r["n_pairs"] == 2 and -100 <= r["value"] <= 100
    # Manual: clip times of a 2 s video -> five identical (0, 1.96) clips; frames 0 and 49.
    times = video_clip_times(2.0, FPS)
    assert times[0] == times[-1] == (0.0, pytest.approx(2.0 - 1 / FPS))
    from foleygen.eval.pairing import load_clip
    from foleygen.io import read_frames

    v, a = [], []
    for stem in ("a", "b"):
        frames = read_frames(videos / f"{stem}.mp4", FPS)
        clips = torch.stack([frames[[0, 49]]] * 5)
        v.append(video_embedding(model, clips))
        a.append(audio_embedding(model, load_clip(gen / f"{stem}.wav", 16000, 2.0), 16000))
    assert r["value"] == pytest.approx(imagebind_score(np.stack(v), np.stack(a)), abs=1e-3)


def test_ib_score_under_the_av_benchmark_protocol(av_folders, tmp_path):
    """Frames at 0.5 fps as 2-frame clips (a 2 s video: frames 0 and 49), audio from the whole file."""
    from foleygen.eval.protocol import load_audio_imagebind
    from foleygen.io import read_frames

    videos, gen, ref = av_folders
    model = _tiny_imagebind(tmp_path / "ib")
    config = EvalConfig(duration=2.0, quiet=True, imagebind=str(tmp_path / "ib"), protocol="av-benchmark")
    r = evaluate(gen, ref, videos=videos, metrics=["ib-score"], config=config)["metrics"]["ib-score"]
    v, a = [], []
    for stem in ("a", "b"):
        frames = read_frames(videos / f"{stem}.mp4", FPS)
        v.append(video_embedding(model, frames[[0, 49]][None]))
        a.append(audio_embedding(model, load_audio_imagebind(gen / f"{stem}.wav", 16000), 16000))
    assert r["n_pairs"] == 2 and r["value"] == pytest.approx(imagebind_score(np.stack(v), np.stack(a)), abs=1e-3)


def test_ib_score_missing_weights_is_skipped(av_folders, monkeypatch):
    videos, gen, ref = av_folders
    monkeypatch.delenv("FOLEYGEN_IMAGEBIND", raising=False)
    report = evaluate(gen, ref, videos=videos, metrics=["ib"], config=EvalConfig(duration=2.0, quiet=True))
    assert "FOLEYGEN_IMAGEBIND" in report["metrics"]["ib-score"]["skipped"]
    # Asked for by name: an error (the CLI exits 1), not a quiet skip.
    report = evaluate(gen, ref, videos=videos, metrics=["ib-score"], config=EvalConfig(duration=2.0, quiet=True))
    r = report["metrics"]["ib-score"]
    assert r["skipped"] is None and "asked for but cannot run" in r["error"] and "FOLEYGEN_IMAGEBIND" in r["error"]


def test_video_loops_go_on_after_a_bad_file(av_folders, tmp_path, monkeypatch, wavtools):
    """A corrupt video and a stage that raises on one clip: one line each, the other clips scored."""
    from foleygen.eval import ib_score

    videos, gen, ref = av_folders
    for stem in ("c", "d"):
        _write_video(videos / f"{stem}.mp4")
        wavtools.write_wav(gen / f"{stem}.wav", _clicks([f / FPS for f in JUMPS]))
        wavtools.write_wav(ref / f"{stem}.wav", _clicks([f / FPS for f in JUMPS]))
    (videos / "b.mp4").write_bytes(np.random.default_rng(1).bytes(4000))
    original = ib_score.audio_embedding

    calls = []

    def sometimes_broken(model, wav, sample_rate):
        calls.append(1)
        if len(calls) == 2:  # the second clip to get this far: c (a went through, b's video failed first)
            raise ZeroDivisionError("stage blew up")
        return original(model, wav, sample_rate)

    monkeypatch.setattr(ib_score, "audio_embedding", sometimes_broken)
    _tiny_imagebind(tmp_path / "ib")
    lines = []
    report = evaluate(
        gen,
        ref,
        videos=videos,
        metrics=["ib-score", "av-align"],
        onset_fn=_energy_onsets,
        config=EvalConfig(duration=2.0, quiet=True, imagebind=str(tmp_path / "ib")),
        on_failure=lines.append,
    )
    assert len(lines) == 2 and lines[0].startswith(str(videos / "b.mp4")) and "unexpected" not in lines[0]
    assert lines[1].startswith(str(gen / "c.wav")) and "unexpected ZeroDivisionError: stage blew up" in lines[1]
    assert report["excluded_stems"] == ["b", "c"]
    m = report["metrics"]
    assert m["ib-score"]["n_pairs"] == 2 and m["av-align"]["n_scored"] == 2
    assert m["av-align"]["value"] == pytest.approx(1.0) and m["av-align"]["reference"] == pytest.approx(1.0)


def test_imagebind_score_scale():
    v = np.array([[1.0, 0.0], [0.0, 2.0]])
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert imagebind_score(v, a) == pytest.approx(100 * (1 + 1 / np.sqrt(2)) / 2)
