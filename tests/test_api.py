"""FoleyGen API on the tiny random "debug" model: lengths, batching, seeds, windows, checkpoints."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from foleygen import FoleyGen
from foleygen.errors import CheckpointError, ConfigError, MediaError

SR = 16000


def make_video(path: Path, seconds: float, fps: int = 25, size=(48, 64)) -> Path:
    """A small H.264 clip with a moving bright square (no audio)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for i in range(round(seconds * fps)):
            img = np.zeros((*size, 3), dtype=np.uint8)
            x = (3 * i) % (size[1] - 8)
            img[10:18, x : x + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def frames(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 32, 40, 3), dtype=torch.uint8, generator=g)


@pytest.fixture(scope="module")
def model():
    return FoleyGen.from_pretrained("debug")


def test_output_length_is_each_videos_duration(model):
    assert model.sample_rate == SR and model.duration == 1.0
    # 13 frames at 25 fps = 0.52 s; 20 frames at 30 fps = 0.6667 s (not a whole number of codec frames)
    wavs = model.generate_list([frames(13), frames(20)], fps_of_tensors=[25, 30])
    assert [tuple(w.shape) for w in wavs] == [(1, round(0.52 * SR)), (1, round(20 / 30 * SR))]
    batch = model.generate([frames(13), frames(20)], fps_of_tensors=[25, 30])
    assert batch.shape == (2, 1, round(20 / 30 * SR))
    assert torch.equal(batch[0, :, : wavs[0].shape[-1]], wavs[0]) and batch[0, :, wavs[0].shape[-1] :].abs().sum() == 0
    assert torch.isfinite(batch).all() and batch.abs().max() > 0


