"""Media I/O with PyAV: probe files, read frames by timestamp, read/write audio, mux a soundtrack.

See docs/io.md for the frame-picking rule and the edge cases.
"""

from foleygen.io.audio import read_audio, write_audio
from foleygen.io.mux import mux
from foleygen.io.probe import MediaInfo, probe
from foleygen.io.video import FrameRequest, read_frames, read_frames_at

__all__ = ["MediaInfo", "probe", "FrameRequest", "read_frames", "read_frames_at", "read_audio", "write_audio", "mux"]
