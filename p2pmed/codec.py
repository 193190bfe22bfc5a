"""Canonical CBOR: the one place where hashed or signed bytes are made and read.

Every object that is hashed, signed or sent is a frozen dataclass. It is encoded
as a CBOR map from field name to value (RFC 8949 §4.2.1 core deterministic
encoding, via ``cbor2`` in canonical mode), so peers written in other languages
can read it with any CBOR library.

Decoding is typed and strict. The bytes must be within a size limit, decode to
plain CBOR (unsigned/negative ints, byte and text strings, arrays, maps with text
keys, booleans, null; no tags, floats or indefinite lengths), nest no deeper
than ``DEPTH_MAX``, carry no trailing bytes, and be exactly the canonical
encoding of what they decode to. The value must then match the dataclass field
by field: no unknown field, no missing one, no wrong type. Every failure raises
``CodecError`` naming the path of the bad value and what was wrong with it.

Fast paths. Both directions are compiled once per type (``_encoder_for``,
``_decoder_for``) instead of reflecting on the dataclass at every call: an
encoder writes a dataclass's map header and its field names (sorted once, in
canonical order) as constant bytes and appends each field's encoding, so a
nested object that caches its encoding (``CODEC_CACHE``) costs a lookup. The
bytes are exactly ``cbor2``'s canonical encoding of ``to_value(obj)``, and the
compiled decoders make exactly the checks ``from_value`` describes, in the same
order, with the same errors: ``tests/test_codec_fast_path.py`` compares both with
the reference implementation on random values.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import cbor2

__all__ = [
    "BLOCK_SIZE_MAX",
    "DEPTH_MAX",
    "MESSAGE_SIZE_MAX",
    "TX_SIZE_MAX",
    "CodecError",
    "decode",
    "decode_value",
    "encode",
    "encode_omitting",
    "from_value",
    "to_value",
]

TX_SIZE_MAX = 1 << 20
BLOCK_SIZE_MAX = 16 << 20
MESSAGE_SIZE_MAX = 16 << 20
DEPTH_MAX = 16

T = TypeVar("T")


class CodecError(ValueError):
    """Bytes or a value that are not a valid encoding of the expected object."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


def encode(obj: Any) -> bytes:
    """The canonical CBOR encoding of a dataclass (or plain value)."""
    try:
        encoder = _ENCODERS[type(obj)]
    except KeyError:
        encoder = _encoder_for(type(obj))
    return encoder(obj)


def decode(cls: type[T], data: bytes, size_max: int) -> T:
    """Decode ``data`` into an instance of the dataclass ``cls``, strictly."""
    obj: T = from_value(cls, decode_value(data, size_max), cls.__name__)
    if getattr(cls, "CODEC_CACHE", False):
        obj.__dict__["_codec_bytes"] = bytes(data)  # checked above to be its canonical encoding
    return obj


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


_PLAIN_SCALARS = (bool, int, str, bytes, type(None))


def _check_plain(value: Any, path: str, depth: int) -> None:
    try:
        _walk_plain(value, depth)
    except _NotPlain as refusal:
        raise CodecError(path + "".join(reversed(refusal.steps)), refusal.reason) from None


