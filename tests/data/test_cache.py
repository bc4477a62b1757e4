import numpy as np
import pytest
import torch

from foleygen.data.cache import CacheReader, ShardWriter, init_cache, make_fingerprint
from foleygen.data.datasets import CachedClipDataset, build_cached_datasets, collate_clips
from foleygen.errors import ConfigError, DataError

CODEC = {
    "name": "tiny",
    "sample_rate": 16000,
    "frame_rate": 50.0,
    "num_codebooks": 2,
    "cardinality": 1000,
    "channels": 1,
}
VISUAL = {
    "kind": "stand-in",
    "path": None,
    "fps": 25.0,
    "input_fps": 25.0,
    "dim": 3,
    "image_size": 8,
    "trainable": False,
}


def clip(seconds):
    """Codes [2, T] encoding the time index, features [F, 3] encoding the frame index (alignment checks)."""
    T, F = round(seconds * 50), round(seconds * 25)
    codes = np.stack([np.arange(T) % 1000, (np.arange(T) + 7) % 1000])
    feats = np.repeat(np.arange(F, dtype=np.float32)[:, None], 3, axis=1)
    return codes, feats


def make_cache(path, lengths=(1.0, 3.0, 2.0), split="train"):
    init_cache(path, make_fingerprint(codec=CODEC, visual=VISUAL, duration=4.0))
    w = ShardWriter(path, 0, 1)
    for i, s in enumerate(lengths):
        codes, feats = clip(s)
        w.add(f"c{i}", codes, feats, split=split if i else "val", label=None, seconds=s)
    w.finalize()
    return path


def test_write_read_roundtrip_and_dtypes(tmp_path):
    cache = make_cache(tmp_path / "c")
    r = CacheReader(cache)
    assert len(r) == 3 and r.codes_dtype == np.int16 and r.visual_dtype == np.float16
    codes, feats = clip(3.0)
    assert np.array_equal(r.codes(1), codes) and np.array_equal(r.visual_data(1), feats.astype(np.float16))
    assert (tmp_path / "c" / "shard-00000-of-00001" / "shard.json").is_file()


def test_crash_leftovers_are_truncated_and_writing_resumes(tmp_path):
    path = tmp_path / "c"
    init_cache(path, make_fingerprint(codec=CODEC, visual=VISUAL, duration=4.0))
    w = ShardWriter(path, 0, 2)
    w.add("a", *clip(1.0), split="train", label=None, seconds=1.0)
    w.fail("bad", "bad.mp4", "no audio stream")
    # a crash in the middle of the next clip: data half-written, index line torn
    w._codes.write(b"\x01" * 10)
    w._index.write(b'{"id": "b", "spl')
    w.close()
    w = ShardWriter(path, 0, 2)
    assert w.done == {"a"} and w.failed == {"bad"}
    w.add("b", *clip(2.0), split="train", label="x", seconds=2.0)
    w.finalize()
    with pytest.raises(DataError, match=r"shard\(s\) \[1\] of 2 are not finished"):
        CacheReader(path)
    r = CacheReader(path, allow_partial=True)
    assert [c.id for c in r.clips] == ["a", "b"]
    assert np.array_equal(r.codes(1), clip(2.0)[0]) and r.failures()[0]["reason"] == "no audio stream"


def test_fingerprint_mismatch_and_model_mismatch_errors(tmp_path):
    cache = make_cache(tmp_path / "c")
    other = make_fingerprint(codec={**CODEC, "num_codebooks": 4}, visual=VISUAL, duration=4.0)
    with pytest.raises(ConfigError, match="codec.num_codebooks = 2, this run uses 4"):
        init_cache(cache, other)
    init_cache(cache, make_fingerprint(codec={**CODEC, "name": "moved/codec"}, visual=VISUAL, duration=4.0))
    r = CacheReader(cache)
    r.check(num_codebooks=2, cardinality=1000, visual_dim=3, fps=25)
    with pytest.raises(ConfigError, match=r"c: cache has codec cardinality = 1000, the model expects 2048"):
        r.check(cardinality=2048)
    with pytest.raises(ConfigError, match="visual dim = 3, the model expects 512"):
        r.check(visual_dim=512)
    with pytest.raises(ConfigError, match="visual fps = 25.0, the model expects 10"):
        r.check(fps=10)


