"""Canonical CBOR codec: round trips, strict rejections and fuzzing of the decoders."""

import enum
from dataclasses import dataclass
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmed import codec
from strategies import mutated

FAST = settings(max_examples=200, deadline=None)
SIZE = 1 << 16


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass(frozen=True)
class Inner:
    x: int
    label: str


@dataclass(frozen=True)
class Outer:
    inner: Inner
    items: tuple[Inner, ...]
    pair: tuple[int, bytes]
    note: str | None
    maybe_inner: Inner | None
    color: Color
    level: Level
    scores: dict[str, int]
    nested: dict[str, Inner]
    extra: Any
    flag: bool


@dataclass(frozen=True)
class Small:
    color: Color
    level: Level
    note: str | None


@dataclass(frozen=True)
class Positive:
    n: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError("n must be positive")


@dataclass(frozen=True)
class Holder:
    p: Positive


# --- strategies ---------------------------------------------------------------

INT64 = st.integers(-(1 << 64), (1 << 64) - 1)
PLAIN_SCALARS = st.none() | st.booleans() | INT64 | st.text(max_size=12) | st.binary(max_size=12)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    return 0


PLAIN_VALUES = st.recursive(
    PLAIN_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
).filter(lambda value: _depth(value) <= 8)

INNERS = st.builds(Inner, x=INT64, label=st.text(max_size=10))
OUTERS = st.builds(
    Outer,
    inner=INNERS,
    items=st.lists(INNERS, max_size=3).map(tuple),
    pair=st.tuples(INT64, st.binary(max_size=8)),
    note=st.none() | st.text(max_size=8),
    maybe_inner=st.none() | INNERS,
    color=st.sampled_from(Color),
    level=st.sampled_from(Level),
    scores=st.dictionaries(st.text(max_size=5), INT64, max_size=3),
    nested=st.dictionaries(st.text(max_size=5), INNERS, max_size=2),
    extra=PLAIN_VALUES,
    flag=st.booleans(),
)
SMALLS = st.builds(Small, st.sampled_from(Color), st.sampled_from(Level), st.none() | st.text(max_size=4))
HOLDERS = st.builds(Holder, p=st.builds(Positive, n=st.integers(1, 1 << 40)))


def _rejected(data: bytes, size_max: int = SIZE) -> codec.CodecError:
    with pytest.raises(codec.CodecError) as info:
        codec.decode_value(data, size_max)
    return info.value


def _rejected_as(cls: type, data: bytes) -> codec.CodecError:
    with pytest.raises(codec.CodecError) as info:
        codec.decode(cls, data, SIZE)
    return info.value


def _outer() -> Outer:
    return Outer(
        inner=Inner(7, "seven"),
        items=(Inner(1, "one"), Inner(2, "two")),
        pair=(3, b"\x03"),
        note="n",
        maybe_inner=None,
        color=Color.GREEN,
        level=Level.HIGH,
        scores={"k": 1},
        nested={"k": Inner(4, "four")},
        extra={"any": [1, "two", b"3", None, True]},
        flag=True,
    )


# --- round trips --------------------------------------------------------------


@FAST
@given(OUTERS)
def test_nested_dataclass_round_trips_to_equal_object_and_same_bytes(outer: Outer) -> None:
    data = codec.encode(outer)
    decoded = codec.decode(Outer, data, SIZE)
    assert decoded == outer
    assert type(decoded.items) is tuple and type(decoded.pair) is tuple
    assert isinstance(decoded.color, Color) and isinstance(decoded.level, Level)
    assert codec.encode(decoded) == data


@FAST
@given(PLAIN_VALUES)
def test_plain_value_round_trips_through_decode_value(value: Any) -> None:
    data = codec.encode(value)
    decoded = codec.decode_value(data, SIZE)
    assert decoded == value
    assert codec.encode(decoded) == data


def test_round_trip_keeps_optional_none_and_present() -> None:
    outer = _outer()
    with_inner = Outer(**{**outer.__dict__, "maybe_inner": Inner(5, "five"), "note": None})
    for value in (outer, with_inner):
        assert codec.decode(Outer, codec.encode(value), SIZE) == value


def test_encode_writes_dataclass_as_map_of_field_names_with_enum_values() -> None:
    value = cbor2.loads(codec.encode(_outer()))
    assert set(value) == {field for field in Outer.__dataclass_fields__}
    assert value["color"] == "green" and value["level"] == 2
    assert value["items"] == [{"x": 1, "label": "one"}, {"x": 2, "label": "two"}]


