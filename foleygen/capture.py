"""Reading a V4L2 camera (``/dev/videoN``) for :class:`foleygen.sources.FrameSource`.

A camera is read by the first of these routes that this machine has:

1. PyAV's own ``video4linux2`` input (FFmpeg's libavdevice, in the PyPI wheels of PyAV). It is listed in
   ``av.formats_available`` under the joined name ``"video4linux2,v4l2"``, so it is looked up with
   ``av.ContainerFormat`` rather than by a name in that set.
2. An ``ffmpeg`` program (on ``PATH``, else the one the ``imageio-ffmpeg`` package ships) run as a
   child process that captures the device and writes NUT to a pipe; that pipe is read as ``-`` (stdin)
   is. The child is stopped and reaped when the source closes, on Ctrl-C and on an error; its last
   stderr line becomes the one line the user reads when it fails.
3. Neither: one line saying how to get one.

Before either route opens anything, a path that does not exist is "no such device".
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import stat
import subprocess
import threading
from typing import Any

import av

from foleygen.errors import MediaError

V4L2 = "video4linux2"  # FFmpeg's name for the V4L2 input; "v4l2" is its alias
_LOG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")  # "[in#0 @ 0x55d6...] ": which FFmpeg object spoke
_NO_ROUTE = (
    "reading a camera needs FFmpeg's video4linux2 input, which this PyAV build lacks, and no ffmpeg "
    "program was found: install one (e.g. apt install ffmpeg, or pip install imageio-ffmpeg) or pipe "
    "the camera in: ffmpeg -f video4linux2 -i {spec} -c:v copy -f nut - | foleygen live -"
)


def pyav_has_v4l2() -> bool:
    """Whether PyAV's FFmpeg can open a V4L2 device itself (libavdevice's ``video4linux2`` input)."""
    try:
        return bool(av.ContainerFormat(V4L2).is_input)
    except ValueError:  # "no container format": a build without libavdevice
        return False


def find_ffmpeg() -> str | None:
    """An ``ffmpeg`` executable: the one on ``PATH``, else imageio-ffmpeg's, else None."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (RuntimeError, OSError):  # the package without its binary
        return None


def device_problem(spec: str) -> str | None:
    """Why ``spec`` cannot be a camera (missing, not a character device, no access), or None.

    Only ``stat`` and ``access``: nothing is opened, so this never blocks.
    """
    try:
        st = os.stat(spec)
    except FileNotFoundError:
        return "no such device (no camera at this path; ls /dev/video* lists those present)"
    except OSError as err:
        return f"cannot reach the device ({err.strerror or err})"
    if not stat.S_ISCHR(st.st_mode):
        return "not a device (a camera is a character device such as /dev/video0)"
    if not os.access(spec, os.R_OK | os.W_OK):  # V4L2 devices are opened read-write
        return "permission denied (cameras usually belong to the 'video' group: sudo usermod -aG video $USER)"
    return None


def camera_route(spec: str) -> str | None:
    """How to read the camera ``spec``: None for PyAV's own input, else the ``ffmpeg`` to run.

    Raises :class:`MediaError` (one line naming ``spec``) when the device is not there or when
    neither route exists.
    """
    problem = device_problem(spec)
    if problem is not None:
        raise MediaError(problem, spec)
    if pyav_has_v4l2():
        return None
    exe = find_ffmpeg()
    if exe is None:
        raise MediaError(_NO_ROUTE.format(spec=spec), spec)
    return exe


