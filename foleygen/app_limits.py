"""What the web demo accepts: its settings' ranges, its upload limit, and removing refused uploads.

Kept apart from :mod:`foleygen.app` (the service and the page) so that both the page's controls and the
checks of every request read the same numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from foleygen.errors import ConfigError

# One megabyte is 2**20 bytes here, as Gradio's upload check in the browser counts ("50.0 Mb"): the
# browser, Gradio's server and this app then refuse exactly the same files.
MB = 1024 * 1024
# What the page's controls allow, and what the handler accepts from any client (the API included):
# name -> (lowest, highest, whole numbers only).
SETTING_RANGES: dict[str, tuple[float, float, bool]] = {
    "cfg": (0.0, 10.0, False),
    "top_k": (0, 1024, True),
    "temperature": (0.0, 2.0, False),
    "seed": (0, 2**63 - 1, True),
    # Of the server, not of a request: how many may wait in the queue, how many generations run at once.
    "queue_size": (1, 10_000, True),
    "workers": (1, 64, True),
}
# FFmpeg's demuxers of still pictures: a PNG or a JPEG opens as a one-frame "video".
IMAGE_FORMATS = ("image2", "apng", "gif")
# FFmpeg's demuxers of text (ANSI art, .txt, .nfo, binary text): they open as a "video" of rendered text.
TEXT_FORMATS = ("tty", "bin", "xbin", "adf", "idf")


def check_setting(name: str, value: Any, *, low: float | None = None, high: float | None = None) -> Any:
    """``value`` as the number the setting ``name`` takes (see :data:`SETTING_RANGES`), or a one-line
    :class:`ConfigError` saying what is allowed (NaN, infinities, text and out-of-range values)."""
    lo, hi, whole = SETTING_RANGES.get(name, (0.0, math.inf, False))
    lo = lo if low is None else low
    hi = hi if high is None else high
    kind, bound = ("a whole number", "{:d}") if whole else ("a number", "{:g}")
    low_text, high_text = (bound.format(int(x) if whole else x) for x in (lo, hi))
    allowed = f"{name} must be {kind} from {low_text} to {high_text}, got {value!r}"
    if isinstance(value, bool):
        raise ConfigError(allowed)
    if isinstance(value, int):  # exact: 2**63 - 1 is not a float
        if not lo <= value <= hi:
            raise ConfigError(allowed)
        return value if whole else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(allowed) from None
    if not (math.isfinite(number) and lo <= number <= hi) or (whole and number != math.floor(number)):
        raise ConfigError(allowed)
    return int(number) if whole else number


def _gradio_upload_root() -> Path | None:
    try:
        from gradio.utils import get_upload_folder
    except ImportError:
        return None
    return Path(get_upload_folder()).resolve()


def discard_refused_upload(video: Any) -> bool:
    """Delete a refused upload from Gradio's upload cache (with its folder, when that is left empty).

    Gradio keeps every upload until its cache is cleaned; a file the demo refuses is of no further use,
    and may be large or unwelcome. Only files inside Gradio's upload folder are ever deleted (never an
    example clip, never a path a test or another app handed in). Returns whether a file was deleted.
    """
    root = _gradio_upload_root()
    if not video or root is None:
        return False
    path = Path(str(video))
    try:
        resolved = path.resolve()
        if not resolved.is_relative_to(root) or resolved == root or not resolved.is_file():
            return False
        resolved.unlink()
    except OSError:
        return False
    parent = resolved.parent
    if parent != root:
        try:
            parent.rmdir()  # Gradio's per-upload folder, if nothing else is in it
        except OSError:
            pass
    return True
