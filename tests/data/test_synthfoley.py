"""SynthFoley generator: determinism, shapes, physics exactness, sound/event agreement, files, dataset."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from foleygen.data.synthfoley import (
    CLASSES,
    SynthFoleyConfig,
    SynthFoleyDataset,
    clip_is_complete,
    collate_clips,
    generate_clip,
    physics,
    read_clip_meta,
    sounds,
    write_clip,
)
from foleygen.errors import ConfigError

SMALL = SynthFoleyConfig(duration=2.0, size=64)


def test_clip_shapes_and_ranges():
    clip = generate_clip("train", 0, 0, SMALL)
    assert clip.frames.shape == (50, 64, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.audio.shape == (32000,) and clip.audio.dtype == np.float32
    assert np.abs(clip.audio).max() <= 1.0
    times = [e["time"] for e in clip.events]
    assert times == sorted(times)
    for e in clip.events:
        assert e["class"] in CLASSES and e["kind"] in ("impact", "roll", "spin")
        assert 0.0 <= e["time"] < SMALL.duration and 0.0 <= e["strength"] <= 1.0
        assert isinstance(e["offscreen"], bool)
        if e["kind"] != "impact":
            assert e["end"] >= e["time"]


def test_deterministic_and_splits_differ():
    a = generate_clip("train", 3, 7, SMALL)
    b = generate_clip("train", 3, 7, SMALL)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio) and a.events == b.events
    other = [generate_clip(s, 3, 7, SMALL) for s in ("val", "test")] + [
        generate_clip("train", 4, 7, SMALL),
        generate_clip("train", 3, 8, SMALL),
    ]
    for c in other:
        assert not np.array_equal(a.audio, c.audio)
        assert not np.array_equal(a.frames, c.frames)


def test_variety_over_clips():
    """Across a few clips: all classes, overlapping objects, rolls/spins, off-screen events, silence."""
    config = dataclasses.replace(SMALL, duration=4.0, size=32)
    classes, kinds, counts, offscreen = set(), set(), [], 0
    for i in range(40):
        clip = generate_clip("train", 1, i, config)
        classes.update(e["class"] for e in clip.events)
        kinds.update(e["kind"] for e in clip.events)
        offscreen += sum(e["offscreen"] for e in clip.events)
        counts.append(len({e["object"] for e in clip.events}))
    assert classes == set(CLASSES)
    assert kinds == {"impact", "roll", "spin"}
    assert offscreen > 0 and max(counts) >= 3


def test_free_fall_impact_time_is_analytic():
    # one disc dropped from rest: it must hit the floor at exactly sqrt(2 h / g), between physics steps
    g, floor_y, r, y0 = 4.7, 0.9, 0.08, 0.1
    body = physics.Body(
        cls="wood",
        radius=r,
        mass=1.0,
        restitution=0.5,
        roll_friction=3.0,
        spin_friction=5.0,
        roller=False,
        spinner=False,
        spin_on_settle=0.0,
        spawn_time=0.0,
        room=0,
        x=0.5,
        y=y0,
        vx=0.0,
        vy=0.0,
    )
    traj = physics.simulate(
        [body], gravity=g, floor_y=floor_y, duration=2.0, fps=25.0, substeps_per_frame=4, num_frames=50
    )
    t_hit = math.sqrt(2 * (floor_y - r - y0) / g)
    assert traj.impacts[0].time == pytest.approx(t_hit, abs=1e-9)
    assert traj.impacts[0].speed == pytest.approx(g * t_hit, rel=1e-9)
    # the bounce: restitution 0.5 -> next impact after 2 * 0.5 * v / g
    assert traj.impacts[1].time - traj.impacts[0].time == pytest.approx(2 * 0.5 * g * t_hit / g, abs=1e-9)
    # frames show it at rest on the floor at the end
    assert traj.frame_pos[-1, 0, 1] == pytest.approx(floor_y - r, abs=1e-6)


def test_sound_starts_exactly_at_event_time():
    """Silence (noise only) before each isolated impact, a loud attack within 1 ms after it."""
    config = dataclasses.replace(SMALL, noise_db=(-90.0, -89.0), p_spin=0.0, p_roll=0.0, max_objects=1, p_offscreen=0.0)
    checked = 0
    for i in range(6):
        clip = generate_clip("test", 0, i, config)
        impacts = [e for e in clip.events if e["kind"] == "impact"]
        if not impacts:
            continue
        first = impacts[0]["time"]
        start = math.ceil(first * config.sample_rate - 1e-9)
        before = np.abs(clip.audio[max(0, start - 400) : start]).max()
        after = np.abs(clip.audio[start : start + 16]).max()
        assert before < 1e-3 < after
        checked += 1
    assert checked >= 3


def test_impact_louder_for_stronger_hits():
    for cls in CLASSES:
        soft = sounds.impact_sound(cls, 0.1, 1.0, 1.0, np.random.default_rng(1), 16000, 16000)
        hard = sounds.impact_sound(cls, 0.9, 1.0, 1.0, np.random.default_rng(1), 16000, 16000)
        assert np.abs(hard).max() > 2.5 * np.abs(soft).max()  # 0.8 of the 14 dB range: 3.6x in gain


def test_config_validation():
    with pytest.raises(ConfigError):
        SynthFoleyConfig(min_objects=3, max_objects=2)
    with pytest.raises(ConfigError):
        SynthFoleyConfig(p_roll=1.5)
    with pytest.raises(ConfigError):
        generate_clip("", 0, 0, SMALL)


def test_write_clip_roundtrip(tmp_path):
    import av

    clip = generate_clip("val", 2, 5, SMALL)
    mp4 = write_clip(clip, tmp_path)
    assert mp4.name == "00005.mp4" and clip_is_complete(tmp_path, "00005", split="val", seed=2, index=5, config=SMALL)
    assert not clip_is_complete(tmp_path, "00005", split="train")
    assert not clip_is_complete(tmp_path, "00005", config=dataclasses.replace(SMALL, size=32))
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    meta = read_clip_meta(mp4)
    assert meta["events"] == json.loads(json.dumps(clip.events))
    assert (meta["duration"], meta["fps"], meta["sample_rate"]) == (2.0, 25.0, 16000)
    with av.open(str(mp4)) as container:
        assert container.streams.audio[0].codec_context.name == "alac"
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    with av.open(str(mp4)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    # lossless audio: exactly the 16-bit version of the generated waveform, no delay
    expected = np.round(np.clip(clip.audio, -1, 1) * 32767).astype(np.int16)
    assert np.array_equal(pcm[: len(expected)], expected) and len(pcm) >= len(expected)
    assert frames.shape == clip.frames.shape
    # H.264 crf 15; at 64 px the 4:2:0 chroma subsampling of saturated textures dominates the error
    psnr = 10 * np.log10(255.0**2 / np.mean((frames.astype(float) - clip.frames) ** 2))
    assert psnr > 26.0


def test_dataset_and_collate():
    ds = SynthFoleyDataset("train", 0, 3, SMALL, start_index=10)
    assert len(ds) == 3
    item = ds[1]
    assert item["index"] == 11 and tuple(item["audio"].shape) == (1, 32000)
    ref = generate_clip("train", 0, 11, SMALL)
    assert np.array_equal(item["frames"].numpy(), ref.frames)
    batch = collate_clips([ds[0], ds[2]])
    assert tuple(batch["frames"].shape) == (2, 50, 64, 64, 3) and len(batch["events"]) == 2
    with pytest.raises(IndexError):
        ds[3]


def test_cli_synth_writes_resumes_and_refuses_mixing(tmp_path, capsys):
    from foleygen.cli import main

    out = tmp_path / "val"
    argv = ["synth", str(out), "--split", "val", "--num", "2", "--seed", "4", "--duration", "1", "--size", "32", "-q"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "00000.json",
        "00000.mp4",
        "00001.json",
        "00001.mp4",
        "synthfoley.json",
    ]
    meta = read_clip_meta(out / "00001.json")
    assert (meta["split"], meta["seed"], meta["index"]) == ("val", 4, 1)
    assert meta["events"] == json.loads(
        json.dumps(generate_clip("val", 4, 1, SynthFoleyConfig(duration=1.0, size=32)).events)
    )
    # resuming: complete clips are skipped (untouched), an interrupted one is redone
    mtime = (out / "00000.mp4").stat().st_mtime_ns
    (out / "00001.json").unlink()
    (out / ".00002.abc.tmp.mp4").write_bytes(b"partial")
    assert main(argv[:5] + ["3"] + argv[6:]) == 0
    assert (out / "00000.mp4").stat().st_mtime_ns == mtime
    assert (out / "00001.json").is_file() and (out / "00002.json").is_file()
    assert not list(out.glob(".*"))
    # another seed in the same folder is refused with a one-line error
    assert (
        main(
            ["synth", str(out), "--split", "val", "--num", "1", "--seed", "5", "--duration", "1", "--size", "32", "-q"]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "synthfoley.json" in err and len(err.strip().splitlines()) == 1


def test_write_clip_mpeg4_fallback(tmp_path, monkeypatch):
    """Without libx264 the writer falls back to MPEG-4 Part 2; audio stays lossless."""
    import av

    from foleygen.data.synthfoley import files

    monkeypatch.setattr(files, "_VIDEO_CODECS", ("no-such-encoder", "mpeg4"))
    clip = generate_clip("val", 2, 6, dataclasses.replace(SMALL, duration=1.0))
    mp4 = write_clip(clip, tmp_path)
    with av.open(str(mp4)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with av.open(str(mp4)) as container:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert frames.shape == clip.frames.shape and np.abs(frames.astype(float) - clip.frames).mean() < 8.0
    assert np.array_equal(pcm[: len(clip.audio)], files.audio_to_pcm16(clip.audio))