def test_dataset_pads_short_clips_and_crops_long_ones_aligned(tmp_path):
    cache = make_cache(tmp_path / "c", lengths=(1.0, 3.0, 1.0))
    ds = CachedClipDataset(cache, "train", 2.0, train=True, seed=1)
    assert len(ds) == 2
    short = ds[1]  # 1 s clip in a 2 s window
    assert short["codes"].shape == (2, 100) and short["visual"].shape == (50, 3)
    assert short["codes_mask"].sum() == 50 and short["visual_mask"].sum() == 25
    assert short["codes"][:, 50:].eq(0).all() and short["visual"][25:].eq(0).all()
    starts = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        item = ds[0]
        a0, v0 = int(item["codes"][0, 0]), int(item["visual"][0, 0])
        assert a0 == 2 * v0  # 50 Hz codes and 25 fps frames start at the same instant
        assert item["codes_mask"].all() and torch.equal(item["codes"][0], torch.arange(a0, a0 + 100))
        starts.add(v0)
        again = ds[0]
        assert torch.equal(again["codes"], item["codes"])  # a pure function of (seed, epoch, index)
    assert len(starts) > 1
    val = CachedClipDataset(cache, "train", 2.0, train=False)
    assert int(val[0]["codes"][0, 0]) == 0
    batch = collate_clips([ds[0], ds[1]])
    assert batch["codes"].shape == (2, 2, 100) and batch["ids"] == ["c1", "c2"]


def test_build_cached_datasets_split_errors(tmp_path):
    cache = make_cache(tmp_path / "c")
    train, val = build_cached_datasets(cache, 1.0, train_splits="train", val_splits="val")
    assert len(train) == 2 and len(val) == 1
    with pytest.raises(ConfigError, match="no clips of split"):
        build_cached_datasets(cache, 1.0, train_splits="nope", val_splits=None)
    with pytest.raises(DataError, match="not a foleygen cache"):
        CacheReader(tmp_path)


def make_frames_cache(path, seconds=2.0, size=4):
    """A cache of frames (trainable encoder): frame f's pixel (y, x) holds f * 10 + x in every channel."""
    init_cache(path, make_fingerprint(codec=CODEC, visual={**VISUAL, "trainable": True}, duration=4.0))
    w = ShardWriter(path, 0, 1)
    codes, _ = clip(seconds)
    F = round(seconds * 25)
    frames = np.broadcast_to(
        (np.arange(F)[:, None, None, None] * 10 + np.arange(size)[None, None, :, None]).astype(np.uint8),
        (F, size, size, 3),
    ).copy()
    for i in range(8):
        w.add(f"c{i}", codes, frames, split="train", label=None, seconds=seconds)
    w.finalize()
    return path


def test_hflip_mirrors_the_width_axis_reproducibly_and_leaves_the_crop(tmp_path):
    cache = make_frames_cache(tmp_path / "c")
    plain = CachedClipDataset(cache, "train", 1.0, train=True, seed=3)
    flip = CachedClipDataset(cache, "train", 1.0, train=True, seed=3, hflip=0.5)
    mirrored = 0
    for epoch in range(4):
        plain.set_epoch(epoch)
        flip.set_epoch(epoch)
        for i in range(len(flip)):
            a, b = plain[i], flip[i]
            assert torch.equal(a["codes"], b["codes"])  # same crop: the flip draws from its own stream
            assert torch.equal(b["visual"], flip[i]["visual"])  # a pure function of (seed, epoch, index)
            if torch.equal(b["visual"], a["visual"]):
                continue
            assert torch.equal(b["visual"], a["visual"].flip(2))  # [F, S, S, 3]: left-right only
            assert int(b["visual"][0, 0, 0, 0]) % 10 == 3  # the rightmost column came first
            mirrored += 1
    assert 8 <= mirrored <= 24  # about half of 32 items
    always = CachedClipDataset(cache, "train", 1.0, train=True, seed=3, hflip=1.0)
    plain.set_epoch(0)
    assert torch.equal(always[0]["visual"], plain[0]["visual"].flip(2))
    val = CachedClipDataset(cache, "train", 1.0, train=False, hflip=1.0)  # validation never mirrors
    assert int(val[0]["visual"][0, 0, 0, 0]) == 0


def test_hflip_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"probability in \[0, 1\], got 1.5"):
        CachedClipDataset(make_frames_cache(tmp_path / "f"), "train", 1.0, train=True, hflip=1.5)
    with pytest.raises(ConfigError, match="c: data.hflip mirrors stored frames, but this cache holds"):
        CachedClipDataset(make_cache(tmp_path / "c"), "train", 1.0, train=True, hflip=0.5)
