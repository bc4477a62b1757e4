"""Configuration: one place where lengths are derived, and generic dataclass <-> dict/YAML plumbing.

Each subsystem owns the dataclass that configures it, next to the code it configures
(``foleygen.lm.model.LMConfig``, ``foleygen.codecs.compact.CompactCodecConfig``, ...). This departs from
the design sketch, which put every dataclass here: keeping a config beside its module keeps modules
small and lets them change independently. What *is* shared lives here:

* :class:`SequenceConfig` derives every length (samples, codec frames, visual frames) from duration,
  sample rate, codec frame rate and visual fps. Nothing else computes these.
* :func:`from_dict` / :func:`to_dict` convert nested dataclasses to plain dicts and back, rejecting
  unknown keys with a one-line :class:`UnknownKeyError` that names the nearest valid key.
* :func:`load_yaml` reads a YAML file and applies ``key.sub=value`` command-line overrides;
  :func:`check_override_keys` checks the overrides' keys against a config dataclass first, so that a typo
  there is reported as the override's.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from foleygen.atomic import atomic_write_text
from foleygen.errors import ConfigError

T = TypeVar("T")

CONFIG_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SequenceConfig:
    """Every length of one clip, derived from its duration and the rates.

    Attributes:
        duration: clip length in seconds.
        sample_rate: audio samples per second (the codec's).
        frame_rate: codec frames per second (tokens per second per codebook).
        fps: visual feature frames per second.
    """

    duration: float
    sample_rate: int
    frame_rate: float
    fps: float

    def __post_init__(self) -> None:
        for name in ("duration", "sample_rate", "frame_rate", "fps"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"SequenceConfig.{name} must be a positive number, got {value!r}")

    @property
    def num_samples(self) -> int:
        """S: audio samples, ``round(duration * sample_rate)``."""
        return round(self.duration * self.sample_rate)

    @property
    def hop_length(self) -> int:
        """Audio samples per codec frame (``sample_rate / frame_rate``, must be whole)."""
        hop = self.sample_rate / self.frame_rate
        if abs(hop - round(hop)) > 1e-6:
            raise ConfigError(f"sample_rate {self.sample_rate} is not a whole multiple of frame_rate {self.frame_rate}")
        return round(hop)

    @property
    def num_audio_frames(self) -> int:
        """T: codec frames covering the clip, ``ceil(num_samples / hop_length)``."""
        return -(-self.num_samples // self.hop_length)

    @property
    def num_visual_frames(self) -> int:
        """F: visual frames, ``round(duration * fps)`` (frame f is shown at time f / fps)."""
        return max(1, round(self.duration * self.fps))

    def samples_for_frames(self, num_audio_frames: int) -> int:
        """Audio samples covered by ``num_audio_frames`` codec frames."""
        return num_audio_frames * self.hop_length

    def with_duration(self, duration: float) -> SequenceConfig:
        """The same rates, another duration."""
        return dataclasses.replace(self, duration=duration)


def to_dict(obj: Any) -> Any:
    """A dataclass (possibly nested, with lists/tuples/dicts) as JSON-ready plain data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


#: ``field(metadata={KEYS_OF: SomeConfig})`` on a ``dict`` field: its keys must be fields of ``SomeConfig``
#: (for sections completed later, e.g. an LM config whose data-side numbers come from the cache).
KEYS_OF = "foleygen_keys_of"


class UnknownKeyError(ConfigError):
    """A section or key that the config does not have, said with the nearest valid name.

    ``unknown section 'trian' in run.yaml (did you mean 'train'?)``; a nested key is named by its dotted
    path (``unknown key 'train.lrr' (did you mean 'train.lr'?)``).

    Attributes:
        key: the unknown name (last component). prefix: the dotted path of its section ('' at the top).
        known: the valid names at that place. source: where it came from (a file, an override), if known.
    """

    def __init__(self, key: str, known: Iterable[str], prefix: str = "", source: str | None = None) -> None:
        self.key, self.known, self.prefix, self.source = str(key), sorted(map(str, known)), prefix, source
        message = f"unknown {'key' if prefix else 'section'} {_dotted(prefix, self.key)!r}"
        if source:
            message += f" in {source}"
        close = difflib.get_close_matches(self.key, self.known, n=1, cutoff=0.6)
        if close:
            message += f" (did you mean {_dotted(prefix, close[0])!r}?)"
        else:
            message += f" (known: {', '.join(self.known) or 'none'})"
        super().__init__(message)

    def located(self, source: str) -> UnknownKeyError:
        """The same error, saying that it is in ``source`` (e.g. ``run.yaml``, ``override 'a.b=1'``)."""
        return UnknownKeyError(self.key, self.known, self.prefix, source)


def _dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _check_keys(cls: type, data: dict[str, Any], where: str) -> None:
    """Raise :class:`UnknownKeyError` for the first key of ``data`` that is not an init field of ``cls``
    (keys starting with ``_`` are comments and pass)."""
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in data:
        if key not in fields and not str(key).startswith("_"):
            raise UnknownKeyError(str(key), fields, where)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors: list[ConfigError] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as err:
                errors.append(err)
        # the first alternative's own error (an UnknownKeyError stays one: it names the nearest key)
        raise errors[0] if errors else ConfigError(f"{where}: invalid value {value!r}")
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-3" as a string
                return float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str | None = None) -> T:
    """Build dataclass ``cls`` from plain data, converting nested dataclasses and checking types.

    Unknown keys raise :class:`UnknownKeyError` naming the nearest valid key (a typo must never be
    silently ignored); so do unknown keys of ``dict`` fields marked with :data:`KEYS_OF`. Keys starting
    with ``_`` (comments, ``_format_version``) are skipped. ``where`` is the dotted path of ``data`` in
    its file, used in messages: default the class name; ``""`` for a whole file (its keys are sections).
    """
    where = cls.__name__ if where is None else where
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    _check_keys(cls, data, where)
    kwargs = {}
    for k, v in data.items():
        if k not in fields:
            continue
        kwargs[k] = _convert(hints[k], v, _dotted(where, k))
        schema = fields[k].metadata.get(KEYS_OF)
        if schema is not None and isinstance(kwargs[k], dict):
            _check_keys(schema, kwargs[k], _dotted(where, k))
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from None