def test_encode_is_canonical_whatever_the_dict_insertion_order() -> None:
    assert codec.encode({"b": 1, "a": 2, "aa": 3}) == codec.encode({"aa": 3, "a": 2, "b": 1})
    # RFC 8949 core deterministic order: shorter encoded key first, then bytewise.
    assert codec.encode({"aa": 3, "b": 1}) == bytes.fromhex("a2616201626161") + b"\x03"


def test_encode_refuses_unsupported_types() -> None:
    with pytest.raises(TypeError, match="cannot encode float"):
        codec.encode({"x": 1.5})


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = codec.encode(Inner(1, "a"))
    assert codec.decode(Inner, bytearray(data), SIZE) == Inner(1, "a")
    assert codec.decode(Inner, memoryview(data), SIZE) == Inner(1, "a")


def test_decode_value_accepts_64_bit_integer_limits() -> None:
    for value in ((1 << 64) - 1, -(1 << 64), 0, -1):
        assert codec.decode_value(codec.encode(value), SIZE) == value


def test_nesting_exactly_depth_max_is_accepted() -> None:
    data = b"\x81" * codec.DEPTH_MAX + b"\x00"
    value = codec.decode_value(data, SIZE)
    assert _depth(value) == codec.DEPTH_MAX


# --- strict rejections ----------------------------------------------------------


@pytest.mark.parametrize(
    "hex_data",
    [
        "a2616201616102",  # {"b": 1, "a": 2}: keys out of order
        "a2626161016162" + "02",  # {"aa": 1, "b": 2}: longer key first
    ],
)
def test_map_keys_out_of_canonical_order_are_rejected(hex_data: str) -> None:
    data = bytes.fromhex(hex_data)
    assert sorted(cbor2.loads(data)) in (["a", "b"], ["aa", "b"])  # valid, just not canonical
    assert "not the canonical encoding" in str(_rejected(data))


def test_dataclass_with_fields_out_of_order_is_rejected() -> None:
    data = bytes.fromhex("a2656c6162656c6161") + bytes.fromhex("617801")  # {"label": "a", "x": 1}
    assert cbor2.loads(data) == {"label": "a", "x": 1}
    assert "not the canonical encoding" in str(_rejected_as(Inner, data))


@pytest.mark.parametrize(
    "hex_data",
    [
        "1801",  # 1 in a one-byte argument
        "190001",  # 1 in two bytes
        "1a00000001",  # 1 in four bytes
        "1b0000000000000001",  # 1 in eight bytes
        "3800",  # -1 in a one-byte argument
        "7801" + "61",  # text "a" with a one-byte length
        "5801" + "00",  # bytes with a one-byte length
        "9801" + "00",  # array with a one-byte length
        "b801" + "616100",  # map with a one-byte length
    ],
)
def test_non_minimal_integer_or_length_is_rejected(hex_data: str) -> None:
    data = bytes.fromhex(hex_data)
    cbor2.loads(data)  # a valid, non-canonical encoding
    assert "not the canonical encoding" in str(_rejected(data))


@pytest.mark.parametrize("hex_data", ["9f01ff", "5f4100ff", "7f6161ff", "bf616100ff"])
def test_indefinite_length_items_are_rejected(hex_data: str) -> None:
    error = _rejected(bytes.fromhex(hex_data))
    assert "indefinite" in str(error)


def test_trailing_bytes_are_rejected() -> None:
    data = codec.encode(Inner(1, "a"))
    assert "trailing bytes" in str(_rejected(data + b"\x00"))
    assert "trailing bytes" in str(_rejected_as(Inner, data + data))


def test_unknown_field_is_rejected_with_its_name() -> None:
    data = codec.encode({"x": 1, "label": "a", "zzz": 0})
    error = _rejected_as(Inner, data)
    assert str(error) == "Inner: unknown field 'zzz'"
    assert error.path == "Inner"


def test_missing_field_is_rejected_with_its_name() -> None:
    error = _rejected_as(Inner, codec.encode({"x": 1}))
    assert str(error) == "Inner: missing field 'label'"


def test_top_level_value_of_the_wrong_type_is_rejected() -> None:
    assert str(_rejected_as(Inner, codec.encode([1, "a"]))) == "Inner: expected map, got array"


def _set(path: tuple[Any, ...], new: Any) -> Any:
    def edit(value: dict[str, Any]) -> None:
        target: Any = value
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = new

    return edit


