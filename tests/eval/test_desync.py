"""DeSync: our Synchformer against the publisher's code (recorded fixture), the protocol, and ``foleygen eval``."""

import argparse
import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from foleygen.cli import main
from foleygen.errors import CheckpointError, MediaError
from foleygen.eval.desync import (
    audio_segments,
    clip_offsets,
    mean_abs_offset,
    offsets_from_logits,
    read_sync_audio,
    read_sync_video,
    segment_times,
    sync_logmel,
    video_segments,
    window_ranges,
)
from foleygen.eval.embedders import ModelUnavailable
from foleygen.eval.report import EvalConfig, evaluate
from foleygen.eval.synchformer import Synchformer, SynchformerConfig, load_synchformer, offset_grid

REFERENCE = Path(__file__).parent / "reference" / "synchformer"
# the small model of reference/synchformer/README.md
SMALL = SynchformerConfig(
    dim=16, video_depth=2, video_heads=2, audio_depth=2, audio_heads=2, audio_ff=32, sync_depth=2, sync_heads=2,
    segments=2,
)  # fmt: skip
# a tiny model with the published window (14 segments), for the protocol
TINY = dict(dim=8, video_depth=1, video_heads=2, audio_depth=1, audio_heads=2, audio_ff=16, sync_depth=1, sync_heads=2)


def _small_fields():
    return {k: getattr(SMALL, k) for k in (*TINY, "segments")}


def _formula(shape, a, b):
    """The fixture's inputs: ``sin(a i) cos(b i)`` over the flat index, in float64, cast to float32."""
    i = torch.arange(int(np.prod(shape)), dtype=torch.float64)
    return (torch.sin(a * i) * torch.cos(b * i)).reshape(shape).to(torch.float32)


@pytest.fixture(scope="module")
def recorded():
    data = load_file(str(REFERENCE / "small_random.safetensors"))
    state = {k.removeprefix("state."): v for k, v in data.items() if k.startswith("state.")}
    return state, data


def test_matches_the_publishers_code(recorded, tmp_path):
    """A small random model of av-benchmark's classes: same features and logits from its state dict."""
    state, data = recorded
    video = _formula((2, 2, 16, 3, 224, 224), 0.7, 0.0013)
    audio = _formula((2, 2, 128, 66), 0.37, 0.0021)
    assert float(video.double().sum()) == pytest.approx(float(data["in.vis_checksum"]), abs=1e-4)
    assert float(audio.double().sum()) == pytest.approx(float(data["in.aud_checksum"]), abs=1e-4)
    torch.testing.assert_close(video.reshape(-1)[:8], data["in.vis_first"])
    # saved as the publisher saves it (torch.save of the state dict), read through our loader
    (tmp_path / "small").mkdir()
    torch.save(state, tmp_path / "small" / "synchformer_state_dict.pth")
    (tmp_path / "small" / "config.json").write_text(json.dumps(_small_fields()))
    model = load_synchformer(tmp_path / "small")
    assert model.config == SMALL
    with torch.inference_mode():
        vfeats = model.video_features(video)
        afeats = model.audio_features(audio)
        logits = model.offset_logits(vfeats, afeats)
    torch.testing.assert_close(vfeats, data["out.vfeats"], atol=1e-5, rtol=0)
    torch.testing.assert_close(afeats, data["out.afeats"], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, data["out.logits"], atol=1e-5, rtol=0)


def test_full_model_has_the_published_layout():
    """Our default config's state dict: exactly the keys and shapes of synchformer_state_dict.pth."""
    with torch.device("meta"):
        model = Synchformer()
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == json.loads((REFERENCE / "full_layout.json").read_text())
    assert len(ours) == 513 and sum(int(np.prod(s)) for s in ours.values()) == 237_460_245