def _field_schema(tp: Any, field: dataclasses.Field[Any] | None) -> type | None:
    """The dataclass whose fields are the valid keys below a field of type ``tp`` (None: free-form)."""
    if field is not None and field.metadata.get(KEYS_OF) is not None:
        return field.metadata[KEYS_OF]
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg) and isinstance(arg, type):
                return arg
    return None


def check_override_keys(cls: type, overrides: Iterable[str]) -> None:
    """Check that every ``key.sub=value`` override names a section and keys that ``cls`` has.

    Raises :class:`UnknownKeyError` located in the override (``unknown section 'trian' in override
    'trian.lr=1' (did you mean 'train'?)``). Keys below a free-form mapping are not checked here.
    """
    for item in overrides:
        parts = item.split("=", 1)[0].strip().split(".")
        schema: type | None = cls
        for depth, part in enumerate(parts):
            if schema is None:
                break
            fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
            if part not in fields:
                raise UnknownKeyError(part, fields, ".".join(parts[:depth]), f"override {item!r}")
            schema = _field_schema(typing.get_type_hints(schema)[part], fields[part])


def parse_config(cls: type[T], data: dict[str, Any], source: str | None = None) -> T:
    """:func:`from_dict` for a whole file: its top-level keys are sections; errors name ``source``."""
    try:
        return from_dict(cls, data, "")
    except UnknownKeyError as err:
        raise (err.located(source) if source else err) from None
    except ConfigError as err:
        if source is None or err.path is not None:
            raise
        raise ConfigError(err.message, source) from None


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["lm.dim=256", "train.lr=3e-4"]`` -> nested dict; values are parsed as YAML scalars."""
    result: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-3" as a string; a number is what anyone means
                value = float(value)
            except ValueError:
                pass
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``update`` merged in, recursively for nested mappings."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_yaml(path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read a YAML mapping and apply ``key=value`` overrides. A ``base:`` key names a file to inherit."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML ({str(err).splitlines()[0]})", path) from None
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping", path)
    if "base" in data:
        base = load_yaml(path.parent / data.pop("base"))
        data = deep_merge(base, data)
    return deep_merge(data, parse_overrides(overrides))


def save_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Atomically write a versioned JSON config (adds ``_format_version``)."""
    atomic_write_text(path, json.dumps({"_format_version": CONFIG_FORMAT_VERSION, **data}, indent=2) + "\n")


def load_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON config written by :func:`save_json`, checking its format version."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"not a text JSON file (byte {err.start} is not UTF-8)", path) from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"not valid JSON ({err})", path) from None
    except (OSError, RecursionError) as err:  # unreadable, or nested deeper than Python's stack
        raise ConfigError(f"cannot be read ({getattr(err, 'strerror', None) or type(err).__name__})", path) from None
    if not isinstance(data, dict):
        raise ConfigError(f"expected a JSON object at the top, got {type(data).__name__}", path)
    version = data.get("_format_version", CONFIG_FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(f"_format_version must be an integer, got {version!r}", path)
    if version > CONFIG_FORMAT_VERSION:
        raise ConfigError(f"written by a newer foleygen (format {version} > {CONFIG_FORMAT_VERSION})", path)
    return data
