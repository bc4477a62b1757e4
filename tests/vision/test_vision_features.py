import av
import numpy as np
import pytest
import torch

from foleygen.errors import ConfigError
from foleygen.vision.base import FrozenVisualEncoder
from foleygen.vision.compact import CompactVisualConfig, CompactVisualEncoder
from foleygen.vision.features import extract_features, extract_features_to_dir
from foleygen.vision.preprocessing import ImageTransform


def write_video(path, num_frames=20, fps=10, size=32):
    """Frame k is a flat grey of level 10 * k (easy to recognise after a lossy codec)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        for k in range(num_frames):
            img = np.full((size, size, 3), 10 * k, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


class MeanColour(FrozenVisualEncoder):
    """A deterministic per-frame test encoder: the mean pixel value per channel, in 0..255."""

    def __init__(self, fps):
        super().__init__(chunk_size=4)
        self.fps, self.image_size, self.dim = float(fps), 16, 3
        self.transform = ImageTransform(
            resize=16,
            crop=0,
            resize_mode="square",
            interpolation="bilinear",
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            rescale_factor=1.0,
        )
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.freeze()

    def _encode_chunk(self, images):
        return images.mean(dim=(2, 3)) * self.scale


def test_extract_features_picks_frames_and_chunks(tmp_path):
    video = write_video(tmp_path / "v.mp4")
    enc = MeanColour(fps=5)
    whole = extract_features(video, enc)
    assert whole.shape == (10, 3)  # 2 s at 5 fps
    levels = whole.mean(dim=1)
    expected = torch.tensor([10.0 * 2 * i for i in range(10)])  # frame shown at i/5 s is source frame 2i
    assert (levels - expected).abs().max() < 4.0
    chunked = extract_features(video, enc, chunk_frames=3)
    torch.testing.assert_close(chunked, whole)
    part = extract_features(video, enc, start=0.4, duration=1.0)
    assert part.shape == (5, 3)
    torch.testing.assert_close(part, whole[2:7])


def test_unchunkable_encoder_reads_once(tmp_path, monkeypatch):
    import foleygen.vision.frames as frames_mod

    calls = []
    real = frames_mod.read_frames

    def spy(path, fps, size=None, **kw):
        calls.append(kw["duration"])
        return real(path, fps, size, **kw)

    monkeypatch.setattr(frames_mod, "read_frames", spy)
    video = write_video(tmp_path / "v.mp4")
    enc = CompactVisualEncoder(CompactVisualConfig(fps=10, image_size=16, dim=8, channels=[8], stem_patch=4, groups=4))
    assert enc.chunk_multiple is None
    feats = extract_features(video, enc, chunk_frames=4)
    assert feats.shape == (20, 8) and len(calls) == 1
    calls.clear()
    extract_features(video, MeanColour(fps=10), chunk_frames=8)
    assert len(calls) == 3  # 8 + 8 + 4 frames


def test_extract_to_dir_is_resumable_and_skips_bad_files(tmp_path):
    a = write_video(tmp_path / "a.mp4", num_frames=10)
    b = write_video(tmp_path / "b.mp4", num_frames=15)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video")
    out = tmp_path / "feats"
    enc = MeanColour(fps=5)
    report = extract_features_to_dir([a, bad, b], enc, out)
    assert [p.name for p in report.written] == ["a.npy", "b.npy"]
    assert len(report.failed) == 1 and report.failed[0][0] == bad and "bad.mp4" in report.failed[0][1]
    assert np.load(out / "a.npy").shape == (5, 3) and np.load(out / "b.npy").shape == (8, 3)
    assert not list(out.glob(".*tmp"))
    again = extract_features_to_dir([a, bad, b], enc, out)
    assert again.written == [] and again.skipped == [a, b] and len(again.failed) == 1
    with pytest.raises(ConfigError, match="another encoder"):
        extract_features_to_dir([a], MeanColour(fps=10), out)
    with pytest.raises(ConfigError, match="not unique"):
        extract_features_to_dir([a, tmp_path / "x" / "a.mp4"], enc, tmp_path / "other")
