"""The codec as it was before its compiled fast path: the reference the fast path must equal.

``encode`` walks the object into plain values and lets ``cbor2`` write them in
canonical mode; ``decode_value`` checks what ``cbor2`` read with a walk that builds
every path as it goes; ``from_value`` reflects on the type hint at every call. Tests
compare ``p2pmed.codec`` with these on random values (``test_codec_fast_path``):
the same bytes out, the same objects or the same errors in.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any

import cbor2

from p2pmed.codec import DEPTH_MAX, CodecError

_PLAIN_SCALARS = (bool, int, str, bytes, type(None))


def encode(obj: Any) -> bytes:
    return cbor2.dumps(to_value(obj), canonical=True)


def decode(cls: Any, data: bytes, size_max: int) -> Any:
    return from_value(cls, decode_value(data, size_max), cls.__name__)


def decode_value(data: bytes, size_max: int) -> Any:
    """Decode canonical, plain CBOR of at most ``size_max`` bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError("", f"expected bytes, got {type(data).__name__}")
    if len(data) > size_max:
        raise CodecError("", f"too big: {len(data)} bytes, limit {size_max}")
    if not data:
        raise CodecError("", "empty input")
    try:
        value = cbor2.loads(
            data,
            max_depth=DEPTH_MAX,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            tag_hook=_reject_tag,
        )
    except CodecError:
        raise
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as error:
        raise CodecError("", f"malformed CBOR: {error}") from None
    _check_plain(value, "", 0)
    if cbor2.dumps(value, canonical=True) != bytes(data):
        raise CodecError("", "not the canonical encoding (or trailing bytes)")
    return value


def _reject_tag(tag: cbor2.CBORTag, _immutable: bool) -> Any:
    raise CodecError("", f"CBOR tag {tag.tag} is not allowed")


def _check_plain(value: Any, path: str, depth: int) -> None:
    if depth > DEPTH_MAX:
        raise CodecError(path, f"nested deeper than {DEPTH_MAX}")
    if isinstance(value, int) and not -(1 << 64) <= value < (1 << 64):
        # cbor2 reads bignum tags 2/3 as plain ints and writes them back, so the
        # canonical re-encoding check alone would let these tags through.
        raise CodecError(path, "integer outside the 64-bit CBOR range (bignum tag 2/3 is not allowed)")
    if isinstance(value, _PLAIN_SCALARS):
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_plain(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError(path, f"map key {key!r} is not a text string")
            _check_plain(item, f"{path}.{key}", depth + 1)
        return
    raise CodecError(path, f"CBOR type {type(value).__name__} is not allowed (tagged or float value)")


def to_value(obj: Any) -> Any:
    """The plain CBOR value of a dataclass, enum, tuple or plain value.

    The reference walks every object afresh (no ``CODEC_CACHE``), so what it
    encodes never depends on what was encoded before.
    """
    kind = type(obj)
    if kind in _SCALAR_TYPES:
        return obj
    names = _dataclass_field_names(kind)
    if names is not None:
        return {name: to_value(getattr(obj, name)) for name in names}
    if isinstance(obj, enum.Enum):
        return obj.value
    if kind is tuple or kind is list:
        return [to_value(item) for item in obj]
    if kind is dict:
        return {key: to_value(item) for key, item in obj.items()}
    if isinstance(obj, _PLAIN_SCALARS):
        return obj
    raise TypeError(f"cannot encode {kind.__name__}")


_SCALAR_TYPES = frozenset(_PLAIN_SCALARS)
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _dataclass_field_names(kind: type) -> tuple[str, ...] | None:
    try:
        return _FIELD_NAMES[kind]
    except KeyError:
        names = tuple(_field_types(kind)) if dataclasses.is_dataclass(kind) else None
        _FIELD_NAMES[kind] = names
        return names


def from_value(cls: Any, value: Any, path: str) -> Any:
    """Check a plain value against the type ``cls`` and build it."""
    if cls is Any:
        return value
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        return _from_union(cls, value, path)
    if origin is tuple:
        return _from_tuple(cls, value, path)
    if origin is dict:
        return _from_dict(cls, value, path)
    if dataclasses.is_dataclass(cls):
        return _from_dataclass(cls, value, path)
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        return _from_enum(cls, value, path)
    if cls is type(None) or cls is None:
        if value is not None:
            raise CodecError(path, f"expected null, got {_describe(value)}")
        return None
    if cls is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise CodecError(path, f"expected int, got {_describe(value)}")
        return value
    if cls in (bool, str, bytes):
        if type(value) is not cls:
            raise CodecError(path, f"expected {cls.__name__}, got {_describe(value)}")
        return value
    raise TypeError(f"{path}: unsupported field type {cls!r}")


def _from_union(cls: Any, value: Any, path: str) -> Any:
    members = typing.get_args(cls)
    if value is None and type(None) in members:
        return None
    errors = []
    for member in members:
        if member is type(None):
            continue
        try:
            return from_value(member, value, path)
        except CodecError as error:
            errors.append(error.reason)
    raise CodecError(path, " or ".join(errors))


def _from_tuple(cls: Any, value: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise CodecError(path, f"expected array, got {_describe(value)}")
    args = typing.get_args(cls)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(from_value(args[0], item, f"{path}[{i}]") for i, item in enumerate(value))
    if len(value) != len(args):
        raise CodecError(path, f"expected array of {len(args)} items, got {len(value)}")
    return tuple(from_value(arg, item, f"{path}[{i}]") for i, (arg, item) in enumerate(zip(args, value, strict=True)))


def _from_dict(cls: Any, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CodecError(path, f"expected map, got {_describe(value)}")
    _key_type, value_type = typing.get_args(cls)
    return {key: from_value(value_type, item, f"{path}.{key}") for key, item in value.items()}


def _from_enum(cls: type[enum.Enum], value: Any, path: str) -> enum.Enum:
    try:
        # Same type as a member's value: an IntEnum must not take true/false.
        if not any(type(value) is type(member.value) for member in cls):
            raise ValueError
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in cls)
        raise CodecError(path, f"unknown value {value!r}; expected one of {allowed}") from None


def _from_dataclass(cls: Any, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise CodecError(path, f"expected map, got {_describe(value)}")
    hints = _field_types(cls)
    unknown = sorted(set(value) - set(hints))
    if unknown:
        raise CodecError(path, f"unknown field {unknown[0]!r}")
    missing = [name for name in hints if name not in value]
    if missing:
        raise CodecError(path, f"missing field {missing[0]!r}")
    fields = {name: from_value(hint, value[name], f"{path}.{name}") for name, hint in hints.items()}
    try:
        built = cls(**fields)
    except (ValueError, TypeError) as error:
        raise CodecError(path, str(error)) from None
    return built


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls) if field.init}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "bool", int: "int", str: "str", bytes: "bytes", list: "array", dict: "map"}
    return names.get(type(value), type(value).__name__)
