"""The SQLite store: blocks, transactions and state in, the same out; bad files refused untouched.

Blocks come from ``store_crash_writer.chain_blocks`` (deterministic keys and
times), executed by the real ledger, so what is stored is what a node stores.
State is written and deleted by the writer's test-only note rules.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import store_crash_writer as writer
from p2pmed.crypto import SigningKey
from p2pmed.ledger.block import GENESIS_PARENT_HASH, Block, make_block
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.errors import BlockRejected, RejectReason
from p2pmed.ledger.machine import LEDGER_TIME_KEY, Ledger, next_nonce
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.store import SCHEMA_VERSION, Store, StoreError
from p2pmed.store import sqlite as store_sqlite

_WRITER_PATH = Path(__file__).with_name("store_crash_writer.py")

CHAIN = "store-test"
TIME_MS = writer.BLOCK_TIME_MS_START
PATIENT = writer.seeded_key("alice")
HOSPITAL = writer.seeded_key("hospital")
LAB = writer.seeded_key("lab")
PROPOSER = writer.PROPOSER
LEDGER = Ledger(CHAIN, writer.TX_TYPES)


# -- helpers ------------------------------------------------------------------


def note(key: SigningKey, nonce: int, *topics: str, text: str = "note") -> Transaction:
    return sign_transaction(key, CHAIN, "test.note.write", nonce, writer.NoteWrite(topics, text))


def erase(key: SigningKey, nonce: int, *topics: str) -> Transaction:
    return sign_transaction(key, CHAIN, "test.note.erase", nonce, writer.NoteErase(topics))


def probe(key: SigningKey, nonce: int, label: str) -> Transaction:
    return sign_transaction(key, CHAIN, "load.probe", nonce, Probe(label))


def next_block(store: Store, *txs: Transaction, chain_id: str = CHAIN) -> Block:
    height, head_hash = store.head()
    parent = store.commitment(height)
    assert parent is not None
    time_ms = TIME_MS + (height + 1) * 1000
    return make_block(chain_id, height + 1, head_hash, txs, PROPOSER.public_key, time_ms, parent)


def append(store: Store, *txs: Transaction, certificate: bytes | None = None) -> Block:
    block = next_block(store, *txs)
    store.append_block(block, LEDGER.execute_block(store, block), certificate=certificate)
    return block


def snapshot(store: Store) -> tuple[object, ...]:
    """Everything the store holds, for before/after comparisons."""
    db = store._db
    return (
        store.head(),
        db.execute("SELECT * FROM blocks ORDER BY height").fetchall(),
        db.execute("SELECT * FROM transactions ORDER BY height, position").fetchall(),
        list(store.state_items("")),
        db.execute("SELECT * FROM consensus ORDER BY key").fetchall(),
    )


def note_key(key: SigningKey, topic: str) -> str:
    return writer.note_key(key.public_key, topic)


def nonce_key(key: SigningKey) -> str:
    return f"nonce/{key.public_key.hex()}"


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "node.sqlite3", CHAIN) as opened:
        yield opened


# -- a fresh store ------------------------------------------------------------


def test_fresh_store_is_empty_with_the_genesis_head(store: Store) -> None:
    assert store.head() == (0, GENESIS_PARENT_HASH)
    assert store.block(1) is None
    assert store.certificate(1) is None
    assert list(store.state_items("")) == []


def test_fresh_store_runs_wal_with_full_sync_and_the_current_schema(store: Store) -> None:
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store._db.execute("PRAGMA application_id").fetchone()[0] == int.from_bytes(b"p2md", "big")


# -- blocks, transactions, state ----------------------------------------------


def test_appended_blocks_advance_the_head_and_read_back_by_height_and_hash(store: Store) -> None:
    blocks = writer.chain_blocks(CHAIN, 3)
    for block in blocks:
        store.append_block(block, LEDGER.execute_block(store, block))
        assert store.head() == (block.height, block.hash)

    for block in blocks:
        assert store.block(block.height) == block
        assert store.block_by_hash(block.hash) == block
        assert [tx.id for tx in store.block(block.height).txs] == [tx.id for tx in block.txs]
    assert store.block(4) is None
    assert store.block_by_hash(bytes(32)) is None


def test_transactions_are_found_by_id_with_their_place_and_outcome(store: Store) -> None:
    written = note(PATIENT, 0, "laboratory")
    refused = probe(PATIENT, 1, "x" * 65)  # over the label limit: refused by its rule, nonce used
    ahead = note(LAB, 5, "imaging")  # the lab's next nonce is 1
    append(store, note(LAB, 0, "genomics"))
    append(store, written, refused, ahead)

    stored = store.transaction(written.id)
    assert stored is not None
    assert (stored.tx, stored.height, stored.position, stored.reject_reason, stored.reject_detail) == (
        written,
        2,
        0,
        None,
        "",
    )

    stored = store.transaction(refused.id)
    assert stored is not None
    assert (stored.tx, stored.height, stored.position, stored.reject_reason) == (refused, 2, 1, RejectReason.INVALID)
    assert stored.reject_detail == "a probe label has at most 64 characters"

    stored = store.transaction(ahead.id)
    assert stored is not None
    assert (stored.height, stored.position, stored.reject_reason) == (2, 2, RejectReason.FUTURE_NONCE)
    assert "ahead" in stored.reject_detail

    assert store.transaction(bytes(32)) is None
    assert next_nonce(store, PATIENT.public_key) == 2  # the refused probe used up nonce 1
    assert next_nonce(store, LAB.public_key) == 1  # the future nonce did not


def test_transactions_by_sender_come_in_nonce_order(store: Store) -> None:
    # Block 2 lists the patient's transactions out of nonce order: 2 is ordered
    # before 1, so it is refused as ahead; the later block carries it again.
    append(store, note(PATIENT, 0, "laboratory"), note(LAB, 0, "imaging"))
    early = note(PATIENT, 2, "imaging")
    append(store, early, note(PATIENT, 1, "genomics"))
    append(store, note(PATIENT, 2, "genomics"), note(PATIENT, 3, "condition"))

    listed = store.transactions_by_sender(PATIENT.public_key)
    assert [(item.tx.nonce, item.height, item.position) for item in listed] == [
        (0, 1, 0),
        (1, 2, 1),
        (2, 2, 0),
        (2, 3, 0),
        (3, 3, 1),
    ]
    assert [item.reject_reason for item in listed] == [None, None, RejectReason.FUTURE_NONCE, None, None]
    assert all(item.tx.sender == PATIENT.public_key for item in listed)
    assert [item.tx.nonce for item in store.transactions_by_sender(LAB.public_key)] == [0]
    assert store.transactions_by_sender(HOSPITAL.public_key) == []


def test_state_follows_notes_and_an_erase_deletes_its_keys(store: Store) -> None:
    append(
        store, note(PATIENT, 0, "laboratory", "imaging", "genomics", text="results due"), note(LAB, 0, "vital-signs")
    )
    patient_prefix = f"note/{PATIENT.public_key.hex()}/"
    assert [key for key, _ in store.state_items(patient_prefix)] == sorted(
        note_key(PATIENT, topic) for topic in ("laboratory", "imaging", "genomics")
    )
    assert writer.read_note(store, PATIENT.public_key, "imaging") == "results due"

    append(store, erase(PATIENT, 1, "imaging", "genomics"))

    assert store.state_get(note_key(PATIENT, "imaging")) is None
    assert store.state_get(note_key(PATIENT, "genomics")) is None
    assert store.state_get(note_key(PATIENT, "laboratory")) is not None
    assert [key for key, _ in store.state_items(patient_prefix)] == [note_key(PATIENT, "laboratory")]
    assert writer.read_note(store, PATIENT.public_key, "imaging") is None
    assert next_nonce(store, PATIENT.public_key) == 2


def test_state_items_lists_only_keys_under_the_prefix_in_key_order(store: Store) -> None:
    append(store, note(PATIENT, 0, "laboratory"), note(LAB, 0, "imaging"))
    keys = [key for key, _ in store.state_items("")]
    assert keys == sorted(keys)
    assert sorted(keys) == sorted(
        [note_key(PATIENT, "laboratory"), note_key(LAB, "imaging"), nonce_key(PATIENT), nonce_key(LAB), LEDGER_TIME_KEY]
    )
    assert [key for key, _ in store.state_items("nonce/")] == sorted([nonce_key(PATIENT), nonce_key(LAB)])
    assert dict(store.state_items("nonce/"))[nonce_key(LAB)] == store.state_get(nonce_key(LAB))
    assert list(store.state_items("note/ff")) == []


def test_certificate_is_stored_with_the_block_or_set_later(store: Store) -> None:
    append(store, note(PATIENT, 0, "laboratory"), certificate=b"commit-certificate-1")
    append(store, note(PATIENT, 1, "imaging"))
    assert store.certificate(1) == b"commit-certificate-1"
    assert store.certificate(2) is None

    store.set_certificate(2, b"commit-certificate-2")
    store.set_certificate(1, b"commit-certificate-1b")

    assert store.certificate(2) == b"commit-certificate-2"
    assert store.certificate(1) == b"commit-certificate-1b"


def test_set_certificate_on_a_missing_height_raises_and_changes_nothing(store: Store) -> None:
    append(store, note(PATIENT, 0, "laboratory"))
    before = snapshot(store)
    with pytest.raises(StoreError, match="no block at height 2"):
        store.set_certificate(2, b"certificate")
    assert snapshot(store) == before
    assert not store._db.in_transaction


# -- blocks that do not extend the head ---------------------------------------


def _wrong_height(store: Store) -> Block:
    height, head_hash = store.head()
    return make_block(CHAIN, height + 2, head_hash, (note(PATIENT, 1, "imaging"),), PROPOSER.public_key, TIME_MS)


def _wrong_previous_hash(store: Store) -> Block:
    height, _ = store.head()
    previous = store.block(height - 1).hash  # the parent's parent: a fork
    return make_block(CHAIN, height + 1, previous, (note(PATIENT, 1, "imaging"),), PROPOSER.public_key, TIME_MS)


def _other_chain(store: Store) -> Block:
    return next_block(store, note(PATIENT, 1, "imaging"), chain_id="another-chain")


def _tampered_transactions(store: Store) -> Block:
    block = next_block(store, note(PATIENT, 1, "imaging"))
    return Block(block.header, (note(PATIENT, 1, "genomics"),))


@pytest.mark.parametrize(
    ("make_bad_block", "message"),
    [
        (_wrong_height, "height 4, expected 3"),
        (_wrong_previous_hash, "does not extend the current head"),
        (_other_chain, "another-chain"),
        (_tampered_transactions, "tx_root"),
    ],
    ids=["wrong-height", "wrong-previous-hash", "other-chain", "tampered-transactions"],
)
def test_append_refuses_a_block_that_does_not_extend_the_head_and_changes_nothing(
    store: Store, make_bad_block, message: str
) -> None:
    append(store, note(PATIENT, 0, "laboratory"), certificate=b"c1")
    append(store, note(LAB, 0, "imaging"), certificate=b"c2")
    before = snapshot(store)
    bad = make_bad_block(store)
    execution = LEDGER.execute_block(store, bad)

    with pytest.raises(BlockRejected, match=message):
        store.append_block(bad, execution, certificate=b"bad")

    assert snapshot(store) == before
    assert not store._db.in_transaction
    good = append(store, note(PATIENT, 1, "imaging"))
    assert store.head() == (3, good.hash)


def test_a_block_replaying_a_stored_transaction_is_stored_with_its_refusal(store: Store) -> None:
    # check_block accepts it (ids are unique within the block) and the ledger
    # refuses the replay as stale-nonce; the decided block must still be storable.
    original = note(PATIENT, 0, "laboratory")
    append(store, original)
    state_before = list(store.state_items(""))
    replay_block = append(store, original, note(PATIENT, 1, "imaging"))

    assert store.head() == (2, replay_block.hash)
    assert store.block(2) == replay_block
    stored = store.transaction(original.id)
    assert stored is not None and (stored.height, stored.position, stored.reject_reason) == (1, 0, None)
    listed = store.transactions_by_sender(PATIENT.public_key)
    assert [(item.height, item.position, item.reject_reason) for item in listed] == [
        (1, 0, None),
        (2, 0, RejectReason.STALE_NONCE),
        (2, 1, None),
    ]
    assert dict(state_before)[note_key(PATIENT, "laboratory")] == store.state_get(note_key(PATIENT, "laboratory"))


def test_a_transaction_refused_early_and_applied_later_is_found_where_it_applied(store: Store) -> None:
    early = note(PATIENT, 1, "imaging")
    append(store, early)  # refused: the patient's next nonce is 0
    append(store, note(PATIENT, 0, "laboratory"), early)

    stored = store.transaction(early.id)
    assert stored is not None and (stored.height, stored.position, stored.reject_reason) == (2, 1, None)
    assert [(item.height, item.reject_reason) for item in store.transactions_by_sender(PATIENT.public_key)] == [
        (2, None),
        (1, RejectReason.FUTURE_NONCE),
        (2, None),
    ]


# -- reopening ----------------------------------------------------------------


def test_reopening_gives_the_same_head_blocks_and_state(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    blocks = writer.chain_blocks(CHAIN, 3)
    with Store.open(path, CHAIN) as store:
        writer.append_blocks(store, LEDGER, blocks)
        store.set_certificate(3, b"certificate-3")
        before = snapshot(store)

    with Store.open(path, CHAIN) as store:
        assert snapshot(store) == before
        assert store.head() == (3, blocks[-1].hash)
        assert store.block(2) == blocks[1]
        assert store.certificate(3) == b"certificate-3"
        append(store, note(PATIENT, 0, "laboratory"))
        assert store.head()[0] == 4


def failing_write(*_args: object) -> None:
    raise sqlite3.OperationalError("disk I/O error")


def test_the_tree_kept_in_memory_follows_only_what_the_file_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an append that failed, the store's cached upper tree levels are still the file's:
    it goes on to the roots and proofs of a store that never failed, and of itself reopened."""
    path, key = tmp_path / "node.sqlite3", note_key(PATIENT, "imaging")
    with Store.open(path, CHAIN) as store, Store.open(tmp_path / "other.sqlite3", CHAIN) as other:
        for each in (store, other):
            append(each, note(PATIENT, 0, "laboratory", "imaging"), note(HOSPITAL, 0, "triage"))
        failed = next_block(store, note(HOSPITAL, 1, "never"))
        with monkeypatch.context() as patch:
            patch.setattr(store_sqlite, "_insert_commitment", failing_write)
            with pytest.raises(sqlite3.OperationalError):
                store.append_block(failed, LEDGER.execute_block(store, failed))
        for each in (store, other):
            append(each, erase(PATIENT, 1, "imaging"), note(LAB, 0, "pathology"))
        with Store.open(path, CHAIN) as cold:
            for height in (1, 2):
                assert store.commitment(height) == other.commitment(height) == cold.commitment(height)
                assert store.state_path(key, height) == other.state_path(key, height) == cold.state_path(key, height)


