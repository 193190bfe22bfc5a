"""The compiled codec against the reference it replaced (``codec_reference``), on random values
of the hot types (transaction, proposal, vote, pre-prepare, certificate, envelope) and of the
codec tests' own types: the same bytes out, and for any bytes in, the same object or the
same error at the same path."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import codec_reference
from p2pmed import codec
from p2pmed.consensus.messages import (
    Checkpoint,
    CommitCertificate,
    Envelope,
    MessageKind,
    NewView,
    PrePrepare,
    Proposal,
    ViewChange,
    Vote,
    VoteKind,
    decode_message,
    encode_message,
    signing_payload,
)
from p2pmed.ledger.block import StateCommitment
from p2pmed.ledger.tx import Transaction
from strategies import mutated
from test_codec import OUTERS, PLAIN_VALUES, SMALLS, Outer, Small
from test_replica_fuzz import corpus

FAST = settings(max_examples=200, deadline=None)
SIZE = codec.MESSAGE_SIZE_MAX

HASHES = st.binary(min_size=32, max_size=32)
KEYS = st.binary(min_size=32, max_size=32)
SIGNATURES = st.binary(min_size=64, max_size=64)
NAMES = st.text(min_size=1, max_size=12)
BODIES = st.dictionaries(st.text(max_size=6), PLAIN_VALUES, max_size=4)

TRANSACTIONS = st.builds(Transaction, NAMES, NAMES, KEYS, st.integers(0, (1 << 63) - 1), BODIES, SIGNATURES)
STATES = st.builds(StateCommitment, st.integers(0, 1 << 40), HASHES, HASHES)
PROPOSALS = st.builds(
    lambda state, extra, time_ms, proposer, txs: Proposal(state.height + extra, time_ms, proposer, txs, state),
    STATES,
    st.integers(1, 1 << 20),
    st.integers(0, 1 << 50),
    KEYS,
    st.lists(TRANSACTIONS, max_size=3).map(tuple),
)
VOTES = st.builds(
    Vote,
    st.sampled_from(VoteKind),
    st.integers(0, 1 << 40),
    st.integers(1, 1 << 40),
    HASHES,
    st.integers(0, 99),
    SIGNATURES,
)
PRE_PREPARES = st.builds(PrePrepare, VOTES, PROPOSALS)
CHECKPOINTS = st.builds(Checkpoint, st.integers(0, 1 << 40), HASHES, st.integers(0, 99), SIGNATURES)
CERTIFICATES = st.builds(CommitCertificate, st.lists(VOTES, min_size=1, max_size=4).map(tuple))
ENVELOPES = (
    st.builds(Envelope, st.just(MessageKind.VOTE), VOTES)
    | st.builds(Envelope, st.just(MessageKind.PRE_PREPARE), PRE_PREPARES)
    | st.builds(Envelope, st.just(MessageKind.CHECKPOINT), CHECKPOINTS)
    | st.builds(Envelope, st.just(MessageKind.PROPOSAL), PROPOSALS)
)
HOT = TRANSACTIONS | PROPOSALS | VOTES | PRE_PREPARES | CHECKPOINTS | CERTIFICATES | ENVELOPES
HOT_TYPES: list[type] = [Transaction, Proposal, Vote, PrePrepare, Checkpoint, CommitCertificate]


def _reference_signing_payload(message: Any) -> bytes:
    value = dict(codec_reference.to_value(message))
    del value["signature"]
    return codec_reference.encode(value)


def _outcome(decode: Any, cls: type, data: bytes) -> tuple[Any, ...]:
    try:
        obj = decode(cls, data, SIZE)
    except codec.CodecError as error:
        return ("refused", error.path, error.reason)
    return ("decoded", type(obj), codec_reference.encode(obj), obj)


def _same_outcome(cls: type, data: bytes) -> None:
    fast, reference = _outcome(codec.decode, cls, data), _outcome(codec_reference.decode, cls, data)
    assert fast == reference


def _value_outcome(decode_value: Any, data: bytes) -> tuple[Any, ...]:
    try:
        value = decode_value(data, SIZE)
    except codec.CodecError as error:
        return ("refused", error.path, error.reason)
    return ("decoded", repr(value))  # repr: [True] == [1], but not as text


def _same_value_outcome(data: bytes) -> None:
    assert _value_outcome(codec.decode_value, data) == _value_outcome(codec_reference.decode_value, data)


NESTED = st.recursive(
    PLAIN_VALUES,
    lambda children: (
        st.lists(children, min_size=1, max_size=2)
        | st.dictionaries(st.text(max_size=3), children, min_size=1, max_size=2)
    ),
    max_leaves=40,
)
"""Plain values nested up to and past ``DEPTH_MAX``."""


@FAST
@given(st.binary(max_size=80) | mutated(PLAIN_VALUES.map(codec_reference.encode)))
def test_any_bytes_decode_to_the_same_plain_value_or_the_same_error_as_the_reference(data: bytes) -> None:
    _same_value_outcome(data)


@FAST
@given(NESTED, st.integers(0, 20), st.sampled_from([b"\x81", b"\xa1\x61\x61"]))
def test_deep_nesting_is_refused_at_the_same_depth_and_path_as_the_reference(
    value: Any, depth: int, wrap: bytes
) -> None:
    _same_value_outcome(wrap * depth + cbor2.dumps(value, canonical=True))


@pytest.mark.parametrize(
    "hex_data",
    [
        "c11a514b67b0",  # tag 1: epoch date/time
        "c249010000000000000000",  # tag 2: 2**64
        "c349010000000000000000",  # tag 3: -2**64 - 1
        "82c2490100000000000000000a",  # a bignum inside an array
        "a16161c349010000000000000000",  # a bignum inside a map
        "d81c81d81d00",  # a list that contains itself
        "d81c8201d81d00",  # [1, itself]: a scalar found too deep, before the list
        "d81ca2616101616281d81d00",  # {"a": 1, "b": [itself]}
        "a2616201616102",  # keys out of order
        "f93c00",  # a float
        "81f7",  # undefined inside an array
        "a10102",  # an integer map key
        "a1f501",  # a boolean map key
        "1b0000000000000001",  # a non-minimal integer
        "1bffffffffffffffff",  # 2**64 - 1
        "3bffffffffffffffff",  # -2**64
    ],
)
def test_edge_inputs_decode_or_fail_exactly_as_the_reference(hex_data: str) -> None:
    _same_value_outcome(bytes.fromhex(hex_data))


@FAST
@given(HOT | OUTERS | SMALLS | PLAIN_VALUES)
def test_encode_is_byte_identical_to_the_reference_and_stays_so_once_cached(value: Any) -> None:
    expected = codec_reference.encode(value)
    assert codec.encode(value) == expected
    assert codec.encode(value) == expected  # a CODEC_CACHE class answers from its cache now
    assert codec_reference.encode(value) == expected  # and the cache changed nothing it holds


@FAST
@given(HOT)
def test_a_decoded_hot_object_encodes_to_its_own_bytes(value: Any) -> None:
    data = codec_reference.encode(value)
    decoded = codec.decode(type(value), data, SIZE)
    assert codec.encode(decoded) == data
    assert codec_reference.encode(decoded) == data


@FAST
@given(st.sampled_from([*HOT_TYPES, Envelope, Outer, Small]), st.binary(max_size=80))
def test_random_bytes_decode_or_fail_exactly_as_the_reference(cls: type, data: bytes) -> None:
    _same_outcome(cls, data)


@FAST
@given(st.data())
def test_mutated_encodings_decode_or_fail_exactly_as_the_reference(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from([*HOT_TYPES, Outer]))
    strategy = {Transaction: TRANSACTIONS, Proposal: PROPOSALS, Vote: VOTES, PrePrepare: PRE_PREPARES}.get(
        cls, {Checkpoint: CHECKPOINTS, CommitCertificate: CERTIFICATES, Outer: OUTERS}.get(cls)
    )
    assert strategy is not None
    _same_outcome(cls, data.draw(mutated(strategy.map(codec_reference.encode))))


EDGE_VALUES = st.sampled_from([True, False, None, 0, -1, 1, (1 << 64) - 1, -(1 << 64), "", "x", b"", [], {}])


def _replace_somewhere(value: Any, data: st.DataObject) -> Any:
    """``value`` with one item, at a random depth, replaced by a plain value (often an edge case)."""
    move = data.draw(st.integers(0, 3))  # 0: replace here; 1: add an unknown field; else go deeper
    if isinstance(value, dict) and value and move >= 2:
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: _replace_somewhere(value[key], data)}
    if isinstance(value, list) and value and move >= 2:
        index = data.draw(st.integers(0, len(value) - 1))
        return [*value[:index], _replace_somewhere(value[index], data), *value[index + 1 :]]
    if isinstance(value, dict) and move == 1:
        return {**value, data.draw(st.text(max_size=8)): data.draw(PLAIN_VALUES)}
    return data.draw(EDGE_VALUES | PLAIN_VALUES)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_values_of_the_wrong_shape_are_refused_exactly_as_the_reference(data: st.DataObject) -> None:
    value = data.draw(HOT | OUTERS)
    altered = _replace_somewhere(codec_reference.to_value(value), data)
    _same_outcome(type(value), codec_reference.encode(altered))


def test_every_message_real_validators_sent_decodes_as_the_reference_and_encodes_back() -> None:
    for _sender, data in corpus():
        envelope = codec.decode(Envelope, data, SIZE)
        assert envelope == codec_reference.decode(Envelope, data, SIZE)
        message = decode_message(data)
        assert encode_message(message) == data
        assert codec_reference.encode(Envelope(envelope.kind, message)) == data


@FAST
@given(VOTES | CHECKPOINTS)
def test_a_signing_payload_is_the_reference_encoding_without_the_signature(message: Vote | Checkpoint) -> None:
    assert signing_payload(message) == _reference_signing_payload(message)


def test_every_signed_message_real_validators_sent_signs_the_reference_payload() -> None:
    signed = [decode_message(data) for _sender, data in corpus()]
    signed = [message for message in signed if isinstance(message, Vote | Checkpoint | ViewChange | NewView)]
    assert {type(message) for message in signed} == {Vote, Checkpoint, ViewChange, NewView}
    for message in signed:
        assert signing_payload(message) == _reference_signing_payload(message)