class _NotPlain(Exception):
    """A value ``_walk_plain`` refuses; its path is collected on the way out (only on failure)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.steps: list[str] = []


_INT_MIN, _INT_END = -(1 << 64), 1 << 64
_EXACT_SCALARS = frozenset({str, bytes, bool, type(None)})
"""Types whose values need no check beyond their type (ints need their range checked)."""


def _is_plain_scalar(item: Any) -> bool:
    kind = type(item)
    return kind in _EXACT_SCALARS or (kind is int and _INT_MIN <= item < _INT_END)


def _walk_plain(value: Any, depth: int) -> None:
    if depth > DEPTH_MAX:
        raise _NotPlain(f"nested deeper than {DEPTH_MAX}")
    if isinstance(value, int) and not _INT_MIN <= value < _INT_END:
        # cbor2 reads bignum tags 2/3 as plain ints and writes them back, so the
        # canonical re-encoding check alone would let these tags through.
        raise _NotPlain("integer outside the 64-bit CBOR range (bignum tag 2/3 is not allowed)")
    if isinstance(value, _PLAIN_SCALARS):
        return
    # A scalar item in range needs no call of its own, unless it sits too deep.
    scalars_pass = depth + 1 <= DEPTH_MAX
    if isinstance(value, list):
        for index, item in enumerate(value):
            if scalars_pass and _is_plain_scalar(item):
                continue
            try:
                _walk_plain(item, depth + 1)
            except _NotPlain as refusal:
                refusal.steps.append(f"[{index}]")
                raise
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotPlain(f"map key {key!r} is not a text string")
            if scalars_pass and _is_plain_scalar(item):
                continue
            try:
                _walk_plain(item, depth + 1)
            except _NotPlain as refusal:
                refusal.steps.append(f".{key}")
                raise
        return
    raise _NotPlain(f"CBOR type {type(value).__name__} is not allowed (tagged or float value)")


# -- encoding: one compiled encoder per type --------------------------------------

_Encoder = Callable[[Any], bytes]


def _head(major: int, argument: int) -> bytes:
    """A CBOR item head in its shortest form (RFC 8949 §4.2.1), for 0 <= argument < 2**64."""
    if argument < 24:
        return bytes((major << 5 | argument,))
    if argument < 0x100:
        return bytes((major << 5 | 24, argument))
    if argument < 0x10000:
        return bytes((major << 5 | 25,)) + argument.to_bytes(2, "big")
    if argument < 0x100000000:
        return bytes((major << 5 | 26,)) + argument.to_bytes(4, "big")
    return bytes((major << 5 | 27,)) + argument.to_bytes(8, "big")


_HEADS = [[_head(major, argument) for argument in range(0x100)] for major in range(8)]
"""Every head with an argument below 256, by major type: most lengths and integers."""
_UNSIGNED_HEADS, _NEGATIVE_HEADS, _BYTES_HEADS, _TEXT_HEADS, _ARRAY_HEADS, _MAP_HEADS = _HEADS[:6]


def _encode_int(value: int) -> bytes:
    if 0 <= value < 0x100:
        return _UNSIGNED_HEADS[value]
    if 0 <= value < 1 << 64:
        return _head(0, value)
    if -0x100 <= value < 0:
        return _NEGATIVE_HEADS[-1 - value]
    if -(1 << 64) <= value < 0:
        return _head(1, -1 - value)
    return cbor2.dumps(value, canonical=True)  # a bignum: cbor2 writes its tag


def _encode_bytes(value: bytes) -> bytes:
    length = len(value)
    return (_BYTES_HEADS[length] if length < 0x100 else _head(2, length)) + value


def _encode_str(value: str) -> bytes:
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        return cbor2.dumps(value, canonical=True)  # a lone surrogate: fail as cbor2 fails
    length = len(data)
    return (_TEXT_HEADS[length] if length < 0x100 else _head(3, length)) + data


def _encode_array(value: list[Any] | tuple[Any, ...]) -> bytes:
    length = len(value)
    head = _ARRAY_HEADS[length] if length < 0x100 else _head(4, length)
    return head + b"".join([encode(item) for item in value])


def _encode_map(value: dict[Any, Any]) -> bytes:
    """Canonical order: shorter encoded key first, then bytewise (as cbor2's canonical mode)."""
    pairs = sorted(((encode(key), item) for key, item in value.items()), key=_canonical_key_order)
    length = len(value)
    head = _MAP_HEADS[length] if length < 0x100 else _head(5, length)
    return head + b"".join([key + encode(item) for key, item in pairs])


def _canonical_key_order(pair: tuple[bytes, Any]) -> tuple[int, bytes]:
    return len(pair[0]), pair[0]


_ENCODERS: dict[type, _Encoder] = {
    bool: lambda value: b"\xf5" if value else b"\xf4",
    int: _encode_int,
    str: _encode_str,
    bytes: _encode_bytes,
    type(None): lambda _value: b"\xf6",
    list: _encode_array,
    tuple: _encode_array,
    dict: _encode_map,
}


def _encoder_for(kind: type) -> _Encoder:
    """Compile (once) the encoder of ``kind``; the checks run in ``to_value``'s order."""
    encoder: _Encoder
    if dataclasses.is_dataclass(kind):
        encoder = _dataclass_encoder(kind)
    elif issubclass(kind, enum.Enum):
        encoder = _enum_encoder(kind)
    elif issubclass(kind, _PLAIN_SCALARS):
        encoder = functools.partial(cbor2.dumps, canonical=True)
    else:

        def encoder(obj: Any) -> bytes:
            raise TypeError(f"cannot encode {type(obj).__name__}")

    _ENCODERS[kind] = encoder
    return encoder


def _enum_encoder(kind: type[enum.Enum]) -> _Encoder:
    """A member is its value; each member's encoding is made once."""
    members: dict[enum.Enum, bytes] = {}

    def encode_member(member: enum.Enum) -> bytes:
        try:
            return members[member]
        except KeyError:
            data = members[member] = cbor2.dumps(member.value, canonical=True)
            return data

    return encode_member


def _dataclass_encoder(kind: type, omitted: str | None = None) -> _Encoder:
    """The map of ``kind``'s fields (but ``omitted``): constant head and keys, in canonical order."""
    names = [name for name in _field_types(kind) if name != omitted]
    keys = {name: _encode_str(name) for name in names}
    names.sort(key=lambda name: (len(keys[name]), keys[name]))
    fields = [(keys[name], name) for name in names]
    head = _head(5, len(fields))

    def encode_fields(obj: Any) -> bytes:
        parts = [head]
        for key, name in fields:
            parts.append(key)
            value = getattr(obj, name)
            try:
                parts.append(_ENCODERS[type(value)](value))
            except KeyError:
                parts.append(_encoder_for(type(value))(value))
        return b"".join(parts)

    if omitted is not None or not getattr(kind, "CODEC_CACHE", False):
        return encode_fields

    def encode_cached(obj: Any) -> bytes:
        cached: bytes | None = obj.__dict__.get("_codec_bytes")
        if cached is None:
            cached = obj.__dict__["_codec_bytes"] = encode_fields(obj)
        return cached

    return encode_cached


def encode_omitting(obj: Any, omitted: str) -> bytes:
    """The canonical encoding of the dataclass ``obj`` as if it had no field ``omitted``
    (what a signature covers: the message without its signature)."""
    kind: type = type(obj)
    try:
        encoder = _OMITTING_ENCODERS[kind, omitted]
    except KeyError:
        assert omitted in _field_types(kind), f"{kind.__name__} has no field {omitted!r}"
        encoder = _OMITTING_ENCODERS[kind, omitted] = _dataclass_encoder(kind, omitted)
    return encoder(obj)


_OMITTING_ENCODERS: dict[tuple[type, str], _Encoder] = {}


def to_value(obj: Any) -> Any:
    """The plain CBOR value of a dataclass, enum, tuple or plain value.

    Classes that set ``CODEC_CACHE = True`` (frozen, with a ``__dict__``) keep
    their plain value after the first call, and their encoding after the first
    ``encode``, so an object that is encoded many times (a transaction inside
    proposals, certificates and records; a vote) is walked once.
    """
    kind = type(obj)
    if kind in _SCALAR_TYPES:
        return obj
    names = _dataclass_field_names(kind)
    if names is not None:
        if getattr(kind, "CODEC_CACHE", False):
            cached = obj.__dict__.get("_codec_value")
            if cached is None:
                cached = obj.__dict__["_codec_value"] = {name: to_value(getattr(obj, name)) for name in names}
            return cached
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
    """Check a plain value against the type ``cls`` and build it.

    ``cls`` is ``Any``, a union, ``tuple[X, ...]`` or ``tuple[X, Y]``, ``dict[str, X]``,
    a dataclass, an enum, ``None``, ``int``, ``bool``, ``str`` or ``bytes``; the checks
    are tried in that order and compiled once per class (``_decoder_for``).
    """
    if isinstance(cls, type):
        try:
            decoder = _DECODERS[cls]
        except KeyError:
            decoder = _DECODERS[cls] = _decoder_for(cls)
        return decoder(value, path)
    # A hint that is not a class (a union, a tuple[...]) is compiled at each call: equal
    # hints may differ (Union[A, B] == Union[B, A], tried in another order), so none is
    # cached by equality; the fields of a dataclass keep theirs in its own decoder.
    return _decoder_for(cls)(value, path)


_Decoder = Callable[[Any, str], Any]
_DECODERS: dict[type, _Decoder] = {}


def _decoder_for(cls: Any) -> _Decoder:
    """Compile the decoder of the type hint ``cls`` (see ``from_value``)."""
    if cls is Any:
        return _decode_any
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        return _union_decoder(cls)
    if origin is tuple:
        return _tuple_decoder(cls)
    if origin is dict:
        return _dict_decoder(cls)
    if dataclasses.is_dataclass(cls):
        return _dataclass_decoder(cls)
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        return _enum_decoder(cls)
    if cls is type(None) or cls is None:
        return _decode_none
    if cls is int:
        return _decode_int
    if cls in (bool, str, bytes):
        return functools.partial(_decode_exact, cls)

    def unsupported(_value: Any, path: str) -> Any:
        raise TypeError(f"{path}: unsupported field type {cls!r}")

    return unsupported


def _decode_any(value: Any, _path: str) -> Any:
    return value


def _decode_none(value: Any, path: str) -> None:
    if value is not None:
        raise CodecError(path, f"expected null, got {_describe(value)}")


def _decode_int(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CodecError(path, f"expected int, got {_describe(value)}")
    return value


def _decode_exact(cls: type, value: Any, path: str) -> Any:
    if type(value) is not cls:
        raise CodecError(path, f"expected {cls.__name__}, got {_describe(value)}")
    return value


def _union_decoder(cls: Any) -> _Decoder:
    """The first member that takes the value wins; null only where the union allows it."""
    members = typing.get_args(cls)
    takes_none = type(None) in members
    decoders = [_member_decoder(member) for member in members if member is not type(None)]

    def decode_union(value: Any, path: str) -> Any:
        if value is None and takes_none:
            return None
        errors = []
        for decoder in decoders:
            try:
                return decoder(value, path)
            except CodecError as error:
                errors.append(error.reason)
        raise CodecError(path, " or ".join(errors))

    return decode_union


def _member_decoder(cls: Any) -> _Decoder:
    """A nested hint's decoder, compiled once for its parent; a dataclass's is looked up in
    the shared table when first called (so a dataclass may nest itself)."""
    if not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
        return _decoder_for(cls)
    decoder: _Decoder | None = None

    def decode_member(value: Any, path: str) -> Any:
        nonlocal decoder
        if decoder is None:
            decoder = _DECODERS.get(cls) or _DECODERS.setdefault(cls, _decoder_for(cls))
        return decoder(value, path)

    return decode_member


def _tuple_decoder(cls: Any) -> _Decoder:
    args = typing.get_args(cls)
    if len(args) == 2 and args[1] is Ellipsis:
        item_decoder = _member_decoder(args[0])

        def decode_items(value: Any, path: str) -> tuple[Any, ...]:
            if not isinstance(value, list):
                raise CodecError(path, f"expected array, got {_describe(value)}")
            return tuple([item_decoder(item, f"{path}[{index}]") for index, item in enumerate(value)])

        return decode_items
    decoders = [_member_decoder(arg) for arg in args]

    def decode_fixed(value: Any, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise CodecError(path, f"expected array, got {_describe(value)}")
        if len(value) != len(decoders):
            raise CodecError(path, f"expected array of {len(decoders)} items, got {len(value)}")
        return tuple(
            [
                decoder(item, f"{path}[{index}]")
                for index, (decoder, item) in enumerate(zip(decoders, value, strict=True))
            ]
        )

    return decode_fixed


def _dict_decoder(cls: Any) -> _Decoder:
    _key_type, value_type = typing.get_args(cls)
    item_decoder = _member_decoder(value_type)

    def decode_dict(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise CodecError(path, f"expected map, got {_describe(value)}")
        return {key: item_decoder(item, f"{path}.{key}") for key, item in value.items()}

    return decode_dict


def _enum_decoder(cls: type[enum.Enum]) -> _Decoder:
    # Keyed by type as well: an IntEnum must not take true/false (True == 1).
    members = {(type(member.value), member.value): member for member in cls}

    def decode_enum(value: Any, path: str) -> enum.Enum:
        try:
            return members[type(value), value]
        except (KeyError, TypeError):  # not a member's value (TypeError: an array or a map)
            return _from_enum(cls, value, path)

    return decode_enum


def _from_enum(cls: type[enum.Enum], value: Any, path: str) -> enum.Enum:
    try:
        # Same type as a member's value: an IntEnum must not take true/false.
        if not any(type(value) is type(member.value) for member in cls):
            raise ValueError
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in cls)
        raise CodecError(path, f"unknown value {value!r}; expected one of {allowed}") from None


def _dataclass_decoder(cls: Any) -> _Decoder:
    """Exactly the dataclass's fields, each decoded by its hint, then its constructor's
    own checks; the field decoders are compiled on the first call (after the map check,
    where an unresolvable hint fails)."""
    compiled: tuple[list[tuple[str, str, _Decoder]], set[str]] | None = None
    cache = getattr(cls, "CODEC_CACHE", False)

    def decode_dataclass(value: Any, path: str) -> Any:
        nonlocal compiled
        if not isinstance(value, dict):
            raise CodecError(path, f"expected map, got {_describe(value)}")
        if compiled is None:
            hints = _field_types(cls)
            compiled = [(name, "." + name, _member_decoder(hint)) for name, hint in hints.items()], set(hints)
        fields, names = compiled
        if value.keys() != names:
            unknown = sorted(set(value) - names)
            if unknown:
                raise CodecError(path, f"unknown field {unknown[0]!r}")
            missing = [name for name, _suffix, _decoder in fields if name not in value]
            raise CodecError(path, f"missing field {missing[0]!r}")
        arguments = {name: decoder(value[name], path + suffix) for name, suffix, decoder in fields}
        try:
            built = cls(**arguments)
        except (ValueError, TypeError) as error:
            raise CodecError(path, str(error)) from None
        if cache:
            # The decoded map is exactly what to_value would rebuild (tuples come back
            # as lists, enums as their values, both as decoded), so keep it.
            built.__dict__["_codec_value"] = value
        return built

    return decode_dataclass


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls) if field.init}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "bool", int: "int", str: "str", bytes: "bytes", list: "array", dict: "map"}
    return names.get(type(value), type(value).__name__)