def test_a_store_is_bound_to_its_genesis(tmp_path: Path) -> None:
    path, genesis_a, genesis_b = tmp_path / "node.sqlite3", b"\xaa" * 32, b"\xbb" * 32
    with Store.open(path, "chain-a", genesis_a) as store:
        assert store.head() == (0, genesis_a)  # block 1 must name the genesis as its parent
    with pytest.raises(StoreError, match=r"genesis hash aaaa.*not genesis bbbb.*empty data directory"):
        Store.open(path, "chain-a", genesis_b)
    with Store.open(path, "chain-a", genesis_a) as store:
        assert store.head() == (0, genesis_a)


def test_opening_with_another_chain_id_names_both_chains(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    with Store.open(path, "chain-a") as store:
        store.consensus_put({"view": b"\x01"})
    before = path.read_bytes()

    with pytest.raises(StoreError) as raised:
        Store.open(path, "chain-b")

    assert "'chain-a'" in str(raised.value) and "'chain-b'" in str(raised.value)
    assert str(path) in str(raised.value)
    assert path.read_bytes() == before
    with Store.open(path, "chain-a") as store:
        assert store.consensus_get("view") == b"\x01"


def test_a_version_1_store_is_migrated_and_takes_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "node.sqlite3"
    with monkeypatch.context() as patch:
        patch.setattr(store_sqlite, "MIGRATIONS", store_sqlite.MIGRATIONS[:1])
        patch.setattr(store_sqlite, "SCHEMA_VERSION", 1)
        patch.setattr(store_sqlite, "_commit_genesis_state", lambda *_args: None)
        with Store.open(path, CHAIN) as store:
            assert store._db.execute("PRAGMA user_version").fetchone()[0] == 1

    blocks = writer.chain_blocks(CHAIN, 2)
    with Store.open(path, CHAIN) as store:
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        writer.append_blocks(store, LEDGER, blocks)
        assert store.block(2) == blocks[1]
        assert store._db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert store._db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_a_store_with_blocks_but_no_state_roots_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    with Store.open(path, CHAIN) as store:
        writer.append_blocks(store, LEDGER, writer.chain_blocks(CHAIN, 1))
        store._db.execute("DELETE FROM state_commitments")
    with pytest.raises(StoreError, match="without state roots; start this node from an empty data directory"):
        Store.open(path, CHAIN)


# -- files that are not (intact, current) p2pmed stores -----------------------


def _assert_refused_untouched(path: Path, *fragments: str) -> str:
    before = path.read_bytes()
    with pytest.raises(StoreError) as raised:
        Store.open(path, CHAIN)
    message = str(raised.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert path.read_bytes() == before
    return message


def test_a_file_of_random_bytes_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "random.sqlite3"
    path.write_bytes(os.urandom(64 * 1024))
    _assert_refused_untouched(path, "not a p2pmed store or corrupt", "left untouched")


def test_a_text_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("patient notes, not a database\n" * 200)
    _assert_refused_untouched(path, "not a p2pmed store or corrupt", "left untouched")


def test_a_sqlite_database_of_another_application_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE appointments (id INTEGER PRIMARY KEY, patient TEXT, at TEXT)")
    other.execute("INSERT INTO appointments (patient, at) VALUES ('alice', '2026-01-02T09:00')")
    other.commit()
    other.close()

    _assert_refused_untouched(path, "belongs to another application", "left untouched")

    other = sqlite3.connect(path)
    assert other.execute("SELECT patient FROM appointments").fetchall() == [("alice",)]
    assert other.execute("SELECT name FROM sqlite_schema").fetchall() == [("appointments",)]
    other.close()


def test_a_store_from_a_newer_p2pmed_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    with Store.open(path, CHAIN) as store:
        append(store, note(PATIENT, 0, "laboratory"))
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()

    message = _assert_refused_untouched(path, f"schema version {SCHEMA_VERSION + 1}", "newer", "upgrade p2pmed")
    assert f"({SCHEMA_VERSION})" in message


def test_a_store_with_a_garbage_page_in_the_middle_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    with Store.open(path, CHAIN) as store:
        writer.append_blocks(store, LEDGER, writer.chain_blocks(CHAIN, 8))
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = raw.execute("PRAGMA page_size").fetchone()[0]
    page_count = raw.execute("PRAGMA page_count").fetchone()[0]
    raw.close()
    assert page_count > 20, "the store should span many pages"
    assert path.stat().st_size == page_size * page_count  # everything is in the main file

    page_index = page_count // 2  # 0-based: well past the header page and the schema
    data = bytearray(path.read_bytes())
    garbage = bytes((index * 151 + 7) % 256 for index in range(page_size))
    data[page_index * page_size : (page_index + 1) * page_size] = garbage
    path.write_bytes(bytes(data))

    _assert_refused_untouched(path, "corrupt", "left untouched")


def test_a_missing_directory_gives_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(tmp_path / "no-such-directory" / "node.sqlite3", CHAIN)


# -- consensus records --------------------------------------------------------


def test_consensus_records_are_written_replaced_and_deleted(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    with Store.open(path, CHAIN) as store:
        assert store.consensus_get("view") is None
        store.consensus_put({"view": b"\x00", "prepared/1": b"p1", "prepared/2": b"p2"})
        assert store.consensus_get("view") == b"\x00"
        store.consensus_put({"view": b"\x01", "prepared/1": None, "missing": None})
        assert store.consensus_get("view") == b"\x01"
        assert store.consensus_get("prepared/1") is None
        assert store.consensus_get("prepared/2") == b"p2"
        assert store.consensus_get("missing") is None

    with Store.open(path, CHAIN) as store:
        assert store.consensus_get("view") == b"\x01"
        assert store.consensus_get("prepared/1") is None
        assert store.consensus_get("prepared/2") == b"p2"
        assert store._db.execute("SELECT key FROM consensus ORDER BY key").fetchall() == [("prepared/2",), ("view",)]


# -- crash safety -------------------------------------------------------------


def test_a_kill_while_writing_a_block_leaves_the_previous_block_as_head(tmp_path: Path) -> None:
    count = 4
    path = tmp_path / "crashed.sqlite3"
    environment = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    )
    finished = subprocess.run(
        [sys.executable, str(_WRITER_PATH), str(path), CHAIN, str(count)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert finished.returncode == -signal.SIGKILL, (
        f"writer did not die by SIGKILL:\n{finished.stdout}\n{finished.stderr}"
    )
    marker = re.search(rf"{re.escape(writer.CRASH_MARKER)} (\d+); wal (\d+) -> (\d+) bytes", finished.stdout)
    assert marker is not None, finished.stdout + finished.stderr
    assert int(marker.group(1)) == count + 1  # the block row was in the open transaction
    assert int(marker.group(3)) > int(marker.group(2))  # uncommitted pages reached the WAL

    blocks = writer.chain_blocks(CHAIN, count + 1)
    with Store.open(tmp_path / "reference.sqlite3", CHAIN) as reference:
        writer.append_blocks(reference, LEDGER, blocks[:count])
        expected_state = list(reference.state_items(""))
        reference.append_block(blocks[count], LEDGER.execute_block(reference, blocks[count]))
        expected_state_after = list(reference.state_items(""))

    with Store.open(path, CHAIN) as store:
        assert store.head() == (count, blocks[count - 1].hash)
        assert store.block(count) == blocks[count - 1]
        assert store.block(count + 1) is None
        assert store.block_by_hash(blocks[count].hash) is None
        assert all(store.transaction(tx.id) is None for tx in blocks[count].txs)
        assert store._db.execute("SELECT max(height) FROM transactions").fetchone()[0] == count
        assert list(store.state_items("")) == expected_state
        assert next_nonce(store, writer.AUTHORS[0].public_key) == count

        store.append_block(blocks[count], LEDGER.execute_block(store, blocks[count]))

        assert store.head() == (count + 1, blocks[count].hash)
        assert list(store.state_items("")) == expected_state_after
        assert store.transaction(blocks[count].txs[0].id).height == count + 1


def test_undo_rows_are_forgotten_per_kind_without_walking_the_rows_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tree undo rows go after STATE_HISTORY_BLOCKS, state undo rows only behind the older
    snapshot height, and each delete searches its own kind's heights (no scan of the rest)."""
    monkeypatch.setattr(store_sqlite, "STATE_HISTORY_BLOCKS", 4)
    with Store.open(tmp_path / "node.sqlite3", CHAIN, snapshot_interval=8) as store:
        writer.append_blocks(store, LEDGER, writer.chain_blocks(CHAIN, 30))
        kept = dict(store._db.execute("SELECT kind, min(height) FROM state_undo GROUP BY kind").fetchall())
        assert kept == {store_sqlite._UNDO_TREE: 27, store_sqlite._UNDO_STATE: 17}  # the state after 16 stays readable
        assert store.snapshot_heights() == [24, 16]
        plans = [
            row[3]
            for kind in (store_sqlite._UNDO_TREE, store_sqlite._UNDO_STATE)
            for row in store._db.execute(
                "EXPLAIN QUERY PLAN DELETE FROM state_undo WHERE kind = ? AND height <= ?", (kind, 20)
            )
        ]
        assert plans == ["SEARCH state_undo USING COVERING INDEX state_undo_by_kind_height (kind=? AND height<?)"] * 2
