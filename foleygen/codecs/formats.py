"""The built-in checkpoint formats of :func:`foleygen.codecs.load_codec` (detector + loader each)."""

from __future__ import annotations

import json
from pathlib import Path

from foleygen.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from foleygen.codecs import register_format
from foleygen.codecs.base import AudioCodec
from foleygen.errors import CheckpointError


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as err:  # ValueError: bad JSON or bytes that are not UTF-8
        raise CheckpointError(f"unreadable JSON ({' '.join(str(err).split()) or type(err).__name__})", path) from None
    if not isinstance(data, dict):
        raise CheckpointError("JSON config is not a mapping", path)
    return data


def _is_compact_dir(path: Path) -> bool:
    from foleygen.codecs.compact import CODEC_TYPE

    cfg = path / CONFIG_NAME
    return path.is_dir() and cfg.is_file() and _read_json(cfg).get("codec_type") == CODEC_TYPE


def _load_compact(path: Path, num_codebooks: int | None) -> AudioCodec:
    from foleygen.codecs.compact import CompactCodec

    if not (path / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"compact codec directory has no {WEIGHTS_NAME}", path)
    codec = CompactCodec.from_pretrained(path)
    if num_codebooks is not None:
        codec.set_num_codebooks(num_codebooks)
    return codec


register_format("compact", _is_compact_dir, _load_compact)


# EnCodec family: transformers is imported only when one of these is actually loaded.
def _lazy(module: str, name: str):  # noqa: ANN202
    def call(*args):  # noqa: ANN001, ANN202
        import importlib

        return getattr(importlib.import_module(module), name)(*args)

    return call


register_format(
    "huggingface-encodec",
    _lazy("foleygen.codecs.encodec_hf", "is_hf_encodec_dir"),
    _lazy("foleygen.codecs.encodec_hf", "load_hf_encodec"),
)
register_format(
    "audiocraft-converted",
    _lazy("foleygen.codecs.audiocraft", "is_audiocraft_dir"),
    _lazy("foleygen.codecs.audiocraft", "load_audiocraft_dir"),
)
register_format(
    "encodec-package",
    _lazy("foleygen.codecs.encodec_pkg", "is_encodec_package_file"),
    _lazy("foleygen.codecs.encodec_pkg", "load_encodec_package"),
)
register_format(
    "audiocraft",
    _lazy("foleygen.codecs.audiocraft", "is_audiocraft_file"),
    _lazy("foleygen.codecs.audiocraft", "load_audiocraft_file"),
)