@pytest.mark.parametrize(
    ("edit", "path", "reason"),
    [
        (_set(("inner", "x"), "seven"), "Outer.inner.x", "expected int, got str"),
        (_set(("inner", "x"), True), "Outer.inner.x", "expected int, got bool"),
        (_set(("inner", "label"), b"seven"), "Outer.inner.label", "expected str, got bytes"),
        (_set(("items", 1, "label"), 2), "Outer.items[1].label", "expected str, got int"),
        (_set(("items",), {"a": 1}), "Outer.items", "expected array, got map"),
        (_set(("pair",), [1, b"", 3]), "Outer.pair", "expected array of 2 items, got 3"),
        (_set(("pair", 1), "x"), "Outer.pair[1]", "expected bytes, got str"),
        (_set(("note",), 5), "Outer.note", "expected str, got int"),
        (_set(("maybe_inner",), 5), "Outer.maybe_inner", "expected map, got int"),
        (_set(("color",), "blue"), "Outer.color", "unknown value 'blue'"),
        (_set(("level",), 3), "Outer.level", "unknown value 3"),
        (_set(("level",), True), "Outer.level", "unknown value True"),
        (_set(("level",), "1"), "Outer.level", "unknown value '1'"),
        (_set(("scores", "k"), None), "Outer.scores.k", "expected int, got null"),
        (_set(("scores",), []), "Outer.scores", "expected map, got array"),
        (_set(("nested", "k", "x"), []), "Outer.nested.k.x", "expected int, got array"),
        (_set(("flag",), 1), "Outer.flag", "expected bool, got int"),
        (_set(("inner", "extra"), 1), "Outer.inner", "unknown field 'extra'"),
    ],
)
def test_wrong_type_is_rejected_with_the_path_of_the_bad_value(edit: Any, path: str, reason: str) -> None:
    value = codec.to_value(_outer())
    edit(value)
    error = _rejected_as(Outer, codec.encode(value))
    assert error.path == path
    assert reason in error.reason
    assert str(error).startswith(f"{path}: ")


def test_validation_error_in_post_init_becomes_codec_error_with_path() -> None:
    error = _rejected_as(Holder, codec.encode({"p": {"n": 0}}))
    assert error.path == "Holder.p"
    assert "n must be positive" in error.reason


@pytest.mark.parametrize(
    ("hex_data", "fragment"),
    [
        ("c11a514b67b0", "datetime"),  # tag 1: epoch date/time
        ("c074323031332d30332d32315432303a30343a30305a", "datetime"),  # tag 0: date/time string
        ("c249010000000000000000", "bignum"),  # tag 2: 2**64
        ("c349010000000000000000", "bignum"),  # tag 3: -2**64 - 1
        ("c24101", "canonical"),  # tag 2 around a small number
        ("d9177000", "tag 6000"),  # a tag nobody handles
        ("d9d9f701", "canonical"),  # self-described CBOR
        ("d901028101", "set"),  # tag 258: a set
    ],
)
def test_tagged_values_are_rejected(hex_data: str, fragment: str) -> None:
    assert fragment in str(_rejected(bytes.fromhex(hex_data)))


def test_bignum_is_rejected_inside_a_dataclass_too() -> None:
    data = cbor2.dumps({"label": "a", "x": 1 << 64}, canonical=True)
    assert "bignum" in str(_rejected_as(Inner, data))


@pytest.mark.parametrize("hex_data", ["f93c00", "fa3f800000", "fb3ff0000000000000", "f97e00", "f90000"])
def test_floats_are_rejected(hex_data: str) -> None:
    assert "float" in str(_rejected(bytes.fromhex(hex_data)))


@pytest.mark.parametrize("hex_data", ["f7", "f0", "f820"])
def test_simple_values_other_than_bool_and_null_are_rejected(hex_data: str) -> None:
    assert "is not allowed" in str(_rejected(bytes.fromhex(hex_data)))


@pytest.mark.parametrize(
    ("hex_data", "path", "reason"),
    [
        ("a10102", "", "map key 1 is not a text string"),
        ("a1416101", "", "map key b'a' is not a text string"),
        ("a1f501", "", "map key True is not a text string"),
        ("81a10101", "[0]", "map key 1 is not a text string"),
        ("a16161a1410000", ".a", "map key b'\\x00' is not a text string"),
    ],
)
def test_non_text_map_keys_are_rejected(hex_data: str, path: str, reason: str) -> None:
    error = _rejected(bytes.fromhex(hex_data))
    assert error.path == path
    assert error.reason == reason


