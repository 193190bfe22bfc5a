"""Transactions, blocks, the state machine and the consent contract."""

import dataclasses
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_harness import DictState
from p2pmed import codec
from p2pmed.crypto import SigningKey
from p2pmed.ledger.block import (
    GENESIS_PARENT_HASH,
    Block,
    check_block,
    decode_block,
    make_block,
    merkle_root,
)
from p2pmed.ledger.contracts import ALL_TX_TYPES
from p2pmed.ledger.contracts.consent import ConsentGrant
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.errors import BlockRejected, RejectReason, TxRejected
from p2pmed.ledger.machine import LEDGER_TIME_KEY, BlockExecution, Ledger, next_nonce
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay
from p2pmed.ledger.tx import Transaction, UnsignedTransaction, decode_transaction, sign_transaction
from strategies import mutated

FAST = settings(max_examples=200, deadline=None)
CHAIN = "test-chain"
PATIENT = SigningKey.from_seed(b"\x01" * 32)
DOCTOR = SigningKey.from_seed(b"\x02" * 32)
NURSE = SigningKey.from_seed(b"\x03" * 32)
PROPOSER = SigningKey.from_seed(b"\x04" * 32).public_key
NOW = 1_700_000_000_000
LATER = NOW + 86_400_000
LEDGER = Ledger(CHAIN, ALL_TX_TYPES)


def _grant(
    nonce: int = 0,
    key: SigningKey = PATIENT,
    grantee: bytes = DOCTOR.public_key,
    categories: tuple[str, ...] = ("laboratory",),
    purpose: str = "TREAT",
    expires_ms: int = LATER,
) -> Transaction:
    return sign_transaction(
        key, CHAIN, "consent.grant", nonce, ConsentGrant(key.public_key, grantee, categories, (purpose,), expires_ms)
    )


def _probe(nonce: int = 0, key: SigningKey = PATIENT, label: str = "p") -> Transaction:
    return sign_transaction(key, CHAIN, "load.probe", nonce, Probe(label))


def rule_changes(execution: BlockExecution) -> dict[str, bytes | None]:
    """What the block's transactions changed: every block also moves the ledger's clock."""
    return {key: value for key, value in execution.changes.items() if key != LEDGER_TIME_KEY}


def _execute(
    state: DictState,
    *txs: Transaction,
    time_ms: int = NOW,
    ledger: Ledger = LEDGER,
    verified: frozenset[bytes] = frozenset(),
) -> BlockExecution:
    block = make_block(CHAIN, 1, GENESIS_PARENT_HASH, txs, PROPOSER, time_ms)
    execution = ledger.execute_block(state, block, verified)
    assert [result.tx_id for result in execution.results] == [tx.id for tx in txs]
    state.apply(execution.changes)
    return execution


def _nonce_key(key: SigningKey) -> str:
    return "nonce/" + key.public_key.hex()


# --- transactions -------------------------------------------------------------


def test_tx_id_is_the_hash_of_the_encoding_and_stable_across_decode() -> None:
    tx = _grant()
    assert tx.id == hashlib.sha256(codec.encode(tx)).digest()
    decoded = decode_transaction(tx.encoded)
    assert decoded.id == tx.id
    assert decoded == tx and hash(decoded) == hash(tx)
    rebuilt = Transaction(
        decoded.type, decoded.chain_id, decoded.sender, decoded.nonce, decoded.body, decoded.signature
    )
    assert rebuilt.id == tx.id
    assert decode_transaction(rebuilt.encoded).id == tx.id


def test_tx_id_differs_for_any_different_field() -> None:
    ids = {_grant().id, _grant(nonce=1).id, _grant(key=NURSE).id, _grant(purpose="ETREAT").id}
    ids.add(sign_transaction(PATIENT, "other-chain", "consent.grant", 0, dataclasses.asdict(_grant_body())).id)
    assert len(ids) == 5


def _grant_body() -> ConsentGrant:
    return ConsentGrant(PATIENT.public_key, DOCTOR.public_key, ("laboratory",), ("TREAT",), LATER)


