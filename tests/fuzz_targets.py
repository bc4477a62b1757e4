"""Fuzz targets (issue 37, item 2): each takes fuzzer bytes and calls one of foleygen's input parsers.

A target returns normally when foleygen did the right thing (read the input, or refused it with one of
our errors, a :class:`~foleygen.errors.FoleyGenError` of one line); anything else propagates and is the
fuzzer's crash: another exception type, a message over two lines, an unpickled object (a canary pickle
that creates a file when unpickled), or the process dying.

:func:`one_input` is the single entry point (``atheris.Setup(argv, one_input)``): its first byte picks
the target, so that one fuzzing process, seeded by :func:`write_seeds`, covers all of them.

* ``probe``, ``read_frames``, ``read_audio``: the bytes as a media file (the second byte picks its
  extension);
* ``csv``: the bytes as a ``generate`` CSV list (never raises: bad rows are reported problems) and as
  a data manifest (``load_manifest``: CSV, JSONL);
* ``checkpoint``: a tiny saved ``debug`` model, mutated as the bytes say (a config.json field set to a
  hostile value, a safetensors file cut short, a tensor of another dtype or shape, config.json
  replaced by the bytes, a file removed, a path pointing to a canary pickle), then loaded.

Used by ``scripts/fuzz.py`` (the runner) and ``tests/test_fuzz.py`` (a bounded run in CI).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

SUFFIXES = (".mp4", ".mkv", ".wav", ".webm", ".avi", ".gif", ".y4m", ".m4a", ".mov", ".flac")
MEDIA_CALLS = ("probe", "read_frames", "read_audio")
TARGETS = (*MEDIA_CALLS, "csv", "checkpoint")

_WORK = Path(tempfile.mkdtemp(prefix="foleygen-fuzz-"))  # one scratch folder per fuzzing process
CANARY = _WORK / "UNPICKLED"  # created only if something unpickles the canary


def _allowed(err: BaseException) -> None:
    """Re-raise ``err`` unless it is one of our one-line errors."""
    from foleygen.errors import FoleyGenError

    if not isinstance(err, FoleyGenError):
        raise err
    if "\n" in str(err):
        raise AssertionError(f"a two-line error: {str(err)!r}") from err


def _check_canary() -> None:
    if CANARY.exists():
        CANARY.unlink()
        raise AssertionError("a checkpoint loader unpickled an object (the canary ran)")


# -- media ------------------------------------------------------------------------------------------


def media_target(call: str) -> Callable[[bytes], None]:
    """The target for one of :data:`MEDIA_CALLS`; ``data[0]`` picks the extension, the rest is the file."""

    def target(data: bytes) -> None:
        from hostile_corpus import library_calls

        if not data:
            return
        path = _WORK / f"input{SUFFIXES[data[0] % len(SUFFIXES)]}"
        path.write_bytes(data[1:])
        try:
            library_calls()[call](path)
        except Exception as err:  # judged by _allowed
            _allowed(err)

    return target


# -- CSV lists and manifests ------------------------------------------------------------------------


def csv_target(data: bytes) -> None:
    """``generate``'s CSV list must never raise; each manifest reader raises only our errors."""
    from foleygen.cli.commands.generate import _read_csv
    from foleygen.data.manifest import load_manifest

    listing = _WORK / "list.csv"
    listing.write_bytes(data)
    _jobs, problems = _read_csv(listing, None)
    for _, message in problems:
        if "\n" in message:
            raise AssertionError(f"a two-line problem: {message!r}")
    for name in ("manifest.csv", "manifest.jsonl"):
        manifest = _WORK / name
        manifest.write_bytes(data)
        try:
            load_manifest(manifest)
        except Exception as err:  # judged by _allowed
            _allowed(err)


# -- checkpoints ------------------------------------------------------------------------------------