def test_loader_refuses_pickles_and_says_what_is_missing(recorded, tmp_path, monkeypatch):
    state, _ = recorded
    monkeypatch.delenv("FOLEYGEN_SYNCHFORMER", raising=False)
    with pytest.raises(ModelUnavailable, match="FOLEYGEN_SYNCHFORMER.*synchformer_state_dict.pth"):
        load_synchformer(None)
    with pytest.raises(ModelUnavailable, match="not found"):
        load_synchformer(tmp_path / "absent.pth")
    pickled = tmp_path / "pickled.pth"
    torch.save({**state, "args": argparse.Namespace(lr=1)}, pickled)
    with pytest.raises(CheckpointError, match="pickled Python objects.*never unpickles") as err:
        load_synchformer(pickled)
    assert "\n" not in str(err.value)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "small.safetensors"))
    with pytest.raises(CheckpointError, match="config expects") as err:  # the small file, the full config
        load_synchformer(tmp_path / "small.safetensors")
    assert "\n" not in str(err.value)
    (tmp_path / "partial").mkdir()  # the small config, a file without the sync head
    (tmp_path / "partial" / "config.json").write_text(json.dumps(_small_fields()))
    partial = {k: v for k, v in state.items() if not k.startswith("transformer.")}
    torch.save(partial, tmp_path / "partial" / "synchformer_state_dict.pth")
    with pytest.raises(CheckpointError, match="43 missing key.*transformer.OFF_tok"):
        load_synchformer(tmp_path / "partial")


def test_segments_and_windows_of_an_8_s_clip():
    times = segment_times(8.0)
    assert len(times) == 24  # (200 - 16) // 8 + 1
    assert times[0] == (0.0, 0.64) and times[1] == (0.32, 0.96) and times[-1] == (pytest.approx(7.36), 8.0)
    assert window_ranges(24) == [(0, 14), (10, 24)]  # 0-4.8 s and 3.2-8.0 s
    assert window_ranges(14) == [(0, 14), (0, 14)]  # a 4.8 s clip: one window, read twice
    with pytest.raises(ValueError, match="13 segments"):
        window_ranges(13)
    frames = torch.randint(0, 256, (200, 4, 4, 3), dtype=torch.uint8)
    video = video_segments(frames)
    assert video.shape == (24, 16, 3, 4, 4) and video.min() >= -1 and video.max() <= 1
    torch.testing.assert_close(video[1, 0], frames[8].permute(2, 0, 1).float() / 127.5 - 1)
    audio = audio_segments(torch.arange(128000.0), 10240, 5120)
    assert audio.shape == (24, 10240) and audio[23, 0] == 23 * 5120 and audio[23, -1] == 127999


def test_offset_grid_argmax_and_mean_absolute_offset():
    grid = offset_grid()
    assert grid.shape == (21,) and grid.dtype == torch.float32
    torch.testing.assert_close(grid, torch.arange(-10, 11, dtype=torch.float32) * 0.2)
    assert float(grid[10]) == 0.0 and float(grid[0]) == -2.0 and float(grid[-1]) == 2.0
    logits = torch.zeros(3, 21)
    logits[0, 10], logits[1, 13], logits[2, 2] = 5, 5, 5
    torch.testing.assert_close(offsets_from_logits(logits), torch.tensor([0.0, 0.6, -1.6]))
    assert mean_abs_offset([0.2, -0.4, 0.0, 2.0]) == pytest.approx(0.65)
    with pytest.raises(ValueError):
        mean_abs_offset([])