def test_sign_transaction_with_a_dataclass_body_stores_its_plain_map() -> None:
    body = ConsentGrant(PATIENT.public_key, DOCTOR.public_key, ("laboratory", "imaging"), ("TREAT",), LATER)
    tx = sign_transaction(PATIENT, CHAIN, "consent.grant", 3, body)
    assert tx.body == {
        "patient": PATIENT.public_key,
        "grantee": DOCTOR.public_key,
        "categories": ["laboratory", "imaging"],
        "purposes": ["TREAT"],
        "expires_ms": LATER,
    }
    assert tx.sender == PATIENT.public_key and tx.nonce == 3 and tx.chain_id == CHAIN
    assert tx.signature_is_valid()
    assert LEDGER.check(tx) == body
    assert LEDGER.check(decode_transaction(tx.encoded)) == body


def test_sign_transaction_with_a_plain_map_body() -> None:
    body = {
        "patient": PATIENT.public_key,
        "grantee": DOCTOR.public_key,
        "categories": ["laboratory"],
        "purposes": ["TREAT"],
        "expires_ms": LATER,
    }
    tx = sign_transaction(PATIENT, CHAIN, "consent.grant", 0, body)
    assert tx == _grant()
    assert LEDGER.check(tx) == _grant_body()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"type": ""}, "type must be"),
        ({"type": "t" * 65}, "type must be"),
        ({"chain_id": ""}, "chain_id must be"),
        ({"chain_id": "c" * 65}, "chain_id must be"),
        ({"sender": bytes(31)}, "sender must be a 32-byte public key"),
        ({"nonce": -1}, "nonce must be in"),
        ({"nonce": 1 << 63}, "nonce must be in"),
        ({"body": []}, "body must be a map"),
        ({"signature": bytes(63)}, "signature must be 64 bytes"),
    ],
)
def test_transaction_fields_are_validated(changes: dict[str, Any], message: str) -> None:
    fields = {"type": "t", "chain_id": "c", "sender": bytes(32), "nonce": 0, "body": {}, "signature": bytes(64)}
    Transaction(**fields)  # the base case is valid
    with pytest.raises(ValueError, match=message):
        Transaction(**{**fields, **changes})
    # ...and the same fault in received bytes is a malformed transaction.
    with pytest.raises(TxRejected) as info:
        decode_transaction(codec.encode({**fields, **changes}))
    assert info.value.reason is RejectReason.MALFORMED
    assert message in info.value.detail


def test_unsigned_transaction_has_the_same_checks() -> None:
    with pytest.raises(ValueError, match="body must be a map"):
        UnsignedTransaction("t", "c", bytes(32), 0, "body")


def test_check_rejects_a_transaction_for_another_chain() -> None:
    tx = sign_transaction(PATIENT, "other-chain", "consent.grant", 0, _grant_body())
    with pytest.raises(TxRejected) as info:
        LEDGER.check(tx)
    assert info.value.reason is RejectReason.WRONG_CHAIN
    assert "'other-chain'" in info.value.detail and repr(CHAIN) in info.value.detail


def test_check_rejects_an_unknown_type() -> None:
    tx = sign_transaction(PATIENT, CHAIN, "consent.sell", 0, {})
    with pytest.raises(TxRejected) as info:
        LEDGER.check(tx)
    assert info.value.reason is RejectReason.UNKNOWN_TYPE
    assert "'consent.sell'" in info.value.detail


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {
                "patient": PATIENT.public_key,
                "grantee": DOCTOR.public_key,
                "categories": ["laboratory"],
                "purposes": ["TREAT"],
            },
            "body: missing field 'expires_ms'",
        ),
        (
            {
                "patient": PATIENT.public_key,
                "grantee": DOCTOR.public_key,
                "categories": ["laboratory"],
                "purposes": ["TREAT"],
                "expires_ms": "soon",
            },
            "body.expires_ms: expected int, got str",
        ),
        (
            {
                "patient": PATIENT.public_key,
                "grantee": DOCTOR.public_key,
                "categories": "laboratory",
                "purposes": ["TREAT"],
                "expires_ms": LATER,
            },
            "body.categories: expected array, got str",
        ),
        (
            {"grantee": DOCTOR.public_key, "categories": [], "purposes": ["TREAT"], "expires_ms": LATER, "x": 1},
            "body: unknown field 'x'",
        ),
    ],
)
def test_check_rejects_a_body_that_does_not_match_the_type(body: dict[str, Any], detail: str) -> None:
    tx = sign_transaction(PATIENT, CHAIN, "consent.grant", 0, body)
    with pytest.raises(TxRejected) as info:
        LEDGER.check(tx)
    assert info.value.reason is RejectReason.BAD_BODY
    assert info.value.detail == detail