def ffmpeg_command(exe: str, spec: str) -> list[str]:
    """The command line that captures ``spec`` to stdout.

    ``-c:v copy``: the camera's own stream (raw frames, or MJPEG/H.264 from cameras that compress)
    goes into the pipe as it is, with no decode or encode in the child. NUT as the container: it
    carries any codec, raw video included (MPEG-TS cannot), keeps each packet's timestamp in the
    stream's own time base (MPEG-TS rounds to 90 kHz and adds a muxing delay), needs no seekable output
    and has almost no header, so the first frame is readable as soon as it is captured; y4m would drop
    the timestamps. ``-flush_packets 1`` writes each packet at once instead of filling a 32 KB buffer
    first (a latency of several frames for a small compressed picture).
    """
    return [
        exe,
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-f",
        V4L2,
        "-i",
        spec,
        "-map",
        "0:v:0",
        "-an",
        "-c:v",
        "copy",
        "-flush_packets",
        "1",
        "-f",
        "nut",
        "pipe:1",
    ]


class FfmpegCapture:
    """An ``ffmpeg`` child capturing the camera ``spec`` to a pipe, and the container reading it.

    The child runs in a process group of its own, so a Ctrl-C at the terminal reaches foleygen alone,
    which then stops the child (:meth:`close`) after finishing its outputs. Should foleygen die without
    closing (SIGKILL), the child's next write fails on the closed pipe and it ends.
    """

    def __init__(self, exe: str, spec: str) -> None:
        self.spec = spec
        self.stopping = False
        try:
            self.proc = subprocess.Popen(
                ffmpeg_command(exe, spec),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                process_group=0,
            )
        except OSError as err:
            raise MediaError(f"cannot run {exe} to read the camera ({err.strerror or err})", spec) from None
        self.errors: collections.deque[str] = collections.deque(maxlen=20)
        self.drainer = threading.Thread(target=self._drain, name="foleygen ffmpeg stderr", daemon=True)
        self.drainer.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        try:
            for raw in self.proc.stderr:  # read to the end: a child whose stderr fills up would block
                line = _LOG_PREFIX.sub("", " ".join(raw.decode("utf-8", "replace").split()))
                if line:
                    self.errors.append(line)
        except (OSError, ValueError):  # the pipe closed under it: nothing more to hear
            pass

    def open(self, timeout: float, options: dict[str, str]) -> Any:
        """The PyAV container reading the child's output (blocks until its header has come)."""
        assert self.proc.stdout is not None
        try:
            return av.open(
                f"pipe:{self.proc.stdout.fileno()}", mode="r", format="nut", timeout=timeout, options=options
            )
        except (av.FFmpegError, OSError) as err:
            failed = self.failure("cannot open the camera", wait=5.0)
            self.close()
            if failed is not None:
                raise failed from None
            from foleygen.io._common import ffmpeg_message

            raise MediaError(
                f"cannot open the camera (ffmpeg sent no video: {ffmpeg_message(err)})", self.spec
            ) from None

    def failure(self, what: str, wait: float = 2.0) -> MediaError | None:
        """The child's error as one line (``"<spec>: <what> (ffmpeg: <its last line>)"``), when it ended
        with one by itself; None while it runs, when it ended well, or when :meth:`close` stopped it."""
        try:
            code = self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None
        if code == 0 or self.stopping:
            return None
        self.drainer.join(timeout=1.0)
        said = self.errors[-1] if self.errors else f"exited with status {code}"
        return MediaError(f"{what} (ffmpeg: {said})", self.spec)

    def stop(self) -> None:
        """Ask the child to end (SIGTERM: it closes the device properly); :meth:`close` reaps it."""
        self.stopping = True
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
            except ProcessLookupError:
                pass

    def close(self, pipe: bool = True) -> None:
        """Stop the child, reap it (SIGKILL after 2 s) and close its pipes (``pipe=False`` leaves the
        video pipe open, for a reader still blocked in it)."""
        self.stop()
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.drainer.join(timeout=1.0)
        # a pipe is closed only when nothing reads it any more (its reader ended, or pipe=True says so)
        streams = ([] if self.drainer.is_alive() else [self.proc.stderr]) + ([self.proc.stdout] if pipe else [])
        for stream in streams:
            if stream is not None:
                stream.close()
