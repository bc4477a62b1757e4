import json

import numpy as np
import pytest
import torch
from media_factory import write_tone_video

from foleygen.cli import main
from foleygen.data.cache import CacheReader
from foleygen.data.manifest import load_manifest
from foleygen.data.prepare import prepare_cache
from foleygen.vision.base import VisualEncoder


def write_video(path, seconds=1.0, fps=10, size=32, sr=16000, freq=440.0, audio=True):
    """A small mp4 (video brightness ramping each frame + a continuous AAC sine)."""
    return write_tone_video(path, seconds, fps, size, sr, freq, audio=audio)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """6 clips (one shorter than the cache duration), a corrupt file and a clip without audio."""
    root = tmp_path_factory.mktemp("clips")
    rows = ["path,split,label"]
    for i in range(6):
        write_video(root / f"clip{i}.mp4", seconds=1.0 if i else 0.6, freq=300 + 100 * i)
        rows.append(f"clip{i}.mp4,{'val' if i == 5 else 'train'},tone")
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    rows.append("corrupt.mp4,train,broken")
    write_video(root / "silent.mp4", seconds=1.0, audio=False)
    rows.append("silent.mp4,train,silent")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    from foleygen.codecs.compact import CompactCodec, CompactCodecConfig

    torch.manual_seed(0)
    codec = CompactCodec(CompactCodecConfig(hidden=16, latent_dim=8, num_codebooks=2, codebook_size=16, res_blocks=1))
    for layer in codec.quantizer.layers:  # random codebooks count as initialised for this stand-in
        layer.inited.fill_(1)
    codec.save_pretrained(root / "codec")
    return root


def prepare_argv(dataset, cache):
    """`foleygen prepare` arguments for the tiny data set: compact 16 px frames at 10 fps, 0.8 s, CPU."""
    return [
        "prepare", str(dataset / "manifest.csv"), "--codec", str(dataset / "codec"), "--visual", "compact",
        "--visual-fps", "10", "--image-size", "16", "-o", str(cache), "--duration", "0.8", "-q", "--device", "cpu",
    ]  # fmt: skip


def test_prepare_cli_sharded_with_failures_then_resume_skips(dataset, tmp_path):
    cache = tmp_path / "cache"
    base = [*prepare_argv(dataset, cache), "--batch-size", "3"]
    assert main(base + ["--shard", "0/2"]) == 0
    with pytest.raises(Exception, match="not finished"):
        CacheReader(cache)
    assert main(base + ["--shard", "1/2"]) == 0
    failures = [json.loads(line) for line in (cache / "failures.jsonl").read_text().splitlines()]
    reasons = {f["id"]: f["reason"] for f in failures}
    assert set(reasons) == {"corrupt", "silent"} and reasons["silent"] == "no audio stream"
    r = CacheReader(cache)
    assert sorted(c.id for c in r.clips) == [f"clip{i}" for i in range(6)]
    assert r.meta["visual"]["store"] == "frames" and r.meta["codes_dtype"] == "int16"
    by_id = {c.id: i for i, c in enumerate(r.clips)}
    assert r.codes(by_id["clip1"]).shape == (2, 40)  # 0.8 s at 50 Hz (longer clips are cut)
    assert r.codes(by_id["clip0"]).shape == (2, 30)  # the 0.6 s clip stays 0.6 s
    assert r.visual_data(by_id["clip1"]).shape == (8, 16, 16, 3) and r.visual_data(by_id["clip1"]).dtype == np.uint8
    # frames change brightness every frame: the stored ones are in order
    means = r.visual_data(by_id["clip1"]).reshape(8, -1).mean(1)
    assert np.all(np.diff(means) > 0)
    before = (cache / "shard-00000-of-00002" / "codes.bin").read_bytes()
    assert main(base + ["--shard", "0/2"]) == 0  # finished shard: nothing to do
    assert (cache / "shard-00000-of-00002" / "codes.bin").read_bytes() == before


class MeanColour(VisualEncoder):
    """Frozen stand-in: per-frame mean RGB through a fixed linear map -> [B, F, 4]."""

    fps, image_size, dim, trainable = 10.0, 16, 4, False

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)

    def preprocess(self, frames):
        return frames.permute(0, 1, 4, 2, 3).float() / 255.0

    def forward(self, frames):
        return self.proj(frames.mean(dim=(3, 4)))


class FlakyCodec(torch.nn.Module):
    """Wraps a codec; raises KeyboardInterrupt on call ``fail_at`` (an interrupted prepare)."""

    def __init__(self, codec, fail_at):
        super().__init__()
        self.codec, self.calls, self.fail_at = codec, 0, fail_at
        for name in ("sample_rate", "frame_rate", "num_codebooks", "cardinality", "channels"):
            setattr(self, name, getattr(codec, name))

    def encode(self, wav):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return self.codec.encode(wav)


def test_interrupted_prepare_resumes_to_the_same_cache_with_features(dataset, tmp_path):
    from foleygen.codecs import load_codec

    codec = load_codec(str(dataset / "codec"))
    torch.manual_seed(0)
    encoder = MeanColour().eval()
    manifest = load_manifest(dataset / "manifest.csv")
    kwargs = dict(codec_name="tiny", visual_kind="mean", duration=0.8, batch_size=2, workers=1, quiet=True)
    with pytest.raises(KeyboardInterrupt):
        prepare_cache(manifest, tmp_path / "a", FlakyCodec(codec, fail_at=3), encoder, **kwargs)
    assert (tmp_path / "a" / "shard-00000-of-00001.partial").is_dir()
    result = prepare_cache(manifest, tmp_path / "a", codec, encoder, **kwargs)
    assert result.skipped > 0 and result.prepared + result.skipped + result.failed == len(manifest)
    prepare_cache(manifest, tmp_path / "b", codec, encoder, **kwargs)
    ra, rb = CacheReader(tmp_path / "a"), CacheReader(tmp_path / "b")
    assert ra.meta["visual"]["store"] == "features" and ra.meta["visual_dtype"] == "float16"
    ids_a = {c.id: i for i, c in enumerate(ra.clips)}
    for j, c in enumerate(rb.clips):
        i = ids_a[c.id]
        assert np.array_equal(ra.codes(i), rb.codes(j)) and np.array_equal(ra.visual_data(i), rb.visual_data(j))
        assert ra.visual_data(i).shape[1] == 4
    assert len(ra.clips) == 6 and len(ra.failures()) == 2


def test_prepare_takes_its_shard_from_torchrun(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    cache = tmp_path / "cache"
    assert (
        main(
            prepare_argv(dataset, cache)
        )
        == 0
    )
    assert (cache / "shard-00001-of-00003").is_dir() and not (cache / "shard-00000-of-00003").exists()


def test_clip_offsets_from_the_manifest_are_honoured(dataset, tmp_path):
    """A manifest `start` (VGGSound rows pointing into a full video) cuts the clip there."""
    from foleygen.codecs import load_codec

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"path": str(dataset / "clip1.mp4"), "split": "train", "start": 0.5}) + "\n")
    encoder = MeanColour().eval()
    prepare_cache(
        load_manifest(manifest),
        tmp_path / "c",
        load_codec(str(dataset / "codec")),
        encoder,
        codec_name="tiny",
        visual_kind="mean",
        duration=0.8,
        quiet=True,
    )
    r = CacheReader(tmp_path / "c")
    (clip,) = r.clips
    assert clip.seconds == pytest.approx(0.5)  # 1 s file from 0.5 s: half a second is left
    assert r.codes(0).shape == (2, 25) and r.visual_data(0).shape == (5, 4)