def test_check_rejects_a_bad_signature() -> None:
    tx = _grant()
    forged_sender = Transaction(tx.type, tx.chain_id, NURSE.public_key, tx.nonce, tx.body, tx.signature)
    changed_body = Transaction(
        tx.type, tx.chain_id, tx.sender, tx.nonce, {**tx.body, "purposes": ["HRESCH"]}, tx.signature
    )
    changed_nonce = Transaction(tx.type, tx.chain_id, tx.sender, 1, tx.body, tx.signature)
    zero_signature = Transaction(tx.type, tx.chain_id, tx.sender, tx.nonce, tx.body, bytes(64))
    for bad in (forged_sender, changed_body, changed_nonce, zero_signature):
        with pytest.raises(TxRejected) as info:
            LEDGER.check(bad)
        assert info.value.reason is RejectReason.BAD_SIGNATURE
        assert "signature does not verify" in info.value.detail


def test_decode_transaction_rejects_input_over_the_size_limit() -> None:
    with pytest.raises(TxRejected) as info:
        decode_transaction(bytes(codec.TX_SIZE_MAX + 1))
    assert info.value.reason is RejectReason.TOO_BIG
    assert info.value.detail == f"{codec.TX_SIZE_MAX + 1} bytes, limit {codec.TX_SIZE_MAX}"


def test_decode_transaction_takes_a_transaction_up_to_the_size_limit_and_no_more() -> None:
    tx = sign_transaction(PATIENT, CHAIN, "t", 0, {"blob": b""})
    overhead = len(tx.encoded) + 4  # the blob header grows from 1 byte to 5 for ~1 MiB
    fits = sign_transaction(PATIENT, CHAIN, "t", 0, {"blob": bytes(codec.TX_SIZE_MAX - overhead)})
    assert len(fits.encoded) == codec.TX_SIZE_MAX
    assert decode_transaction(fits.encoded).id == fits.id
    too_big = sign_transaction(PATIENT, CHAIN, "t", 0, {"blob": bytes(codec.TX_SIZE_MAX - overhead + 1)})
    with pytest.raises(TxRejected) as info:
        decode_transaction(too_big.encoded)
    assert info.value.reason is RejectReason.TOO_BIG


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"\xff\x00", "malformed CBOR"),
        (codec.encode({"a": 1}), "Transaction: unknown field 'a'"),
        (codec.encode([1]), "Transaction: expected map, got array"),
        (_grant().encoded + b"\x00", "trailing bytes"),
    ],
)
def test_decode_transaction_rejects_malformed_input(data: bytes, detail: str) -> None:
    with pytest.raises(TxRejected) as info:
        decode_transaction(data)
    assert info.value.reason is RejectReason.MALFORMED
    assert detail in info.value.detail


def test_decode_transaction_rejects_a_missing_field() -> None:
    value = codec.decode_value(_grant().encoded, codec.TX_SIZE_MAX)
    del value["signature"]
    with pytest.raises(TxRejected) as info:
        decode_transaction(codec.encode(value))
    assert info.value.reason is RejectReason.MALFORMED
    assert info.value.detail == "Transaction: missing field 'signature'"


# --- Merkle root ----------------------------------------------------------------