def test_duplicate_map_keys_are_rejected() -> None:
    error = _rejected(bytes.fromhex("a2616101616102"))  # {"a": 1, "a": 2}
    assert "duplicate map key" in str(error).lower()


@pytest.mark.parametrize("depth", [codec.DEPTH_MAX + 1, codec.DEPTH_MAX + 5, 100_000])
def test_nesting_deeper_than_depth_max_is_rejected(depth: int) -> None:
    for container in (b"\x81", b"\xa1\x61\x61"):  # [..] and {"a": ..}
        error = _rejected(container * depth + b"\x00", size_max=10 * depth)
        assert f"depth ({codec.DEPTH_MAX})" in str(error) or f"deeper than {codec.DEPTH_MAX}" in str(error)


def test_self_referencing_shared_value_is_rejected() -> None:
    error = _rejected(bytes.fromhex("d81c81d81d00"))  # 28([29(0)]): a list that contains itself
    assert error.path == "[0]" * (codec.DEPTH_MAX + 1)
    assert error.reason == f"nested deeper than {codec.DEPTH_MAX}"


def test_input_over_size_max_is_rejected_before_decoding() -> None:
    data = codec.encode({"blob": bytes(100)})
    assert codec.decode_value(data, len(data)) == {"blob": bytes(100)}
    error = _rejected(data, size_max=len(data) - 1)
    assert str(error) == f"too big: {len(data)} bytes, limit {len(data) - 1}"
    with pytest.raises(codec.CodecError, match="too big"):
        codec.decode(Inner, codec.encode(Inner(1, "x" * 50)), 20)


def test_empty_input_and_non_bytes_are_rejected() -> None:
    assert str(_rejected(b"")) == "empty input"
    with pytest.raises(codec.CodecError, match="expected bytes, got str"):
        codec.decode_value("a0", SIZE)  # type: ignore[arg-type]


def test_truncated_input_is_rejected_as_malformed() -> None:
    data = codec.encode(Inner(1, "abc"))
    for end in range(1, len(data)):
        assert "malformed CBOR" in str(_rejected(data[:end])) or "canonical" in str(_rejected(data[:end]))


# --- fuzzing ------------------------------------------------------------------


def _decodes_strictly_or_raises_codec_error(data: bytes) -> None:
    try:
        value = codec.decode_value(data, SIZE)
    except codec.CodecError:
        return
    # Anything accepted is plain CBOR in its one canonical encoding.
    assert cbor2.dumps(value, canonical=True) == data
    assert _depth(value) <= codec.DEPTH_MAX


@FAST
@given(st.binary(max_size=64))
def test_decode_value_of_random_bytes_only_raises_codec_error(data: bytes) -> None:
    _decodes_strictly_or_raises_codec_error(data)


@FAST
@given(mutated(PLAIN_VALUES.map(codec.encode)))
def test_decode_value_of_mutated_encodings_only_raises_codec_error(data: bytes) -> None:
    _decodes_strictly_or_raises_codec_error(data)


def _typed_decode_is_strict(cls: type, data: bytes) -> None:
    try:
        obj = codec.decode(cls, data, SIZE)
    except codec.CodecError:
        return
    assert type(obj) is cls
    assert codec.encode(obj) == data  # an accepted object has exactly these bytes


@FAST
@given(st.sampled_from([Inner, Outer, Small, Holder]), st.binary(max_size=64))
def test_decode_dataclass_of_random_bytes_only_raises_codec_error(cls: type, data: bytes) -> None:
    _typed_decode_is_strict(cls, data)


@FAST
@given(mutated(OUTERS.map(codec.encode)))
def test_decode_outer_of_mutated_encodings_only_raises_codec_error(data: bytes) -> None:
    _typed_decode_is_strict(Outer, data)


@FAST
@given(mutated(INNERS.map(codec.encode)))
def test_decode_inner_of_mutated_encodings_only_raises_codec_error(data: bytes) -> None:
    _typed_decode_is_strict(Inner, data)


@FAST
@given(mutated(HOLDERS.map(codec.encode)))
def test_decode_validated_dataclass_of_mutated_encodings_only_raises_codec_error(data: bytes) -> None:
    _typed_decode_is_strict(Holder, data)


@FAST
@given(mutated(SMALLS.map(codec.encode)))
def test_decode_enum_dataclass_of_mutated_encodings_only_raises_codec_error(data: bytes) -> None:
    _typed_decode_is_strict(Small, data)
