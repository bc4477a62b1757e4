"""A corpus of hostile inputs, made on the fly (issue 37): what a new user's folder of videos can hold.

:func:`build_corpus` writes every case into a folder (tiny files, PyAV-made, a few KB each; nothing is
stored in the repository) and returns, per case, what ``foleygen info`` and ``foleygen generate`` should
do with it: succeed, fail with one clean line naming the file, or either (a file whose fate depends on
timing, like one still being written). :func:`judge_info` and :func:`judge_generate` read the output of
one batch run of each command over the whole corpus and say, per case, whether it went as promised:
a clean error is exactly one stderr line naming the file and no traceback, a success has all of its
outputs, and nothing else (half-written files, hidden temporaries) is left in the output folder.

Used by ``tests/test_hostile_corpus.py`` (CI), ``benchmarks/robustness.py`` (the figure in docs/io.md)
and ``scripts/fuzz.py`` (its seeds). Run ``python tests/hostile_corpus.py DIR`` to make one by hand.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_found import ABSURD_ASPECT_PNG, UNCONVERTIBLE_LAST_FRAME_MKV  # noqa: E402
from media_factory import make_media, paint  # noqa: E402

OK, ERROR, ANY = "ok", "error", "any"


@dataclass
class Case:
    """One hostile input and what each command must do with it.

    ``info`` / ``generate``: ``"ok"`` (described / all outputs written), ``"error"`` (``errors`` lines
    on stderr, each naming ``path``, exit 1) or ``"any"`` (either, but cleanly). ``generate_arg`` is what
    is handed to ``generate`` when not ``path`` itself (a CSV row that shortens a long clip);
    ``also_makes`` are output stems a partly bad input still produces (the good rows of a CSV).
    """

    name: str
    path: Path
    why: str
    info: str = OK
    generate: str = OK
    errors: int = 1
    generate_arg: Path | None = None
    also_makes: tuple[str, ...] = ()
    in_info: bool = True  # a generate-only input (a CSV list) is not media for `info`


@dataclass
class Corpus:
    root: Path
    cases: list[Case]
    growers: list[Callable[[], None]] = field(default_factory=list)  # started by `growing()`
    unwritable: Path | None = None  # an output folder that cannot be written to (see `_unwritable_dir`)

    def info_args(self) -> list[str]:
        return [str(c.path) for c in self.cases if c.in_info]

    def generate_args(self) -> list[str]:
        return list(dict.fromkeys(str(c.generate_arg or c.path) for c in self.cases))

    @contextmanager
    def growing(self) -> Iterator[None]:
        """The next growing file (``info``'s first, then ``generate``'s) is written to while the block runs."""
        threads = [threading.Thread(target=self.growers.pop(0), daemon=True)] if self.growers else []
        for t in threads:
            t.start()
        try:
            yield
        finally:
            for t in threads:
                t.join(30)


# -- byte surgery on MP4 and WAV ------------------------------------------------------------------

_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}


def mp4_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """``(type, offset, size)`` of every box, depth first (container boxes are entered)."""
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size < 8 or at + size > end:
            return
        yield kind, at, size
        if kind in _MP4_CONTAINERS:
            yield from mp4_boxes(data, at + 8, at + size)
        at += size


def _find_box(data: bytes, kind: bytes) -> int:
    for k, at, _ in mp4_boxes(data):
        if k == kind:
            return at
    raise ValueError(f"no {kind!r} box")


def sample_table_past_the_end(src: Path, dst: Path) -> Path:
    """Every chunk offset (``stco``, of every track) moved a megabyte past the end of the file."""
    data = bytearray(src.read_bytes())
    for kind, at, _ in list(mp4_boxes(data)):
        if kind != b"stco":
            continue
        (count,) = struct.unpack(">I", data[at + 12 : at + 16])
        for i in range(count):
            off = at + 16 + 4 * i
            (value,) = struct.unpack(">I", data[off : off + 4])
            data[off : off + 4] = struct.pack(">I", value + len(data) + 2**20)
    dst.write_bytes(bytes(data))
    return dst


def absurd_frame_count(src: Path, dst: Path) -> Path:
    """The sample size table (``stsz``) claims two billion frames."""
    data = bytearray(src.read_bytes())
    at = _find_box(data, b"stsz")
    data[at + 16 : at + 20] = struct.pack(">I", 2**31 - 1)
    dst.write_bytes(bytes(data))
    return dst


def without_index(src: Path, dst: Path) -> Path:
    """The ``moov`` box (the index of an MP4) given a type nobody knows: the data without its table.
    (Not ``free``: FFmpeg looks inside a ``free`` box for a lost ``moov`` and finds it.)"""
    data = bytearray(src.read_bytes())
    at = _find_box(data, b"moov")
    data[at + 4 : at + 8] = b"junk"
    dst.write_bytes(bytes(data))
    return dst


def scale_mp4_durations(src: Path, dst: Path, factor: float) -> Path:
    """Scale the duration fields of ``mvhd``, ``tkhd`` and ``mdhd`` (version 0) by ``factor``: a lying header."""
    data = bytearray(src.read_bytes())
    fields = {b"mvhd": 16, b"tkhd": 20, b"mdhd": 16}  # after the type: ver/flags, times, timescale | id
    for kind, at, _ in list(mp4_boxes(data)):
        if kind in fields and data[at + 8] == 0:
            off = at + 8 + fields[kind]
            (value,) = struct.unpack(">I", data[off : off + 4])
            data[off : off + 4] = struct.pack(">I", round(value * factor))
    dst.write_bytes(bytes(data))
    return dst


def matroska_duration_tag(src: Path, dst: Path, claimed: bytes = b"01:00:00") -> Path:
    """Matroska's per-track ``DURATION`` tags (``00:00:02.000...``) made to claim ``claimed``."""
    data = src.read_bytes()
    marker = b"00:00:02."
    if marker not in data:
        raise ValueError("no 2 s DURATION tag")
    dst.write_bytes(data.replace(marker, claimed + b"."))
    return dst


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """A PCM WAV (int16 ``[C, S]``) written by hand, so that any rate and channel count can be claimed."""
    channels = samples.shape[0]
    payload = np.ascontiguousarray(samples.T, dtype="<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


# -- special video streams ------------------------------------------------------------------------


def encode_frames(
    path: Path,
    codec: str,
    n: int,
    size: tuple[int, int] = (16, 16),
    *,
    fps: int = 10,
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    options: dict[str, str] | None = None,
    pts: list[int] | None = None,
    audio: tuple[str, int, int] | None = None,
    container_format: str | None = None,
) -> Path:
    """``n`` painted frames through ``codec``; ``pts`` (in 1/fps units) overrides the packet times as
    stored (for timestamps that go backwards); ``audio=(codec, rate, seconds)`` adds a sine track."""
    width, height = size
    with av.open(str(path), "w", format=container_format) as out:
        a = None
        if audio is not None:
            a = out.add_stream(audio[0], rate=audio[1], layout="mono")
        s = out.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        s.codec_context.time_base = Fraction(1, fps)
        if options:
            s.options = options
        if rotation:
            s.set_display_rotation(-rotation)
        packets = []
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(paint(i, width, height), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            packets += s.encode(frame)
        packets += s.encode(None)
        for i, packet in enumerate(packets):
            if pts is not None:
                packet.pts = packet.dts = None
                packet.time_base = Fraction(1, fps)
                packet.pts = pts[i]
                packet.dts = i - n  # increasing, and never after pts
            out.mux(packet)
        if a is not None:
            rate, seconds = audio[1], audio[2]
            total = round(rate * seconds)
            frame_size = a.codec_context.frame_size or 1024
            t = np.arange(total) / rate
            wav = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, total, frame_size):
                chunk = wav[start : start + frame_size]
                fmt = a.codec_context.format.name if a.codec_context.format else "fltp"
                arr = (chunk * 32767).astype(np.int16)[None] if fmt.startswith("s16") else chunk[None]
                af = av.AudioFrame.from_ndarray(arr, format="s16" if fmt.startswith("s16") else "fltp", layout="mono")
                af.sample_rate, af.pts = rate, start
                for packet in a.encode(af):
                    out.mux(packet)
            for packet in a.encode(None):
                out.mux(packet)
    return path


def no_frames(path: Path) -> Path:
    """A Matroska file with a video track and not one frame in it."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=10)
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        out.start_encoding()
    return path


def y4m_claiming(path: Path, width: int, height: int) -> Path:
    """A raw YUV4MPEG2 file whose header claims ``width x height`` but holds one 16 x 16 frame."""
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode() + b"FRAME\n" + bytes(384))
    return path


def _grower(path: Path, data: bytes, head: int, seconds: float) -> Callable[[], None]:
    """Write ``data[:head]`` now; the returned function appends the rest over ``seconds``."""
    path.write_bytes(data[:head])

    def grow() -> None:
        steps = 20
        rest = data[head:]
        with open(path, "ab") as fh:
            for i in range(steps):
                fh.write(rest[i * len(rest) // steps : (i + 1) * len(rest) // steps])
                fh.flush()
                time.sleep(seconds / steps)

    return grow


def _unwritable_dir(root: Path) -> Path | None:
    """A folder nothing can be written into: ``chmod 555`` for a normal user; root ignores modes, so
    then a folder under ``/sys`` (read-only to everyone), if this system has one. None if neither works."""
    ro = root / "read_only_out"
    ro.mkdir()
    ro.chmod(0o555)
    if not os.access(ro, os.W_OK):
        return ro
    candidate = Path("/sys/foleygen-hostile-out")
    try:
        candidate.mkdir()
    except OSError:
        return candidate
    candidate.rmdir()  # writable after all: no such place here
    return None


# -- the corpus -----------------------------------------------------------------------------------


def build_corpus(root: Path) -> Corpus:
    """Write every case under ``root`` (created) and say what each command must do with it."""
    root.mkdir(parents=True, exist_ok=True)
    src = root / "_sources"  # good files the hostile ones are cut from (not cases themselves)
    src.mkdir()
    cases: list[Case] = []

    def add(name: str, path: Path, why: str, **kw) -> None:
        cases.append(Case(name, path, why, **kw))

    good_mp4 = make_media(src / "good.mp4", fps=10, duration=1.0, size=(16, 16), audio_rate=16000).path
    good_mkv = make_media(src / "good.mkv", fps=10, duration=2.0, size=(16, 16), audio_rate=16000).path
    two_s_mp4 = make_media(src / "two.mp4", fps=25, duration=2.0, size=(16, 16), audio_rate=16000).path
    raw = good_mp4.read_bytes()

    # Not media at all.
    (root / "zero_bytes.mp4").write_bytes(b"")
    add("zero_bytes", root / "zero_bytes.mp4", "an empty file", info=ERROR, generate=ERROR)
    rng = np.random.default_rng(37)
    (root / "random_bytes.mp4").write_bytes(rng.bytes(4096))
    add("random_bytes", root / "random_bytes.mp4", "4 KB of noise", info=ERROR, generate=ERROR)
    (root / "text.mp4").write_text("this is not a video\n" * 20)
    add("text", root / "text.mp4", "a text file named .mp4", info=ERROR, generate=ERROR)
    with open(root / "sparse_zeros.mp4", "wb") as fh:
        fh.truncate(2**32)  # 4 GiB of zeros that take no disk
    add("sparse_zeros", root / "sparse_zeros.mp4", "4 GiB of zeros (sparse)", info=ERROR, generate=ERROR)

    # Cut, damaged or lying containers.
    (root / "truncated.mp4").write_bytes(raw[: len(raw) // 2])
    add("truncated_mp4", root / "truncated.mp4", "an MP4 cut in half (its index is lost)", info=ERROR, generate=ERROR)
    mkv = good_mkv.read_bytes()
    (root / "cut.mkv").write_bytes(mkv[: len(mkv) * 2 // 3])
    add("truncated_mkv", root / "cut.mkv", "a Matroska file cut at two thirds (what it holds is read)")
    without_index(good_mp4, root / "no_index.mp4")
    add("no_index", root / "no_index.mp4", "an MP4 without its moov box", info=ERROR, generate=ERROR)
    sample_table_past_the_end(good_mp4, root / "past_the_end.mp4")
    add("past_the_end", root / "past_the_end.mp4", "sample table points past the end", info=ANY, generate=ERROR)
    absurd_frame_count(good_mp4, root / "absurd_count.mp4")
    add("absurd_count", root / "absurd_count.mp4", "claims 2**31 - 1 frames", info=ANY, generate=ANY)
    y4m_claiming(root / "absurd_size.y4m", 16000, 16000)
    add("absurd_size", root / "absurd_size.y4m", "claims 16000 x 16000 pixels", info=ANY, generate=ERROR)
    scale_mp4_durations(two_s_mp4, root / "lying_short.mp4", 0.1)
    add("lying_short", root / "lying_short.mp4", "header claims a tenth of the length")
    matroska_duration_tag(make_media(src / "two.mkv", fps=25, duration=2.0, size=(16, 16)).path, root / "hour.mkv")
    add("lying_hour", root / "hour.mkv", "a DURATION tag claims an hour")
    flipped = bytearray(raw)
    mdat = _find_box(flipped, b"mdat")
    for i in range(mdat + 64, min(len(flipped), mdat + 400), 7):
        flipped[i] ^= 0xFF
    (root / "bit_flips.mp4").write_bytes(bytes(flipped))
    add("bit_flips", root / "bit_flips.mp4", "bytes flipped inside the video data", info=ANY, generate=ANY)

    # Streams that are odd but real.
    add("audio_only", make_media(root / "audio_only.m4a", fps=None, audio_rate=16000).path, "no video", generate=ERROR)
    (root / "audio.wav").write_bytes(wav_bytes(np.zeros((1, 1600), np.int16), 16000))
    add("wav", root / "audio.wav", "a WAV file", generate=ERROR)
    (root / "zero_hz.wav").write_bytes(wav_bytes(np.zeros((1, 160), np.int16), 0))
    add("zero_hz", root / "zero_hz.wav", "audio at 0 Hz", info=ERROR, generate=ERROR)
    (root / "one_hz.wav").write_bytes(wav_bytes(np.zeros((1, 16), np.int16), 1))
    add("one_hz", root / "one_hz.wav", "audio at 1 Hz", info=ANY, generate=ERROR)
    (root / "ch64.wav").write_bytes(wav_bytes(np.zeros((64, 800), np.int16), 8000))
    add("ch64", root / "ch64.wav", "64-channel audio", info=ANY, generate=ERROR)
    add("no_frames", no_frames(root / "no_frames.mkv"), "a video track with no frames", info=ERROR, generate=ERROR)
    add("one_by_one", make_media(root / "one_by_one.mkv", fps=10, duration=0.5, size=(1, 1)).path, "1 x 1 pixels")
    add("huge_frame", encode_frames(root / "4000x3000.mp4", "libx264", 3, (4000, 3000)), "4000 x 3000 pixels")
    add("fps_120", make_media(root / "fps120.mp4", fps=120, duration=0.5, size=(16, 16)).path, "120 fps")
    add("fps_1", make_media(root / "fps1.mp4", fps=1, duration=3.0, size=(16, 16)).path, "1 fps")
    vfr = [0.0, 0.05, 0.1, 0.4, 0.45, 0.9, 1.0]
    add("vfr", make_media(root / "vfr.mkv", fps=25, times=vfr, size=(16, 16)).path, "variable frame rate")
    backwards = encode_frames(root / "backwards.mkv", "mjpeg", 6, pix_fmt="yuvj420p", pts=[0, 3, 1, 2, 5, 4])
    add("backwards", backwards, "timestamps going backwards", info=ANY, generate=ANY)
    hevc = encode_frames(
        root / "rotated_hevc.mp4", "libx265", 4, (32, 16), rotation=90, options={"x265-params": "log-level=none"}
    )
    add("rotated_hevc", hevc, "HEVC with a 90 degree display matrix")
    add("ten_bit", encode_frames(root / "ten_bit.mp4", "libx264", 4, pix_fmt="yuv420p10le"), "10-bit H.264")
    add("yuv444", encode_frames(root / "yuv444.mp4", "libx264", 4, pix_fmt="yuv444p"), "4:4:4 H.264")
    add("rgb24", encode_frames(root / "rgb24.avi", "rawvideo", 4, pix_fmt="rgb24"), "raw rgb24 frames")
    webm = encode_frames(root / "vp9_opus.webm", "libvpx-vp9", 5, audio=("libopus", 48000, 0.5))
    add("vp9_opus", webm, "VP9 video, Opus audio in WebM")
    # Longer than the debug model's 1 s window, so generate streams them: reordered frames, copied or not.
    bframes = make_media(
        root / "bframes.mp4", duration=1.6, size=(48, 32), bframes=True, audio_rate=16000
    ).path  # 16x16: none
    add("bframes_streamed", bframes, "H.264 with B-frames, longer than a window (decode order != display order)")
    long_webm = encode_frames(root / "vp9_long.webm", "libvpx-vp9", 15, audio=("libopus", 48000, 1.5))
    add("vp9_streamed", long_webm, "VP9/Opus WebM longer than a window")
    add("mpeg4_avi", encode_frames(root / "mpeg4.avi", "mpeg4", 5), "MPEG-4 part 2 in AVI")
    add("mjpeg_mkv", encode_frames(root / "mjpeg.mkv", "mjpeg", 5, pix_fmt="yuvj420p"), "MJPEG in Matroska")
    add("gif", encode_frames(root / "anim.gif", "gif", 5, pix_fmt="rgb8"), "an animated GIF")
    add("short", make_media(root / "short.mp4", fps=100, duration=0.01, size=(16, 16)).path, "0.01 s long")
    ten_min = encode_frames(root / "ten_minutes.mp4", "libx264", 600, fps=1, options={"preset": "ultrafast"})
    long_csv = root / "long_clips.csv"
    long_csv.write_text("path,duration\nten_minutes.mp4,1.0\n")  # 10 minutes of sound is a benchmark, not a test
    add("ten_minutes", ten_min, "10 minutes long (generated for 1 s via a CSV row)", generate_arg=long_csv)

    # Hostile names (each a copy of a good clip).
    for name, filename in (
        ("unicode_name", "ünïcødé 视频.mp4"),
        ("space_name", "with space.mp4"),
        ("dash_name", "-starts-with-dash.mp4"),
        ("newline_name", "new\nline.mp4"),
        ("shell_name", "$(echo pwned);`x`|&>.mp4"),
        ("non_utf8_name", os.fsdecode(b"latin1-\xe9t\xe9.mp4")),
    ):
        (root / filename).write_bytes(raw)
        add(name, root / filename, "a name a shell or a terminal trips on")

    # Things that are not files.
    (root / "dangling.mp4").symlink_to("nowhere.mp4")
    add("dangling_link", root / "dangling.mp4", "a broken symbolic link", info=ERROR, generate=ERROR)
    (root / "loop_a.mp4").symlink_to("loop_b.mp4")
    (root / "loop_b.mp4").symlink_to("loop_a.mp4")
    add("link_loop", root / "loop_a.mp4", "a symbolic link loop", info=ERROR, generate=ERROR)
    (root / "folder.mp4").mkdir()
    add("dir_named_mp4", root / "folder.mp4", "an empty folder named .mp4", info=ERROR, generate=ERROR)
    os.mkfifo(root / "fifo.mp4")
    add("fifo", root / "fifo.mp4", "a named pipe", info=ERROR, generate=ERROR)
    unreadable = root / "unreadable.mp4"
    unreadable.write_bytes(raw)
    unreadable.chmod(0)
    locked = not os.access(unreadable, os.R_OK)  # root reads it anyway
    add("unreadable", unreadable, "mode 000", info=ERROR if locked else OK, generate=ERROR if locked else OK)
    (root / "image.mp4").write_bytes(_png_bytes())
    add("png_named_mp4", root / "image.mp4", "a PNG picture named .mp4", generate=ANY)

    # Found by the fuzzer (tests/fuzz_found.py).
    (root / "absurd_aspect.mp4").write_bytes(ABSURD_ASPECT_PNG)
    add("fuzz_absurd_aspect", root / "absurd_aspect.mp4", "a PNG whose aspect ratio is billions to one")
    (root / "ffv1_last_frame.mkv").write_bytes(UNCONVERTIBLE_LAST_FRAME_MKV)
    add("fuzz_last_frame", root / "ffv1_last_frame.mkv", "FFV1 whose last frame cannot be scaled", generate=ERROR)

    # Files still being written while a batch reads them: one for `info`, one for `generate`.
    grown = make_media(src / "grow.mkv", fps=10, duration=2.0, size=(16, 16)).path.read_bytes()
    growers = []
    for name, in_info in (("growing_info", True), ("growing_generate", False)):
        growers.append(_grower(root / f"{name}.mkv", grown, 600, 1.0))
        add(name, root / f"{name}.mkv", "grows while being read", info=ANY, generate=ANY, in_info=in_info)

    # Not there at all, or misnamed.
    add("missing", root / "missing_file.mp4", "does not exist", info=ERROR, generate=ERROR)
    (root / "matroska_named.mp4").write_bytes(mkv)
    add("mkv_named_mp4", root / "matroska_named.mp4", "a Matroska file named .mp4")

    # A CSV list with bad rows: each bad row is one line, the good one runs.
    (root / "csv_good.mp4").write_bytes(raw)
    bad_csv = root / "bad_rows.csv"
    bad_csv.write_text("path,duration\ncsv_good.mp4,0.5\ncsv_good.mp4,abc\n,1\nmissing.mp4,nan\ncsv_good.mp4,-2\n")
    add("csv_bad_rows", bad_csv, "4 bad rows", generate=ERROR, errors=4, also_makes=("csv_good",), in_info=False)
    (root / "csv_missing.csv").write_text("csv_absent.mp4\n")
    absent = root / "csv_absent.mp4"
    add(
        "csv_missing_row",
        absent,
        "a CSV row naming a missing file",
        generate=ERROR,
        in_info=False,
        generate_arg=root / "csv_missing.csv",
    )
    (root / "unknown_user.csv").write_text("~foleygen-no-such-user/clip.mp4\n")  # found by the fuzzer
    add(
        "csv_unknown_user",
        root / "~foleygen-no-such-user" / "clip.mp4",  # kept as written, as a shell keeps it: no such file
        "a CSV row naming ~user of no such user",
        generate=ERROR,
        in_info=False,
        generate_arg=root / "unknown_user.csv",
    )
    (root / "binary.csv").write_bytes(bytes(range(256)) * 8)
    add("csv_binary", root / "binary.csv", "a binary file named .csv", generate=ERROR, in_info=False)

    return Corpus(root, cases, growers, _unwritable_dir(root))


def _png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    with av.open(buf, "w", format="image2pipe") as out:
        s = out.add_stream("png", rate=1)
        s.width = s.height = 8
        s.pix_fmt = "rgb24"
        for packet in [*s.encode(av.VideoFrame.from_ndarray(paint(3, 8, 8), format="rgb24")), *s.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


# -- judging one batch run ------------------------------------------------------------------------


@dataclass
class Verdict:
    case: str
    outcome: str  # "ok", "clean error", "crash", "wrong" (succeeded or failed against its promise)
    detail: str = ""


def _lines_naming(lines: list[str], path: Path) -> list[str]:
    """The error lines about ``path`` (warnings are one line each too, but they are no failure)."""
    from foleygen.errors import quote_path

    # "PREFIX: PATH: problem": a line about another file whose name holds this one's does not count
    shown = f": {quote_path(path)}: "
    return [line for line in lines if shown in line and not _is_warning(line)]


def _is_warning(line: str) -> bool:
    return line.startswith(("foleygen info: warning: ", "foleygen generate: warning: "))


def _error_verdict(case: Case, lines: list[str], expected: str, count: int) -> Verdict:
    crashed = [line for line in lines if "unexpected" in line or "Traceback" in line]
    if crashed:
        return Verdict(case.name, "crash", crashed[0])
    if expected == OK:
        return Verdict(case.name, "wrong", f"failed: {lines[0] if lines else '(no message)'}")
    if expected == ERROR and len(lines) != count:
        return Verdict(case.name, "wrong", f"{len(lines)} error lines, expected {count}: {lines}")
    return Verdict(case.name, "clean error", lines[0] if lines else "")


def judge_info(corpus: Corpus, rc: int, stdout: str, stderr: str) -> list[Verdict]:
    """Per case, how one ``foleygen info`` run over :meth:`Corpus.info_args` treated it."""
    described = set()
    for line in stdout.splitlines():
        described.add(json.loads(line)["path"])
    err_lines = stderr.splitlines()
    if rc not in (0, 1) or any(line.startswith("Traceback") for line in err_lines):
        return [Verdict(c.name, "crash", f"exit {rc}") for c in corpus.cases if c.in_info]
    verdicts = []
    for case in corpus.cases:
        if not case.in_info:
            continue
        lines = _lines_naming(err_lines, case.path)
        if str(case.path) in described and not lines:
            good = case.info in (OK, ANY)
            verdicts.append(
                Verdict(case.name, "ok" if good else "wrong", "" if good else "described, expected an error")
            )
        elif lines:
            verdicts.append(_error_verdict(case, lines, case.info, 1))
        else:
            verdicts.append(Verdict(case.name, "crash", "neither described nor reported"))
    return verdicts


def leftovers(outdir: Path, expected: set[str]) -> list[str]:
    """Names in ``outdir`` that no successful input accounts for (temporaries, partial outputs)."""
    if not outdir.is_dir():
        return []
    return sorted(p.name for p in outdir.iterdir() if p.name not in expected)


def judge_generate(corpus: Corpus, rc: int, stdout: str, stderr: str, outdir: Path) -> tuple[list[Verdict], list[str]]:
    """Per case, how one ``foleygen generate --json -q`` run over :meth:`Corpus.generate_args` treated
    it; and what is left in ``outdir`` that no finished input accounts for."""
    if rc not in (0, 1):
        return [Verdict(c.name, "crash", f"exit {rc}: {stderr[-300:]}") for c in corpus.cases], leftovers(outdir, set())
    summary = json.loads(stdout)
    err_lines = stderr.splitlines()
    made = {g["input"]: g["outputs"] for g in summary["generated"]}
    expected_names = {Path(o).name for outs in made.values() for o in outs}
    verdicts = []
    for case in corpus.cases:
        lines = _lines_naming(err_lines, case.path)
        outputs = made.get(str(case.path))
        if outputs and not lines:
            missing = [o for o in outputs if not Path(o).is_file()]
            good = case.generate in (OK, ANY) and not missing
            verdicts.append(Verdict(case.name, "ok" if good else "wrong", f"missing {missing}" if missing else ""))
        elif lines:
            verdict = _error_verdict(case, lines, case.generate, case.errors)
            if verdict.outcome == "clean error":
                absent = [
                    s for s in case.also_makes if not any(Path(o).stem == s for outs in made.values() for o in outs)
                ]
                if absent:
                    verdict = Verdict(case.name, "wrong", f"its good part was not done: {absent}")
            verdicts.append(verdict)
        else:
            verdicts.append(Verdict(case.name, "crash", "neither generated nor reported"))
    return verdicts, leftovers(outdir, expected_names)


def stray_lines(corpus: Corpus, stderr: str, extra: tuple[Path, ...] = ()) -> list[str]:
    """stderr lines that are neither a warning nor about one of the cases (or ``extra`` paths): a
    second line for one problem, a traceback, a message that names no file."""
    from foleygen.errors import quote_path

    names = [f": {quote_path(p)}: " for p in (*(c.path for c in corpus.cases), *extra)]
    return [line for line in stderr.splitlines() if not _is_warning(line) and not any(n in line for n in names)]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``foleygen ARGV`` in this process: exit code, stdout, stderr (as a user's terminal shows them)."""
    import contextlib
    import io

    from foleygen.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def generate_argv(inputs: list[str], outdir: Path) -> list[str]:
    """The one ``generate`` batch run over the corpus: the tiny random model, JSON summary, no progress."""
    return ["generate", *inputs, "-o", str(outdir), "--model", "debug", "--json", "-q"]


# -- the library calls the fuzzer drives, over every case ---------------------------------------------


def library_calls() -> dict[str, Callable[[Path], object]]:
    """``probe``, ``read_frames`` and ``read_audio`` as a user calls them (bounded: 2 s at most)."""
    from foleygen.io import probe, read_audio, read_frames

    return {
        "probe": probe,
        "read_frames": lambda p: read_frames(p, 10.0, 32, duration=2.0),
        "read_audio": lambda p: read_audio(p, 16000, duration=2.0),
    }


def judge_library(corpus: Corpus) -> list[Verdict]:
    """Per case and call: it returns, or raises one of our errors; any other exception is a crash."""
    from foleygen.errors import FoleyGenError

    verdicts = []
    for case in corpus.cases:
        if not case.in_info:
            continue
        for name, call in library_calls().items():
            try:
                call(case.path)
                outcome, detail = "ok", ""
            except FoleyGenError as err:
                outcome, detail = "clean error", str(err)
            except Exception as err:  # noqa: BLE001 -- what this corpus is here to find
                outcome, detail = "crash", f"{type(err).__name__}: {err}"
            verdicts.append(Verdict(f"{case.name}/{name}", outcome, detail))
    return verdicts


# -- output folders that cannot be written --------------------------------------------------------


def bad_output_folders(corpus: Corpus) -> dict[str, Path]:
    """``-o`` targets a batch must refuse in one line: a file, a folder under a file, a read-only folder."""
    a_file = corpus.root / "_output_is_a_file"
    a_file.write_text("not a folder")
    targets = {"output_is_a_file": a_file, "output_under_a_file": a_file / "sub"}
    if corpus.unwritable is not None:
        targets["output_read_only"] = corpus.unwritable
    return targets


if __name__ == "__main__":
    corpus = build_corpus(Path(sys.argv[1]))
    for c in corpus.cases:
        print(f"{c.name:16} info={c.info:5} generate={c.generate:5} {c.why}")