def _reference_root(ids: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written recursively from the definition."""
    if not ids:
        return hashlib.sha256(b"").digest()
    if len(ids) == 1:
        return hashlib.sha256(b"\x00" + ids[0]).digest()
    k = 1
    while k * 2 < len(ids):
        k *= 2  # the largest power of two smaller than n
    return hashlib.sha256(b"\x01" + _reference_root(ids[:k]) + _reference_root(ids[k:])).digest()


def test_merkle_root_matches_the_rfc_6962_definition_for_0_to_40_leaves() -> None:
    ids = [hashlib.sha256(bytes([i])).digest() for i in range(41)]
    roots = set()
    for n in range(41):
        root = merkle_root(ids[:n])
        assert root == _reference_root(ids[:n]), n
        roots.add(root)
    assert len(roots) == 41


@FAST
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=40))
def test_merkle_root_matches_the_reference_for_random_ids(ids: list[bytes]) -> None:
    assert merkle_root(ids) == _reference_root(ids)


def test_merkle_root_of_no_and_one_leaf() -> None:
    assert merkle_root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    tx_id = bytes(range(32))
    assert merkle_root([tx_id]) == hashlib.sha256(b"\x00" + tx_id).digest()
    assert merkle_root([tx_id]) != tx_id


def test_merkle_root_depends_on_order() -> None:
    a, b, c = (hashlib.sha256(x).digest() for x in (b"a", b"b", b"c"))
    assert merkle_root([a, b, c]) != merkle_root([b, a, c])
    assert merkle_root([a, b, c]) != merkle_root([a, c, b])


# --- blocks ---------------------------------------------------------------------


def _txs() -> tuple[Transaction, ...]:
    return (_grant(0), _grant(1, categories=("imaging",)), _grant(0, key=NURSE))


def _block(txs: tuple[Transaction, ...] | None = None, height: int = 2, previous: bytes = b"\x11" * 32) -> Block:
    return make_block(CHAIN, height, previous, _txs() if txs is None else txs, PROPOSER, NOW)


def test_well_formed_block_passes_check_block() -> None:
    block = _block()
    check_block(block, CHAIN, 2, b"\x11" * 32)
    assert block.header.tx_count == 3
    assert block.header.tx_root == merkle_root([tx.id for tx in _txs()])
    check_block(make_block(CHAIN, 1, GENESIS_PARENT_HASH, (), PROPOSER, 0), CHAIN, 1, GENESIS_PARENT_HASH)


def test_check_block_rejects_another_chain() -> None:
    with pytest.raises(BlockRejected, match=f"block is for chain '{CHAIN}', this is 'other'"):
        check_block(_block(), "other", 2, b"\x11" * 32)


def test_check_block_rejects_the_wrong_height() -> None:
    with pytest.raises(BlockRejected, match="block height 2, expected 3"):
        check_block(_block(), CHAIN, 3, b"\x11" * 32)


def test_check_block_rejects_the_wrong_previous_hash() -> None:
    with pytest.raises(BlockRejected, match="does not extend the current head"):
        check_block(_block(), CHAIN, 2, b"\x12" * 32)


def test_check_block_rejects_a_tx_root_mismatch() -> None:
    block = _block()
    wrong_root = Block(dataclasses.replace(block.header, tx_root=bytes(32)), block.txs)
    reordered = Block(block.header, (block.txs[1], block.txs[0], block.txs[2]))
    swapped = Block(block.header, (block.txs[0], block.txs[1], _grant(1, key=NURSE)))
    for bad in (wrong_root, reordered, swapped):
        with pytest.raises(BlockRejected, match="tx_root does not match"):
            check_block(bad, CHAIN, 2, b"\x11" * 32)


def test_check_block_rejects_a_tx_count_mismatch() -> None:
    block = _block()
    with pytest.raises(BlockRejected, match="header says 3 txs, block carries 2"):
        check_block(Block(block.header, block.txs[:2]), CHAIN, 2, b"\x11" * 32)
    with pytest.raises(BlockRejected, match="header says 2 txs, block carries 3"):
        check_block(Block(dataclasses.replace(block.header, tx_count=2), block.txs), CHAIN, 2, b"\x11" * 32)


def test_check_block_rejects_duplicate_transactions() -> None:
    tx = _grant()
    block = _block((tx, _grant(1), tx))
    assert block.header.tx_root == merkle_root([t.id for t in block.txs])
    with pytest.raises(BlockRejected, match="same transaction twice"):
        check_block(block, CHAIN, 2, b"\x11" * 32)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"height": 0}, "height must be >= 1"),
        ({"chain_id": ""}, "chain_id must be"),
        ({"previous_hash": bytes(31)}, "must be 32 bytes"),
        ({"tx_root": bytes(33)}, "must be 32 bytes"),
        ({"tx_count": -1}, "tx_count must be in"),
        ({"tx_count": 10_001}, "tx_count must be in"),
        ({"proposer": bytes(31)}, "proposer must be"),
        ({"time_ms": -1}, "time_ms must be >= 0"),
    ],
)
def test_block_header_fields_are_validated(changes: dict[str, Any], message: str) -> None:
    header = _block().header
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(header, **changes)
    value = codec.to_value(Block(header, ()))
    value["header"].update(changes)
    with pytest.raises(BlockRejected, match=message):
        decode_block(codec.encode(value))


def test_block_round_trips_through_the_codec_with_the_same_hash() -> None:
    for block in (_block(), _block(())):
        data = codec.encode(block)
        decoded = decode_block(data)
        assert decoded == block
        assert decoded.hash == block.hash == hashlib.sha256(codec.encode(block.header)).digest()
        assert [tx.id for tx in decoded.txs] == [tx.id for tx in block.txs]
        assert codec.encode(decoded) == data
        check_block(decoded, CHAIN, 2, b"\x11" * 32)


def test_block_hash_covers_every_header_field() -> None:
    header = _block().header
    others = [
        dataclasses.replace(header, chain_id="x"),
        dataclasses.replace(header, height=3),
        dataclasses.replace(header, previous_hash=bytes(32)),
        dataclasses.replace(header, tx_root=bytes(32)),
        dataclasses.replace(header, tx_count=4),
        dataclasses.replace(header, proposer=bytes(32)),
        dataclasses.replace(header, time_ms=NOW + 1),
    ]
    assert len({header.hash, *(other.hash for other in others)}) == 8


def test_decode_block_rejects_malformed_input() -> None:
    with pytest.raises(BlockRejected, match="malformed block"):
        decode_block(b"\x00")
    value = codec.to_value(_block())
    value["txs"][1]["signature"] = b"short"
    with pytest.raises(BlockRejected, match=r"Block\.txs\[1\]: signature must be 64 bytes"):
        decode_block(codec.encode(value))
    with pytest.raises(BlockRejected, match="trailing bytes"):
        decode_block(codec.encode(_block()) + b"\x00")


# --- fuzzing the transaction and block decoders -----------------------------------

BODY_VALUES = (
    st.none() | st.booleans() | st.integers(-(1 << 64), (1 << 64) - 1) | st.text(max_size=8) | st.binary(max_size=8)
)
BODIES = st.dictionaries(st.text(max_size=6), BODY_VALUES | st.lists(BODY_VALUES, max_size=3), max_size=4)
TXS = st.builds(
    lambda key, chain, tx_type, nonce, body: sign_transaction(key, chain, tx_type, nonce, body),
    st.sampled_from([PATIENT, DOCTOR]),
    st.sampled_from([CHAIN, "c"]),
    st.sampled_from(["consent.grant", "t"]),
    st.integers(0, (1 << 63) - 1),
    BODIES,
)
BLOCKS = st.builds(
    lambda txs, height, time_ms: make_block(CHAIN, height, b"\x22" * 32, tuple(txs), PROPOSER, time_ms),
    st.lists(TXS, max_size=3, unique_by=lambda tx: tx.id),
    st.integers(1, 1 << 40),
    st.integers(0, 1 << 50),
)


def _tx_decodes_strictly(data: bytes) -> None:
    try:
        tx = decode_transaction(data)
    except TxRejected as error:
        assert error.reason in (RejectReason.MALFORMED, RejectReason.TOO_BIG)
        return
    assert isinstance(tx, Transaction)
    assert tx.encoded == data == codec.encode(tx)
    assert tx.id == hashlib.sha256(data).digest()


def _block_decodes_strictly(data: bytes) -> None:
    try:
        block = decode_block(data)
    except BlockRejected:
        return
    assert isinstance(block, Block)
    assert codec.encode(block) == data
    assert all(isinstance(tx, Transaction) for tx in block.txs)


@FAST
@given(TXS)
def test_signed_transactions_decode_to_themselves(tx: Transaction) -> None:
    decoded = decode_transaction(tx.encoded)
    assert decoded == tx and decoded.id == tx.id and decoded.signature_is_valid()


@FAST
@given(st.binary(max_size=128))
def test_decode_transaction_of_random_bytes_only_raises_tx_rejected(data: bytes) -> None:
    _tx_decodes_strictly(data)


@FAST
@given(mutated(TXS.map(lambda tx: tx.encoded)))
def test_decode_transaction_of_mutated_encodings_only_raises_tx_rejected(data: bytes) -> None:
    _tx_decodes_strictly(data)


@FAST
@given(st.binary(max_size=128))
def test_decode_block_of_random_bytes_only_raises_block_rejected(data: bytes) -> None:
    _block_decodes_strictly(data)


@FAST
@given(mutated(BLOCKS.map(codec.encode)))
def test_decode_block_of_mutated_encodings_only_raises_block_rejected(data: bytes) -> None:
    _block_decodes_strictly(data)


@FAST
@given(BLOCKS)
def test_blocks_round_trip_with_their_hash(block: Block) -> None:
    decoded = decode_block(codec.encode(block))
    assert decoded.hash == block.hash
    check_block(decoded, CHAIN, block.height, b"\x22" * 32)


# --- executing blocks: nonces ------------------------------------------------------


def test_sequential_nonces_are_accepted_and_counted() -> None:
    state = DictState()
    execution = _execute(state, _probe(0), _probe(1, label="imaging"), _probe(0, key=NURSE))
    assert all(result.ok for result in execution.results)
    assert next_nonce(state, PATIENT.public_key) == 2
    assert next_nonce(state, NURSE.public_key) == 1
    assert next_nonce(state, DOCTOR.public_key) == 0
    execution = _execute(state, _probe(2, label="genomics"))
    assert execution.results[0].ok
    assert next_nonce(state, PATIENT.public_key) == 3


def test_a_used_nonce_is_refused_as_stale_and_changes_nothing() -> None:
    state = DictState()
    _execute(state, _probe(0))
    before = dict(state.data)
    replay = _probe(0, label="imaging")
    execution = _execute(state, replay)
    result = execution.results[0]
    assert result.reason is RejectReason.STALE_NONCE and not result.ok
    assert result.detail == "nonce 0 already used; next is 1"
    assert rule_changes(execution) == {}
    assert state.data == before


def test_a_replayed_transaction_in_the_same_block_is_stale() -> None:
    state = DictState()
    tx = _probe(0)
    execution = _execute(state, tx, tx)
    assert execution.results[0].ok
    assert execution.results[1].reason is RejectReason.STALE_NONCE
    assert next_nonce(state, PATIENT.public_key) == 1


def test_a_nonce_ahead_of_the_next_is_refused_as_future_and_changes_nothing() -> None:
    state = DictState()
    execution = _execute(state, _probe(5))
    result = execution.results[0]
    assert result.reason is RejectReason.FUTURE_NONCE
    assert result.detail == "nonce 5 is ahead; next is 0"
    assert rule_changes(execution) == {}
    assert next_nonce(state, PATIENT.public_key) == 0


def test_a_nonce_gap_is_filled_within_the_block_in_order() -> None:
    state = DictState()
    execution = _execute(state, _probe(1, label="imaging"), _probe(0))
    assert [result.reason for result in execution.results] == [RejectReason.FUTURE_NONCE, None]
    assert next_nonce(state, PATIENT.public_key) == 1


def test_a_rule_refused_transaction_uses_its_nonce_but_changes_nothing_else() -> None:
    state = DictState()
    execution = _execute(state, _probe(0, label="x" * 65))
    assert execution.results[0].reason is RejectReason.INVALID
    assert set(rule_changes(execution)) == {_nonce_key(PATIENT)}
    assert next_nonce(state, PATIENT.public_key) == 1
    again = _execute(state, _probe(0))
    assert again.results[0].reason is RejectReason.STALE_NONCE


@dataclasses.dataclass(frozen=True)
class Note:
    text: str


def _write_then_refuse(state: StateOverlay, context: TxContext, body: Note) -> None:
    state.put("note/" + context.sender.hex(), body)
    if body.text == "refuse":
        raise TxRejected(RejectReason.NOT_AUTHORISED, "refused after writing")


def test_a_transaction_refused_halfway_through_its_rule_leaves_no_writes() -> None:
    ledger = Ledger(CHAIN, [*ALL_TX_TYPES, TxType("test.note", Note, _write_then_refuse)])
    state = DictState()
    ok = sign_transaction(PATIENT, CHAIN, "test.note", 0, Note("kept"))
    refused = sign_transaction(PATIENT, CHAIN, "test.note", 1, Note("refuse"))
    execution = _execute(state, ok, refused, ledger=ledger)
    assert execution.results[0].ok
    assert execution.results[1].reason is RejectReason.NOT_AUTHORISED
    assert execution.results[1].detail == "refused after writing"
    assert StateOverlay(state).get(Note, "note/" + PATIENT.public_key.hex()) == Note("kept")
    assert next_nonce(state, PATIENT.public_key) == 2


def test_execute_block_does_not_write_to_the_state_it_reads() -> None:
    state = DictState()
    block = make_block(CHAIN, 1, GENESIS_PARENT_HASH, (_probe(0),), PROPOSER, NOW)
    execution = LEDGER.execute_block(state, block)
    assert state.data == {}
    assert execution.changes and list(execution.changes) == sorted(execution.changes)


@pytest.mark.parametrize(
    ("make_tx", "reason"),
    [
        (lambda: sign_transaction(PATIENT, "other-chain", "consent.grant", 0, _grant_body()), RejectReason.WRONG_CHAIN),
        (lambda: sign_transaction(PATIENT, CHAIN, "consent.sell", 0, {}), RejectReason.UNKNOWN_TYPE),
        (lambda: sign_transaction(PATIENT, CHAIN, "consent.grant", 0, {"grantee": b""}), RejectReason.BAD_BODY),
        (
            lambda: Transaction(
                "consent.grant", CHAIN, PATIENT.public_key, 0, codec.to_value(_grant_body()), bytes(64)
            ),
            RejectReason.BAD_SIGNATURE,
        ),
    ],
)
def test_a_transaction_failing_the_stateless_check_does_not_use_its_nonce(make_tx: Any, reason: RejectReason) -> None:
    state = DictState()
    execution = _execute(state, make_tx())
    assert execution.results[0].reason is reason
    assert rule_changes(execution) == {}


def test_verified_tx_ids_skip_the_signature_check_but_not_the_chain_check() -> None:
    unsigned = Transaction("load.probe", CHAIN, PATIENT.public_key, 0, {"label": "p"}, bytes(64))
    state = DictState()
    assert _execute(state, unsigned, verified=frozenset({unsigned.id})).results[0].ok
    foreign = sign_transaction(PATIENT, "other-chain", "load.probe", 0, Probe("p"))
    execution = _execute(DictState(), foreign, verified=frozenset({foreign.id}))
    assert execution.results[0].reason is RejectReason.WRONG_CHAIN