def test_logmel_matches_librosa():
    """Synchformer's frontend (torchaudio MelSpectrogram in av-benchmark) against librosa's equivalent."""
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    t = np.arange(10240) / 16000
    x = 0.05 * rng.standard_normal(10240) + 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t)
    x = x.astype(np.float32)
    ours = sync_logmel(torch.from_numpy(x)[None])[0].numpy()  # [128, 66]
    mel = librosa.feature.melspectrogram(
        y=x, sr=16000, n_fft=1024, hop_length=160, win_length=400, window="hann", center=True,
        pad_mode="reflect", power=2.0, n_mels=128, fmin=0.0, fmax=8000.0, htk=True, norm=None,
    )  # fmt: skip
    assert mel.shape == (128, 65)
    want = (np.log(mel + 1e-6) + 4.2677393) / (2 * 4.5689974)
    np.testing.assert_allclose(ours[:, :65], want, atol=2e-5)  # measured 1.5e-6
    np.testing.assert_allclose(ours[:, 65], 4.2677393 / (2 * 4.5689974), atol=1e-6)  # the padded column


def _tiny_model(directory=None):
    torch.manual_seed(0)
    model = Synchformer(SynchformerConfig(**TINY)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    if directory is not None:
        directory.mkdir()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "model.safetensors"))
        (directory / "config.json").write_text(json.dumps(TINY))
    return model


def test_clip_offsets_reads_both_windows_in_one_pass():
    model = _tiny_model()
    gen = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (200, 224, 224, 3), dtype=torch.uint8, generator=gen)
    wav = 0.1 * torch.randn(128000, generator=gen)
    clip = clip_offsets(model, frames, wav, batch=5)
    assert clip.windows == [(0.0, pytest.approx(4.8)), (pytest.approx(3.2), pytest.approx(8.0))]
    assert clip.logits.shape == (2, 21) and len(clip.offsets) == 2
    with torch.inference_mode():  # the last window computed on its own
        video = video_segments(frames[80:200])[None]
        mel = sync_logmel(audio_segments(wav, 10240, 5120)[10:24])[None]
        logits = model.offset_logits(model.video_features(video), model.audio_features(mel))
    np.testing.assert_allclose(clip.logits[1], logits[0].numpy(), atol=1e-5)
    assert clip.offsets[1] == pytest.approx(float(offset_grid()[logits[0].argmax()]))


def _write_video(path, seconds, size=32, audio=False):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=16000) if audio else None
        for f in range(round(25 * seconds)):
            arr = np.zeros((size, size, 3), np.uint8)
            arr[:, (f * 3) % size] = 255  # a bar sweeping across
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            tone = (0.2 * np.sin(np.arange(int(16000 * seconds)) * 0.1)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            frame.sample_rate = 16000
            for packet in sound.encode(frame):
                container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)


def test_reading_refuses_short_clips_and_silent_videos(tmp_path, wavtools):
    _write_video(tmp_path / "short.mp4", 2.0)
    with pytest.raises(MediaError, match="video is 2.00 s, DeSync reads 8 s") as err:
        read_sync_video(tmp_path / "short.mp4", 8.0)
    assert str(err.value).startswith(str(tmp_path / "short.mp4")) and "\n" not in str(err.value)
    with pytest.raises(MediaError, match="no audio stream"):
        read_sync_audio(tmp_path / "short.mp4", 8.0)  # a generated "audio" that is a silent video
    wavtools.write_wav(tmp_path / "short.wav", wavtools.tone(440, 7.5))
    with pytest.raises(MediaError, match="audio is 7.50 s, DeSync reads 8 s"):
        read_sync_audio(tmp_path / "short.wav", 8.0)
    wavtools.write_wav(tmp_path / "ok.wav", wavtools.tone(440, 7.99, 44100), 44100)  # within a frame: padded
    assert read_sync_audio(tmp_path / "ok.wav", 8.0).shape == (128000,)
    _write_video(tmp_path / "long.mp4", 8.2)
    frames = read_sync_video(tmp_path / "long.mp4", 8.0)
    assert frames.shape == (200, 224, 224, 3) and frames.dtype == torch.uint8