def test_same_seed_same_audio(model):
    a = model.generate([frames(10), frames(10, 1)], seed=3)
    b = model.generate([frames(10), frames(10, 1)], seed=3)
    c = model.generate([frames(10), frames(10, 1)], seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_generation_params(model):
    model.set_generation_params(temperature=0.0, cfg_coef=1.0, duration=0.3)
    try:
        a = model.generate_codes([frames(25)], seed=0)[0]
        b = model.generate_codes([frames(25)], seed=99)[0]
        assert torch.equal(a, b)  # greedy ignores the seed
        assert a.shape == (2, 15)  # duration=0.3 s overrides the video's 1 s: 15 codec frames
    finally:
        model.set_generation_params()
    with pytest.raises(ConfigError):
        model.set_generation_params(extend_stride=1.0)  # must leave an overlap with the 1 s window
    with pytest.raises(ConfigError):
        model.set_generation_params(top_p=2.0)


def test_long_video_sliding_windows_without_seam(model):
    model.set_generation_params(extend_stride=0.4)
    try:
        assert model._stride_frames() == 20
        codes = model.generate_codes([frames(65)], seed=0)[0]  # 2.6 s, window 1 s -> 5 windows
        assert codes.shape == (2, 130)
        wav = model.generate([frames(65)], seed=0)[0, 0]
    finally:
        model.set_generation_params()
    assert wav.shape == (round(2.6 * SR),)
    # the clip is decoded in one piece: window joins never reach the codec as separate segments
    assert torch.equal(wav, model.decode(codes, round(2.6 * SR))[0])
    hop = SR // 50
    diff = wav.diff().pow(2)
    # energy of the sample differences in a one-frame neighbourhood of every codec frame boundary
    local = torch.stack([diff[max(0, t * hop - hop // 2) : t * hop + hop // 2].mean() for t in range(1, 130)])
    joins = [50 + 20 * i for i in range(4)]  # where windows 1..4 start adding frames
    typical = local.median()
    for t in joins:
        assert local[t - 1] < 4 * typical, f"spike at the join at frame {t}"


def test_video_files_and_errors(model, tmp_path):
    path = make_video(tmp_path / "clip.mp4", 0.84)
    from foleygen.io import probe

    duration = probe(path).duration
    wav = model.generate([str(path)])
    assert wav.shape == (1, 1, round(duration * SR))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(MediaError):
        model.generate([bad])
    with pytest.raises(MediaError):
        model.generate([torch.zeros(4, 8, 8, dtype=torch.uint8)])  # not [F, H, W, 3]


def test_continuation_keeps_the_prompt(model):
    prompt = model.generate_codes([frames(10)], seed=1)[0][:, :12]  # 0.4 s of the clip's codes
    codes = model.generate_codes([frames(25)], seed=2, prompt_codes=[prompt])[0]
    assert codes.shape == (2, 50) and torch.equal(codes[:, :12], prompt)
    wav_prompt = 0.1 * torch.randn(1, 8000)  # 1 s at 8 kHz, resampled to 16 kHz then encoded
    out = model.generate_continuation(wav_prompt[:, :2400], 8000, [frames(25), frames(30)], seed=0)
    assert out.shape == (2, 1, round(1.2 * SR))
    again = model.generate_continuation(wav_prompt[:, :2400], 8000, [frames(25), frames(30)], seed=0)
    assert torch.equal(out, again)
    with pytest.raises(ConfigError):  # 1.5 s prompt > 1 s window
        model.generate_continuation(torch.zeros(1, 24000), SR, [frames(50)])


@pytest.mark.parametrize("conditioning,visual_attention", [("cross", "full"), ("prefix", "frame_specific")])
def test_save_and_load_round_trip(tmp_path, conditioning, visual_attention):
    model = FoleyGen.from_pretrained("debug", conditioning=conditioning, visual_attention=visual_attention)
    model.set_generation_params(top_k=5, cfg_coef=2.0)
    target = model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in target.iterdir()) == ["codec", "config.json", "model.safetensors"]
    config = json.loads((target / "config.json").read_text())
    assert {"codec", "visual", "lm", "sequence"} <= set(config)
    assert config["lm"]["conditioning"] == conditioning and config["codec"]["type"] == "compact"
    loaded = FoleyGen.from_pretrained(target)
    assert loaded.generation == model.generation
    video = frames(20)
    assert torch.equal(loaded.generate([video], seed=5), model.generate([video], seed=5))
    model.save_pretrained(target)  # overwriting an existing checkpoint works and leaves no debris
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_missing_models_give_one_line_errors(tmp_path, monkeypatch):
    import foleygen.api

    monkeypatch.setattr(foleygen.api, "DEMO_DIR", tmp_path / "demo")
    with pytest.raises(CheckpointError, match="embedded demo model is missing"):
        FoleyGen.from_pretrained("demo")
    with pytest.raises(CheckpointError, match="not a FoleyGen checkpoint"):
        FoleyGen.from_pretrained(tmp_path / "nowhere" / "deeper")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="local cache") as err:
        FoleyGen.from_pretrained("someone/foleygen-model")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        FoleyGen.from_pretrained(tmp_path, conditioning="prefix")  # options are for "debug" only


def test_parts_must_fit():
    model = FoleyGen.from_pretrained("debug")
    from foleygen.lm import AudioLM, LMConfig

    lm = AudioLM(LMConfig(dim=32, num_layers=1, num_heads=4, num_codebooks=3, cardinality=32, visual_dim=16))
    with pytest.raises(ConfigError, match="num_codebooks"):
        FoleyGen(model.codec, model.visual_encoder, lm, 1.0)


@pytest.fixture(autouse=True)
def _one_thread():
    # The debug model is tiny: one thread beats two that fight with other processes for the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_external_codec_reference_relative_to_the_checkpoint(tmp_path):
    model = FoleyGen.from_pretrained("debug")
    target = model.save_pretrained(tmp_path / "ckpt")
    (target / "codec").rename(tmp_path / "shared_codec")  # e.g. one codec shared by several LMs
    config = json.loads((target / "config.json").read_text())
    config["codec"] = {"type": "external", "path": "../shared_codec", "num_codebooks": 2}
    (target / "config.json").write_text(json.dumps(config))
    loaded = FoleyGen.from_pretrained(target)
    video = frames(10)
    assert torch.equal(loaded.generate([video], seed=1), model.generate([video], seed=1))
    assert loaded.codec_source == {"path": str(target / "../shared_codec")}
    loaded.save_pretrained(tmp_path / "elsewhere" / "copy")
    assert (tmp_path / "elsewhere" / "copy" / "codec").is_dir()  # our codec is embedded: the copy stands alone
    again = FoleyGen.from_pretrained(tmp_path / "elsewhere" / "copy")
    assert torch.equal(again.generate([video], seed=1), model.generate([video], seed=1))


def test_update_generation_params_changes_only_what_it_is_given():
    model = FoleyGen.from_pretrained("debug")
    model.set_generation_params(top_k=7, temperature=0.3, cfg_coef=2.0, top_p=0.5)
    model.update_generation_params(temperature=0.9, duration=0.5)
    g = model.generation
    assert (g.top_k, g.top_p, g.temperature, g.cfg_coef, g.duration) == (7, 0.5, 0.9, 2.0, 0.5)
    with pytest.raises(ConfigError, match="unknown generation settings"):
        model.update_generation_params(temprature=1.0)
    with pytest.raises(ConfigError, match="temperature >= 0"):
        model.update_generation_params(temperature=-1.0)
