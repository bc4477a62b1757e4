"""read_frames: exact frame counts and picked frames for every common rate, VFR, sizes, rotation."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from media_factory import expected_indices, frame_index

from foleygen.errors import MediaError
from foleygen.io import probe, read_frames

SOURCE_RATES = [12, 15, 16, Fraction(24000, 1001), 24, 25, Fraction(30000, 1001), 30, 50, 60]


@pytest.mark.parametrize("rate", SOURCE_RATES, ids=lambda r: str(float(r)))
def test_every_source_rate_counts_and_picks_exact(media, rate):
    made = media("v.mp4", fps=rate, duration=1.2)
    info = probe(made.path)
    assert info.num_frames == len(made.times)
    assert info.duration == pytest.approx(float(len(made.times) / Fraction(rate)))
    for out_fps, exact in [(float(rate), Fraction(rate)), (10.0, Fraction(10)), (25.0, Fraction(25))]:
        frames = read_frames(made.path, out_fps)
        assert frames.dtype == torch.uint8 and frames.shape[1:] == (24, 32, 3)
        assert frames.shape[0] == round(info.duration * out_fps)
        got = [frame_index(f) for f in frames]
        assert got == expected_indices(made.times, exact, frames.shape[0]), out_fps
    # At the native rate every source frame comes back once, in order.
    assert [frame_index(f) for f in read_frames(made.path, float(rate))] == list(range(len(made.times)))


def test_ntsc_source_read_at_24_differs_from_23976_only_by_the_rule(media):
    made = media("v.mp4", fps=Fraction(24000, 1001), duration=2.0)
    frames = read_frames(made.path, 24)
    expected = expected_indices(made.times, 24, frames.shape[0])
    assert [frame_index(f) for f in frames] == expected
    # Source frame j starts at j * 1.001 / 24 s, just after output time j / 24: each output instant
    # still shows the previous source frame, so frame 0 is shown twice and the rest lag by one.
    assert frames.shape[0] == 48
    assert expected == [0] + list(range(47))


def test_variable_frame_rate(media):
    times = [0.0, 0.04, 0.05, 0.3, 0.31, 0.62, 0.9, 0.95]
    made = media("vfr.mp4", fps=25, times=times)
    info = probe(made.path)
    for out_fps in (10, 20, 30):
        frames = read_frames(made.path, out_fps)
        assert frames.shape[0] == round(info.duration * out_fps)
        assert [frame_index(f) for f in frames] == expected_indices(made.times, out_fps, frames.shape[0])


def test_matroska_millisecond_timestamps_still_give_every_frame(media):
    # 30 fps in Matroska is stored as 0, 33, 67, 100 ms: frame 2 is stored 0.33 ms *after* 2/30 s.
    made = media("v.mkv", fps=30, duration=1.0)
    info = probe(made.path)
    frames = read_frames(made.path, 30)
    assert frames.shape[0] == round(info.duration * 30) == 30
    assert [frame_index(f) for f in frames] == list(range(30))


def test_start_and_duration(media):
    made = media("v.mp4", fps=25, duration=2.0)
    frames = read_frames(made.path, 10, start=0.55, duration=0.8)
    assert frames.shape[0] == 8
    assert [frame_index(f) for f in frames] == expected_indices(made.times, 10, 8, start=0.55)
    # The rest of the video by default.
    rest = read_frames(made.path, 25, start=1.0)
    assert [frame_index(f) for f in rest] == list(range(25, 50))


def test_duration_past_the_end_holds_the_last_frame(media):
    made = media("v.mp4", fps=10, duration=1.0)
    frames = read_frames(made.path, 10, duration=1.5)
    assert [frame_index(f) for f in frames] == list(range(10)) + [9] * 5


def test_start_past_the_end_is_an_error(media):
    made = media("v.mp4", fps=10, duration=1.0)
    with pytest.raises(MediaError, match="past the end"):
        read_frames(made.path, 10, start=1.0)


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (5, 7)])
def test_odd_sizes_native_and_resized(media, size):
    width, height = size
    made = media("odd.mkv", fps=10, duration=0.5, size=size)
    info = probe(made.path)
    assert (info.width, info.height) == size
    native = read_frames(made.path, 10)
    assert native.shape == (5, height, width, 3)
    assert [frame_index(f) for f in native] == list(range(5))
    square = read_frames(made.path, 10, size=8)
    assert square.shape == (5, 8, 8, 3)
    two_halves = width >= 2  # a 1-pixel-wide source only carries i % 16, scaled up it fills both halves
    assert [frame_index(f, two_halves) for f in square] == list(range(5))
    boxed = read_frames(made.path, 10, size=(6, 10), mode="letterbox")
    assert boxed.shape == (5, 6, 10, 3)


def test_large_frames_are_resized_as_decoded(media):
    made = media("big.mkv", fps=2, duration=1.0, size=(4000, 3000))
    info = probe(made.path)
    assert (info.width, info.height, info.num_frames) == (4000, 3000, 2)
    frames = read_frames(made.path, 2, size=(24, 32))
    assert frames.shape == (2, 24, 32, 3)
    assert [frame_index(f) for f in frames] == [0, 1]


def test_crop_and_letterbox_geometry(media):
    made = media("wide.mp4", fps=10, duration=0.3, size=(64, 32))  # 2:1
    crop = read_frames(made.path, 10, size=16)
    assert crop.shape == (3, 16, 16, 3)
    # A 2:1 frame cropped to a square keeps the middle: the left half (frame index % 16) and the
    # right half meet in the centre column.
    assert [frame_index(f) for f in crop] == [0, 1, 2]
    box = read_frames(made.path, 10, size=16, mode="letterbox")
    assert box.shape == (3, 16, 16, 3)
    # Scaled to 16x8 and centred: 4 black rows above and below.
    assert box[:, :4].max() == 0 and box[:, 12:].max() == 0
    assert box[:, 6:10].float().mean() > 0
    tall = read_frames(made.path, 10, size=(32, 16), mode="letterbox")
    assert tall.shape == (3, 32, 16, 3)


@pytest.mark.parametrize("rotation", [90, 270, 180])
def test_rotation_is_applied(media, rotation):
    made = media("phone.mp4", fps=10, duration=0.6, size=(32, 24), rotation=rotation)
    info = probe(made.path)
    assert info.rotation == rotation
    frames = read_frames(made.path, 10)
    if rotation in (90, 270):
        assert (info.width, info.height) == (24, 32)
        assert frames.shape == (6, 32, 24, 3)
    else:
        assert (info.width, info.height) == (32, 24)
        assert frames.shape == (6, 24, 32, 3)
    # Frame 5: stored left half = code(5), right half = code(0).
    img = frames[5].float().mean(-1).numpy()
    h, w = img.shape
    left_value, right_value = 16 * 5 + 8, 8
    if rotation == 90:  # clockwise: stored left goes to the top
        a, b = img[h // 4, w // 2], img[3 * h // 4, w // 2]
    elif rotation == 270:  # counter-clockwise: stored left goes to the bottom
        a, b = img[3 * h // 4, w // 2], img[h // 4, w // 2]
    else:  # upside down: stored left goes to the right
        a, b = img[h // 2, 3 * w // 4], img[h // 2, w // 4]
    assert abs(a - left_value) < 6 and abs(b - right_value) < 6
    resized = read_frames(made.path, 10, size=(16, 12))
    assert resized.shape == (6, 16, 12, 3)


def test_audio_only_file_has_no_frames(media):
    made = media("a.wav", fps=None, audio_rate=8000, duration=0.5)
    with pytest.raises(MediaError, match="no video stream"):
        read_frames(made.path, 10)


def test_output_is_contiguous_uint8_rgb(media):
    made = media("v.mp4", fps=10, duration=0.3)
    frames = read_frames(made.path, 10, size=16)
    assert frames.is_contiguous()
    # The test frames are grey: RGB conversion must give R == G == B (up to YUV rounding).
    spread = frames.int().amax(-1) - frames.int().amin(-1)
    assert int(spread.max()) <= 2


def test_start_seeks_to_a_keyframe_and_picks_the_same_frames(media):
    made = media("gop.mp4", fps=25, duration=3.0, gop=10)
    whole = read_frames(made.path, 25)
    for start in (0.5, 1.23, 2.4):
        part = read_frames(made.path, 25, start=start, duration=0.4)
        expected = expected_indices(made.times, 25, 10, start=start)
        assert [frame_index(f) for f in part] == expected
        # Decoding after a seek gives the very same pixels as decoding from the start.
        assert torch.equal(part, whole[expected])


def test_memory_is_bounded_by_the_output(media):
    import tracemalloc

    made = media("long.mp4", fps=30, duration=4.0, size=(320, 240))
    tracemalloc.start()
    try:
        frames = read_frames(made.path, 30, size=16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frames.shape == (120, 16, 16, 3)
    assert [frame_index(f) for f in frames] == list(range(120))
    # 120 native frames would be 27.6 MB; one decoded frame in RGB is 230 kB.
    assert peak < 2_000_000, peak


def test_b_frames_are_put_back_in_presentation_order(media):
    made = media("bf.mp4", fps=Fraction(30000, 1001), duration=1.2, bframes=True)
    frames = read_frames(made.path, Fraction(30000, 1001))  # a Fraction is a rate too
    assert [frame_index(f) for f in frames] == list(range(len(made.times)))
    later = read_frames(made.path, 30000 / 1001, start=0.5)
    assert [frame_index(f) for f in later] == expected_indices(made.times, Fraction(30000, 1001), later.shape[0], 0.5)