@pytest.fixture
def sync_folders(tmp_path, wavtools):
    videos, gen, ref = tmp_path / "videos", tmp_path / "gen", tmp_path / "ref"
    for d in (videos, gen, ref):
        d.mkdir()
    for i, stem in enumerate(("a", "b")):
        _write_video(videos / f"{stem}.mp4", 8.0)
        wavtools.write_wav(gen / f"{stem}.wav", wavtools.tone(300 + 200 * i, 8.0))
        wavtools.write_wav(ref / f"{stem}.wav", wavtools.tone(300 + 200 * i, 8.0))
    return videos, gen, ref


def test_eval_av_benchmark_prints_desync(sync_folders, tmp_path, capsys, monkeypatch):
    videos, gen, ref = sync_folders
    for var in ("FOLEYGEN_VGGISH", "FOLEYGEN_PANNS", "FOLEYGEN_PASST", "FOLEYGEN_IMAGEBIND", "FOLEYGEN_SYNCHFORMER"):
        monkeypatch.delenv(var, raising=False)
    model = _tiny_model(tmp_path / "sync")
    out_json = tmp_path / "r.json"
    argv = ["eval", "--generated", str(gen), "--reference", str(ref), "--videos", str(videos)]
    rc = main(argv + ["--protocol", "av-benchmark", "--synchformer", str(tmp_path / "sync"), "--json", str(out_json)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    lines = printed.out.splitlines()
    assert lines[0].strip("|").split("|")[-1].strip() == "DeSync↓"
    result = json.loads(out_json.read_text())["metrics"]["desync"]
    assert result["n_clips"] == 2 and result["windows"] == [[0.0, 4.8], [3.2, 8.0]]
    assert lines[2].strip("|").split("|")[-1].strip() == f"{result['value']:.2f}"
    # the same number by hand: both windows of both clips
    offsets = []
    for stem in ("a", "b"):
        frames = read_sync_video(videos / f"{stem}.mp4", 8.0)
        clip = clip_offsets(model, frames, read_sync_audio(gen / f"{stem}.wav", 8.0))
        assert result["offsets"][stem] == pytest.approx(clip.offsets)
        offsets += clip.offsets
    assert result["value"] == pytest.approx(mean_abs_offset(offsets)) and 0 <= result["value"] <= 2
    assert "DeSync = mean |offset| in seconds" in printed.out
    # no weights: the row says so and the run goes on
    rc = main(argv + ["--protocol", "av-benchmark", "-q"])
    printed = capsys.readouterr()
    assert rc == 0 and printed.out.splitlines()[2].strip("|").split("|")[-1].strip() == "n/a"
    assert any(line.startswith("- DeSync: synchformer weights not configured") for line in printed.out.splitlines())


def test_desync_asked_for_without_weights_is_an_error_and_short_clips_fail_alone(sync_folders, monkeypatch, tmp_path):
    videos, gen, ref = sync_folders
    monkeypatch.delenv("FOLEYGEN_SYNCHFORMER", raising=False)
    config = EvalConfig(quiet=True)
    r = evaluate(gen, ref, videos=videos, metrics=["desync"], config=config)["metrics"]["desync"]
    assert "asked for but cannot run" in r["error"] and "FOLEYGEN_SYNCHFORMER" in r["error"]
    _write_video(videos / "b.mp4", 3.0)  # too short: one line, clip b left out, clip a scored
    _tiny_model(tmp_path / "sync")
    lines = []
    config = EvalConfig(quiet=True, synchformer=str(tmp_path / "sync"))
    report = evaluate(gen, ref, videos=videos, metrics=["desync"], config=config, on_failure=lines.append)
    assert len(lines) == 1 and lines[0].startswith(str(videos / "b.mp4")) and "video is 3.00 s" in lines[0]
    assert report["metrics"]["desync"]["n_clips"] == 1 and report["excluded_stems"] == ["b"]
    short = evaluate(gen, ref, videos=videos, metrics=["desync"], config=EvalConfig(duration=4.0, quiet=True))
    assert "at least 4.8 s" in short["metrics"]["desync"]["error"]
