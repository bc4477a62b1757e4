"""Audio codecs: waveforms <-> discrete codes, behind one contract (:class:`AudioCodec`).

:func:`load_codec` opens any supported checkpoint. Each format registers a *detector* (does this path
look like my format?) and a *loader* in :data:`FORMATS`; the first detector that accepts the path wins.
Formats: our compact codec directory, a Hugging Face ``EncodecModel`` directory, an AudioCraft
compression-model checkpoint and the original ``encodec`` package's ``.th`` files. See docs/codecs.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from foleygen.codecs.base import AudioCodec
from foleygen.errors import CheckpointError, CodecError
from foleygen.utils import user_path

#: the embedded demo codec (written by the demo training run; may be absent in a fresh checkout)
DEMO_CODEC_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo" / "codec"
NAMES: dict[str, Path] = {"demo": DEMO_CODEC_DIR}


@dataclass(frozen=True)
class CodecFormat:
    """One checkpoint format: ``detect(path) -> bool`` and ``load(path, num_codebooks) -> AudioCodec``."""

    name: str
    detect: Callable[[Path], bool]
    load: Callable[[Path, int | None], AudioCodec]


FORMATS: list[CodecFormat] = []


def register_format(name: str, detect: Callable[[Path], bool], load: Callable[[Path, int | None], AudioCodec]) -> None:
    """Add a checkpoint format to :func:`load_codec` (later registrations are tried after earlier ones)."""
    FORMATS.append(CodecFormat(name, detect, load))


def load_codec(path_or_name: str, *, num_codebooks: int | None = None, bandwidth: float | None = None) -> AudioCodec:
    """Open a codec checkpoint (directory or file) or a named one (``"demo"``), in eval mode.

    ``num_codebooks`` selects how many codebooks (K) to use, or ``bandwidth`` (kbit/s) the largest K that
    fits it; neither keeps all the checkpoint's codebooks.
    """
    if num_codebooks is not None and bandwidth is not None:
        raise CodecError("give num_codebooks or bandwidth, not both")
    from foleygen.codecs import formats  # noqa: F401  (registers the built-in formats)

    if path_or_name in NAMES:
        path = NAMES[path_or_name]
        if not path.is_dir():
            raise CheckpointError(
                f"the {path_or_name!r} codec is not installed (train it with configs/codec_compact.yaml and "
                f"save it to this directory)",
                path,
            )
    else:
        path = user_path(path_or_name)
        if not path.exists():
            raise CheckpointError("codec checkpoint not found (give a directory, a .th/.pt file, or 'demo')", path)
    for fmt in FORMATS:
        if fmt.detect(path):
            codec = fmt.load(path, num_codebooks)
            if bandwidth is not None:
                codec.set_num_codebooks(codec.codebooks_for_bandwidth(bandwidth))
            return codec.eval()
    known = ", ".join(f.name for f in FORMATS)
    raise CheckpointError(f"not a codec checkpoint of a known format ({known})", path)


__all__ = ["AudioCodec", "CodecFormat", "FORMATS", "NAMES", "load_codec", "register_format"]