_HOSTILE_VALUES = (
    -1,
    0,
    3,
    1.5,
    -0.0,
    float("nan"),
    float("inf"),
    2**63,
    "x",
    "",
    None,
    True,
    [],
    {},
    [1, "a"],
    {"path": "x"},
    "../../../../etc/passwd",
    "canary",  # replaced by the canary pickle's path
)
_DTYPES = ("float16", "float64", "int64", "uint8", "bool", "bfloat16")


class _Reader:
    """Numbers drawn from the fuzzer's bytes (zeros once they run out)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1] if self.at <= len(self.data) else 0

    def int(self, below: int) -> int:
        value = self.byte() << 16 | self.byte() << 8 | self.byte()
        return value % below if below > 0 else 0

    def rest(self) -> bytes:
        return self.data[self.at :]


def _base_checkpoint() -> Path:
    """A tiny random model saved once per process (the ``debug`` model: 0.5 MB)."""
    base = _WORK / "base"
    if not base.is_dir():
        from foleygen.api import FoleyGen

        FoleyGen.from_pretrained("debug", device="cpu").save_pretrained(base)
        # The canary: unpickling it runs Path.touch(CANARY). A safe loader refuses it.
        with open(_WORK / "canary.pt", "wb") as fh:
            pickle.dump(_Canary(), fh)
    return base


class _Canary:
    def __reduce__(self) -> tuple:
        return (Path.touch, (CANARY,))


def _leaves(node: object, where: tuple = ()) -> list[tuple]:
    """Every key path of a JSON tree (inner nodes too: a whole section can be replaced)."""
    paths = [where] if where else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths += _leaves(value, (*where, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            paths += _leaves(value, (*where, i))
    return paths


def _set(node: dict, where: tuple, value: object) -> None:
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value


def _mutate_config(folder: Path, r: _Reader) -> None:
    path = folder / ("config.json", "codec/config.json")[r.byte() % 2]
    config = json.loads(path.read_text())
    leaves = _leaves(config)
    where = leaves[r.int(len(leaves))]
    value = _HOSTILE_VALUES[r.byte() % len(_HOSTILE_VALUES)]
    if value == "canary":
        value = str(_WORK / "canary.pt")
    if r.byte() % 4 == 0:  # a key removed instead
        parent = config
        for key in where[:-1]:
            parent = parent[key]
        del parent[where[-1]]
    else:
        _set(config, where, value)
    path.write_text(json.dumps(config, allow_nan=True))


def _truncate_weights(folder: Path, r: _Reader) -> None:
    path = folder / ("model.safetensors", "codec/model.safetensors")[r.byte() % 2]
    data = path.read_bytes()
    if r.byte() % 2:  # within the header: its length field or JSON cut
        path.write_bytes(data[: r.int(min(len(data), 4096))])
    else:
        path.write_bytes(data[: r.int(len(data))])


def _retype_tensor(folder: Path, r: _Reader) -> None:
    """One tensor stored with another dtype or shape (a consistent file: the loader must check)."""
    import torch
    from safetensors.torch import load_file, save_file

    path = folder / ("model.safetensors", "codec/model.safetensors")[r.byte() % 2]
    state = load_file(str(path))
    key = sorted(state)[r.int(len(state))]
    tensor = state[key]
    how = r.byte() % 4
    if how == 0:
        tensor = tensor.to(getattr(torch, _DTYPES[r.byte() % len(_DTYPES)]))
    elif how == 1:
        tensor = tensor.flatten()
    elif how == 2:
        tensor = torch.zeros((*tensor.shape[:-1], tensor.shape[-1] + 1) if tensor.ndim else (2,))
    else:
        tensor = torch.zeros(0)
    state[key] = tensor.contiguous()
    save_file(state, str(path))


def _replace_config_bytes(folder: Path, r: _Reader) -> None:
    (folder / ("config.json", "codec/config.json")[r.byte() % 2]).write_bytes(r.rest())


def _remove_file(folder: Path, r: _Reader) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    files[r.int(len(files))].unlink()


def _header_field(folder: Path, r: _Reader) -> None:
    """A field of the safetensors JSON header (dtype, shape, offsets) set to a hostile value."""
    path = folder / ("model.safetensors", "codec/model.safetensors")[r.byte() % 2]
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    leaves = [w for w in _leaves(header) if w[0] != "__metadata__"]
    _set(header, leaves[r.int(len(leaves))], _HOSTILE_VALUES[r.byte() % len(_HOSTILE_VALUES)])
    text = json.dumps(header, allow_nan=True).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size :])


_MUTATIONS = (_mutate_config, _truncate_weights, _retype_tensor, _replace_config_bytes, _remove_file, _header_field)


def checkpoint_target(data: bytes) -> None:
    """Load a mutated copy of the base checkpoint: a model, or one of our errors; never an unpickle."""
    from foleygen.api import FoleyGen

    r = _Reader(data)
    folder = _WORK / "checkpoint"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(_base_checkpoint(), folder)
    for _ in range(1 + r.byte() % 2):
        try:
            _MUTATIONS[r.byte() % len(_MUTATIONS)](folder, r)
        except Exception:  # noqa: BLE001
            pass  # the harness's own step no longer applies (its file was replaced or removed first)
    try:
        FoleyGen.from_pretrained(folder, device="cpu")
    except Exception as err:  # judged by _allowed
        _allowed(err)
    finally:
        _check_canary()


# -- one entry point, and its seeds -----------------------------------------------------------------

_BY_NAME: dict[str, Callable[[bytes], None]] = {
    **{call: media_target(call) for call in MEDIA_CALLS},
    "csv": csv_target,
    "checkpoint": checkpoint_target,
}


def one_input(data: bytes, targets: tuple[str, ...] = TARGETS) -> None:
    """``data[0]`` picks one of ``targets``; the rest goes to it."""
    if data:
        _BY_NAME[targets[data[0] % len(targets)]](data[1:])


def write_seeds(folder: Path, targets: tuple[str, ...] = TARGETS, max_bytes: int = 65536) -> int:
    """Seed inputs for :func:`one_input`: every regular corpus file (``tests/hostile_corpus.py``) for each
    media target, the CSV lists for ``csv``, a few mutation recipes for ``checkpoint``. Returns the count."""
    import random

    from hostile_corpus import build_corpus

    folder.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus(Path(tempfile.mkdtemp(prefix="corpus-", dir=_WORK)))
    for grow in corpus.growers:  # the growing files, complete
        grow()
    count = 0

    def seed(target: str, payload: bytes) -> None:
        nonlocal count
        if target in targets and len(payload) < max_bytes:
            (folder / f"{target}-{count:04d}").write_bytes(bytes([targets.index(target)]) + payload)
            count += 1

    for case in corpus.cases:
        path = case.path
        if path.is_symlink() or not path.is_file() or not os.access(path, os.R_OK) or path.stat().st_size > max_bytes:
            continue
        data = path.read_bytes()
        if path.suffix == ".csv":
            seed("csv", data)
            continue
        for call in MEDIA_CALLS:
            kind = SUFFIXES.index(path.suffix.lower()) if path.suffix.lower() in SUFFIXES else 0
            seed(call, bytes([kind]) + data)
    seed("csv", b'path,split,label,start\na.mp4,train,dog,x\n{"path": 1}\n')
    seed("csv", b'{"path": "a.mp4", "split": "train", "start": "soon"}\n[1]\n')
    seed("csv", b"youtube_id,start_seconds,label,split\nabc,1e400,dog,train\nabc,nan,x,y\n")
    draw = random.Random(37)
    for recipe in range(len(_MUTATIONS) * 4):  # each mutation, once and twice, at drawn places
        seed("checkpoint", bytes([recipe // len(_MUTATIONS), recipe % len(_MUTATIONS)]) + draw.randbytes(16))
    return count
