"""The node's durable store: one SQLite file with blocks, transactions, state and consensus records.

SQLite runs in WAL mode with ``synchronous=FULL``, so a returned commit is on
disk. ``append_block`` writes the block, its transactions with their outcomes and
the state changes in one SQL transaction: after a crash the store holds either
the whole block or none of it.

The same transaction updates the state tree (``p2pmed.ledger.state_tree``: its inner
node records, changed in place) and records the block's ``StateCommitment``; a block
whose header commits to an outcome other than this store's is refused
(``BlockRejected``), so a node or observer that executes a certified block checks the
root 2f+1 validators signed. To prove a key at a recent height (a root is certified
by a later block), each block also keeps what it overwrote, state values and tree
records (``state_undo``), for ``STATE_HISTORY_BLOCKS`` blocks: reading "the first value
overwritten after height h, else the current one" gives the state and tree at h.

Nearly every block rewrites the top of the tree, so the records of its upper
``TREE_CACHE_DEPTH`` levels stay in memory (at most 2^16 records, about 16 MB): the store
fills and updates that cache only after a block's SQL transaction committed, so it
never runs ahead of the file, and only where it writes, so a second ``Store`` that
only reads the file (a test inspecting a node's) never caches what the node changes
later. An append reads each record once: the undo rows take the "before" values from
what the update read.

The file carries an application id (``p2md``) and a schema version; opening a file
that is not a p2pmed store, is corrupt, or comes from a newer p2pmed fails with
``StoreError`` and leaves the file untouched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from p2pmed import codec
from p2pmed.ledger.block import GENESIS_PARENT_HASH, Block, BlockHeader, StateCommitment, check_block
from p2pmed.ledger.errors import BlockRejected, RejectReason, TxRejected
from p2pmed.ledger.machine import BlockExecution, results_root
from p2pmed.ledger.state_tree import (
    EMPTY_ROOT,
    Subtree,
    TreePath,
    decode_subtree,
    encode_subtree,
    position_depth,
    prove,
    update,
)
from p2pmed.ledger.tx import Transaction, decode_transaction

__all__ = ["SCHEMA_VERSION", "Store", "StoreError", "StoredTransaction"]

APPLICATION_ID = int.from_bytes(b"p2md", "big")

_T = TypeVar("_T")

# Each entry migrates the schema from version i to i + 1; never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
    CREATE TABLE blocks (
        height INTEGER PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        header BLOB NOT NULL,
        certificate BLOB
    ) STRICT;
    CREATE TABLE transactions (
        id BLOB PRIMARY KEY,
        height INTEGER NOT NULL REFERENCES blocks (height),
        position INTEGER NOT NULL,
        sender BLOB NOT NULL,
        nonce INTEGER NOT NULL,
        encoded BLOB NOT NULL,
        reject_reason TEXT,
        reject_detail TEXT NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX transactions_by_block ON transactions (height, position);
    CREATE INDEX transactions_by_sender ON transactions (sender, nonce);
    CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE consensus (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT, WITHOUT ROWID;
    """,
    # A decided block may carry a transaction that an earlier block already holds
    # (a replay, refused as stale-nonce): key transactions by their place in the
    # chain, not by id, so such a block can be stored.
    """
    CREATE TABLE transactions_new (
        id BLOB NOT NULL,
        height INTEGER NOT NULL REFERENCES blocks (height),
        position INTEGER NOT NULL,
        sender BLOB NOT NULL,
        nonce INTEGER NOT NULL,
        encoded BLOB NOT NULL,
        reject_reason TEXT,
        reject_detail TEXT NOT NULL,
        PRIMARY KEY (height, position)
    ) STRICT;
    INSERT INTO transactions_new SELECT id, height, position, sender, nonce, encoded, reject_reason, reject_detail
        FROM transactions;
    DROP TABLE transactions;
    ALTER TABLE transactions_new RENAME TO transactions;
    CREATE INDEX transactions_by_id ON transactions (id);
    CREATE INDEX transactions_by_sender ON transactions (sender, nonce);
    """,
    # The state tree and the commitment of every height (a store written before has none
    # and is refused at open: start such a node from an empty data directory).
    """
    CREATE TABLE state_tree (position BLOB PRIMARY KEY, record BLOB NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE state_commitments (
        height INTEGER PRIMARY KEY,
        state_root BLOB NOT NULL,
        results_root BLOB NOT NULL,
        root BLOB NOT NULL
    ) STRICT;
    CREATE TABLE state_undo (
        kind INTEGER NOT NULL,
        key BLOB NOT NULL,
        height INTEGER NOT NULL,
        before BLOB,
        PRIMARY KEY (kind, key, height)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX state_undo_by_height ON state_undo (height);
    """,
    # Proofs of each epoch's validator set, certified by the set before it, kept for good
    # (``p2pmed.node.epoch_proofs``): what a node started from a snapshot, or an auditor
    # with a report bundle, checks the chain of sets with.
    """
    CREATE TABLE epoch_proofs (number INTEGER PRIMARY KEY, proof BLOB NOT NULL) STRICT;
    """,
    # Undo rows are forgotten per kind (tree rows after STATE_HISTORY_BLOCKS, state rows only
    # behind the older snapshot): indexed by height alone, each block's delete walked every
    # state row kept between the two, ~30 ms a block under load.
    """
    DROP INDEX state_undo_by_height;
    CREATE INDEX state_undo_by_kind_height ON state_undo (kind, height);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
STATE_HISTORY_BLOCKS = 256
"""How many blocks back a key's value and tree path stay provable."""
TREE_CACHE_DEPTH = 16
"""Tree records at depths below this are kept in memory by the store that writes them."""
SNAPSHOT_INTERVAL_BLOCKS = 1_000
"""The state after every such height is offered as a snapshot while it is one of the two newest."""
SNAPSHOT_BYTES_MAX = 1 << 30
"""The largest state a snapshot carries (its entries' keys and values)."""
_UNDO_STATE, _UNDO_TREE = 0, 1
_SNAPSHOT_KEYS_READ = 512
_BASE_KEY = "base_header"


class StoreError(Exception):
    """The store cannot be opened or a write would break the chain."""


@dataclass(frozen=True)
class StoredTransaction:
    tx: Transaction
    height: int
    position: int
    reject_reason: RejectReason | None
    reject_detail: str


class Store:
    """A p2pmed SQLite store. Not thread-safe; one writer (the node) at a time."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path,
        chain_id: str,
        genesis_hash: bytes,
        snapshot_interval: int = SNAPSHOT_INTERVAL_BLOCKS,
    ) -> None:
        self._db = connection
        self.path = path
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash
        self.snapshot_interval = snapshot_interval
        self._tree_top: dict[bytes, bytes | None] = {}
        """Tree records above ``TREE_CACHE_DEPTH`` as committed (None: no record there)."""
        self.base: BlockHeader | None = self._read_base()
        """The header of the block a store started from a snapshot starts after (None: genesis)."""

    @classmethod
    def open(
        cls,
        path: Path | str,
        chain_id: str,
        genesis_hash: bytes = GENESIS_PARENT_HASH,
        genesis_state: Mapping[str, bytes] | None = None,
        snapshot_interval: int = SNAPSHOT_INTERVAL_BLOCKS,
    ) -> Store:
        """Open or create the store of ``chain_id``; a store of another chain, or of the same
        chain id started from another genesis, is refused. Block 1 extends ``genesis_hash``;
        a new store starts with ``genesis_state``, written with its claim in one transaction."""
        path = Path(path)
        try:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise StoreError(f"{path}: cannot open: {error}") from None
        try:
            _prepare(connection, path)
            with _Transaction(connection):
                _claim(connection, path, "chain_id", chain_id.encode(), f"chain {chain_id!r}")
                if _claim(connection, path, "genesis_hash", genesis_hash, f"genesis {genesis_hash.hex()[:16]}…"):
                    connection.executemany(
                        "INSERT INTO state (key, value) VALUES (?, ?)", sorted((genesis_state or {}).items())
                    )
                _commit_genesis_state(connection, path)
        except BaseException:
            connection.close()
            raise
        return cls(connection, path, chain_id, genesis_hash, snapshot_interval)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- blocks and transactions ---------------------------------------------

    def head(self) -> tuple[int, bytes]:
        """Height and hash of the last block; ``(0, genesis_hash)`` when empty, the snapshot's
        base block when started from one and no block came since."""
        row = self._db.execute("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1").fetchone()
        if row is not None:
            return row[0], row[1]
        return (0, self.genesis_hash) if self.base is None else (self.base.height, self.base.hash)

    def knows_outcome(self, height: int) -> bool:
        """Whether this store executed block ``height`` (0: genesis) or started from its state:
        a store started from a snapshot has no outcome of the blocks before its base."""
        return height == 0 or self.base is None or height >= self.base.height

    def append_block(self, block: Block, execution: BlockExecution, certificate: bytes | None = None) -> None:
        """Write ``block``, its outcomes and state changes atomically; it must extend the head."""
        height, head_hash = self.head()
        check_block(block, self.chain_id, height + 1, head_hash)
        assert len(execution.results) == len(block.txs), "one result per transaction"
        claimed = block.header.state
        if self.knows_outcome(claimed.height) and claimed != self.commitment(claimed.height):
            raise BlockRejected(
                f"block {block.height} commits to a state after block {claimed.height} that differs from this store's"
            )
        reads = _TreeReads(self)
        root, tree_writes = update(reads, self._root(height), execution.changes)
        with self._transaction():
            self._db.execute(
                "INSERT INTO blocks (height, hash, header, certificate) VALUES (?, ?, ?, ?)",
                (block.height, block.hash, codec.encode(block.header), certificate),
            )
            self._insert_transactions(block, execution)
            self._keep_undo(block.height, execution.changes, tree_writes, reads)
            self._write_state(execution.changes)
            _write_tree(self._db, tree_writes)
            _insert_commitment(self._db, block.height, root, results_root(execution.results))
        self._tree_top.update(
            (position, record)
            for position, record in (reads.read | tree_writes).items()
            if position_depth(position) < TREE_CACHE_DEPTH
        )

    def _insert_transactions(self, block: Block, execution: BlockExecution) -> None:
        rows = [
            (
                tx.id,
                block.height,
                position,
                tx.sender,
                tx.nonce,
                tx.encoded,
                None if result.ok else result.reason,
                result.detail,
            )
            for position, (tx, result) in enumerate(zip(block.txs, execution.results, strict=True))
        ]
        self._db.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def _write_state(self, changes: dict[str, bytes | None]) -> None:
        self._db.executemany(
            "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(key, value) for key, value in changes.items() if value is not None],
        )
        self._db.executemany(
            "DELETE FROM state WHERE key = ?", [(key,) for key, value in changes.items() if value is None]
        )

    def _keep_undo(
        self, height: int, changes: dict[str, bytes | None], tree_writes: dict[bytes, bytes | None], reads: _TreeReads
    ) -> None:
        """Record what block ``height`` overwrites, and forget what fell out of the history."""
        rows = [(_UNDO_STATE, key.encode(), height, self.state_get(key)) for key in changes]
        rows += [(_UNDO_TREE, position, height, reads.tree_node(position)) for position in tree_writes]
        self._db.executemany("INSERT INTO state_undo (kind, key, height, before) VALUES (?, ?, ?, ?)", rows)
        forget = "DELETE FROM state_undo WHERE kind = ? AND height <= ?"
        self._db.execute(forget, (_UNDO_TREE, height - STATE_HISTORY_BLOCKS))
        self._db.execute(forget, (_UNDO_STATE, min(height - STATE_HISTORY_BLOCKS, self._older_snapshot_height(height))))

    def set_certificate(self, height: int, certificate: bytes) -> None:
        with self._transaction():
            if (
                self._db.execute("UPDATE blocks SET certificate = ? WHERE height = ?", (certificate, height)).rowcount
                != 1
            ):
                raise StoreError(f"no block at height {height}")

    def block_header(self, height: int) -> BlockHeader | None:
        """The header of block ``height``, also of a snapshot's base block (whose transactions are not here)."""
        if self.base is not None and height == self.base.height:
            return self.base
        row = self._db.execute("SELECT header FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else self._decode_stored(BlockHeader, row[0], f"block {height} header")

    def block(self, height: int) -> Block | None:
        row = self._db.execute("SELECT header FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else self._assemble(row[0], height)

    def block_by_hash(self, block_hash: bytes) -> Block | None:
        row = self._db.execute("SELECT header, height FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        return None if row is None else self._assemble(row[0], row[1])

    def certificate(self, height: int) -> bytes | None:
        row = self._db.execute("SELECT certificate FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else row[0]

    def _assemble(self, header_bytes: bytes, height: int) -> Block:
        header = self._decode_stored(BlockHeader, header_bytes, f"block {height} header")
        rows = self._db.execute("SELECT encoded FROM transactions WHERE height = ? ORDER BY position", (height,))
        return Block(header, tuple(self._decode_transaction(row[0]) for row in rows))

    def transaction(self, tx_id: bytes) -> StoredTransaction | None:
        """Where ``tx_id`` took effect, else its first appearance (a replay can appear again)."""
        row = self._db.execute(
            "SELECT encoded, height, position, reject_reason, reject_detail FROM transactions WHERE id = ?"
            " ORDER BY reject_reason IS NOT NULL, height, position LIMIT 1",
            (tx_id,),
        ).fetchone()
        return None if row is None else self._stored_transaction(row)

    def recent_tx_ids(self, count: int) -> list[bytes]:
        """Ids of the last ``count`` transactions on the chain, oldest first."""
        rows = self._db.execute("SELECT id FROM transactions ORDER BY height DESC, position DESC LIMIT ?", (count,))
        return [row[0] for row in rows][::-1]

    def transactions_by_sender(self, sender: bytes) -> list[StoredTransaction]:
        rows = self._db.execute(
            "SELECT encoded, height, position, reject_reason, reject_detail FROM transactions"
            " WHERE sender = ? ORDER BY nonce, height",
            (sender,),
        )
        return [self._stored_transaction(row) for row in rows]

    # -- application state ----------------------------------------------------

    def state_get(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def state_items(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        """State entries whose key starts with ``prefix``, in key order."""
        upper = prefix + "\U0010ffff"
        yield from self._db.execute(
            "SELECT key, value FROM state WHERE key >= ? AND key < ? ORDER BY key", (prefix, upper)
        )

    # -- state tree and commitments --------------------------------------------

    def tree_node(self, position: bytes) -> bytes | None:
        if position in self._tree_top:
            return self._tree_top[position]
        row = self._db.execute("SELECT record FROM state_tree WHERE position = ?", (position,)).fetchone()
        return None if row is None else row[0]

    def commitment(self, height: int) -> StateCommitment | None:
        """The outcome of block ``height`` (0: genesis) as a later header commits to it."""
        row = self._db.execute(
            "SELECT state_root, results_root FROM state_commitments WHERE height = ?", (height,)
        ).fetchone()
        return None if row is None else StateCommitment(height, row[0], row[1])

    def executed_height(self) -> int:
        return self.head()[0]

    def state_at(self, height: int) -> _StateAt:
        """The state and the tree as they were after block ``height``; ``height`` must be
        within ``STATE_HISTORY_BLOCKS`` of the head, else ``StoreError``."""
        head = self.head()[0]
        lowest = max(0, head - STATE_HISTORY_BLOCKS)
        if not lowest <= height <= head:
            raise StoreError(f"the state after block {height} is not kept (only after blocks {lowest}..{head})")
        return _StateAt(self, height)

    def state_path(self, key: str, height: int) -> tuple[bytes | None, TreePath]:
        """``key``'s value after block ``height`` and its path in the tree then (``state_at``)."""
        at = self.state_at(height)
        return at.state_get(key), prove(at, self._root(height), key)

    def _root(self, height: int) -> Subtree | None:
        row = self._db.execute("SELECT root FROM state_commitments WHERE height = ?", (height,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no state commitment for block {height}")
        root, _ = decode_subtree(row[0])
        return root

    def _value_at(self, kind: int, key: bytes, height: int) -> tuple[bool, bytes | None]:
        """The first value a block after ``height`` overwrote (True, value), else (False, None)."""
        row = self._db.execute(
            "SELECT before FROM state_undo WHERE kind = ? AND key = ? AND height > ? ORDER BY height LIMIT 1",
            (kind, key, height),
        ).fetchone()
        return (False, None) if row is None else (True, row[0])

    # -- snapshots --------------------------------------------------------------

    def snapshot_heights(self) -> list[int]:
        """The heights whose state this store offers as a snapshot, newest first: the two newest
        multiples of ``snapshot_interval`` that a later block here commits to, at or after its base."""
        head = self.head()[0]
        newest = (head - 1) // self.snapshot_interval * self.snapshot_interval
        lowest = 0 if self.base is None else self.base.height
        return [height for height in (newest, newest - self.snapshot_interval) if height > lowest]

    def _older_snapshot_height(self, head: int) -> int:
        return ((head - 1) // self.snapshot_interval - 1) * self.snapshot_interval

    def snapshot_entries(self, height: int, after: str, bytes_max: int) -> tuple[list[tuple[str, bytes]], bool]:
        """The state after block ``height`` (one of ``snapshot_heights``) in key order, from the first
        key after ``after``: entries of at most ``bytes_max`` bytes in all (at least one), and whether
        more follow."""
        if height not in self.snapshot_heights():
            raise StoreError(f"the state after block {height} is not offered here (only {self.snapshot_heights()})")
        at = _StateAt(self, height)
        entries: list[tuple[str, bytes]] = []
        size = 0
        while True:
            keys = [
                row[0]
                for row in self._db.execute(
                    "SELECT key FROM state WHERE key > ?1 UNION"
                    " SELECT CAST(key AS TEXT) FROM state_undo"
                    " WHERE kind = ?2 AND height > ?3 AND key > CAST(?1 AS BLOB)"
                    " ORDER BY 1 LIMIT ?4",
                    (after, _UNDO_STATE, height, _SNAPSHOT_KEYS_READ),
                )
            ]
            for key in keys:
                after = key
                value = at.state_get(key)
                if value is None:  # created after ``height``
                    continue
                if entries and size + len(key) + len(value) > bytes_max:
                    return entries, True
                entries.append((key, value))
                size += len(key) + len(value)
            if len(keys) < _SNAPSHOT_KEYS_READ:
                return entries, False

    def install_snapshot(self, base: BlockHeader, entries: Mapping[str, bytes], commitment: StateCommitment) -> None:
        """Start this empty store from the state after block ``base`` (``entries``), whose outcome a
        certified later block commits to (``commitment``); refused (``StoreError``, nothing written)
        if the entries' root is not the commitment's."""
        if self.head()[0] != 0:
            raise StoreError(f"{self.path}: a snapshot starts an empty store; this one has blocks")
        if commitment.height != base.height:
            raise StoreError(f"the commitment is of block {commitment.height}, the snapshot's base is {base.height}")
        root, writes = update(_EmptyTree(), None, dict(entries))
        if (EMPTY_ROOT if root is None else root.hash) != commitment.state_root:
            raise StoreError(f"the snapshot's entries do not lead to the state root block {base.height} commits to")
        with self._transaction():
            self._db.execute("DELETE FROM state")
            self._db.execute("DELETE FROM state_tree")
            self._db.executemany("INSERT INTO state (key, value) VALUES (?, ?)", sorted(entries.items()))
            _write_tree(self._db, writes)
            _insert_commitment(self._db, base.height, root, commitment.results_root)
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (_BASE_KEY, codec.encode(base)))
        self.base = base

    def _read_base(self) -> BlockHeader | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_BASE_KEY,)).fetchone()
        return None if row is None else self._decode_stored(BlockHeader, row[0], "snapshot base header")

    def epoch_proof(self, number: int) -> bytes | None:
        row = self._db.execute("SELECT proof FROM epoch_proofs WHERE number = ?", (number,)).fetchone()
        return None if row is None else row[0]

    def epoch_proofs(self) -> list[bytes]:
        """The proofs of epochs 1, 2, ... in order, as far as they are here without a gap."""
        rows = self._db.execute("SELECT number, proof FROM epoch_proofs ORDER BY number")
        proofs: list[bytes] = []
        for number, proof in rows:
            if number != len(proofs) + 1:
                break
            proofs.append(proof)
        return proofs

    def put_epoch_proof(self, number: int, proof: bytes) -> None:
        """Keep the proof of epoch ``number``'s set; the first kept stays."""
        with self._transaction():
            self._db.execute("INSERT OR IGNORE INTO epoch_proofs (number, proof) VALUES (?, ?)", (number, proof))

    # -- consensus records ----------------------------------------------------

    def consensus_get(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM consensus WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def consensus_items(self) -> Iterator[tuple[str, bytes]]:
        """Every consensus record, in key order (what a restarted replica is rebuilt from)."""
        yield from self._db.execute("SELECT key, value FROM consensus ORDER BY key")

    def consensus_put(self, records: dict[str, bytes | None]) -> None:
        """Durably write (or delete, for ``None``) consensus records before acting on them."""
        with self._transaction():
            for key, value in records.items():
                if value is None:
                    self._db.execute("DELETE FROM consensus WHERE key = ?", (key,))
                else:
                    self._db.execute(
                        "INSERT INTO consensus (key, value) VALUES (?, ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, value),
                    )

    # -- internals ------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _decode_stored(self, cls: type[_T], data: bytes, what: str) -> _T:
        try:
            return codec.decode(cls, data, codec.BLOCK_SIZE_MAX)
        except codec.CodecError as error:
            raise StoreError(f"{self.path}: {what} is corrupt: {error}") from None

    def _decode_transaction(self, encoded: bytes) -> Transaction:
        try:
            return decode_transaction(encoded)
        except TxRejected as error:
            raise StoreError(f"{self.path}: a stored transaction is corrupt: {error}") from None

    def _stored_transaction(self, row: tuple[bytes, int, int, str | None, str]) -> StoredTransaction:
        encoded, height, position, reason, detail = row
        reject_reason = None if reason is None else RejectReason(reason)
        return StoredTransaction(self._decode_transaction(encoded), height, position, reject_reason, detail)


class _TreeReads:
    """The tree records one append reads, each read from the store once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.read: dict[bytes, bytes | None] = {}

    def tree_node(self, position: bytes) -> bytes | None:
        if position not in self.read:
            self.read[position] = self._store.tree_node(position)
        return self.read[position]


class _StateAt:
    """The state and the tree as they were after block ``height`` (read through the undo rows)."""

    def __init__(self, store: Store, height: int) -> None:
        self._store = store
        self._height = height

    def state_get(self, key: str) -> bytes | None:
        overwritten, before = self._store._value_at(_UNDO_STATE, key.encode(), self._height)
        return before if overwritten else self._store.state_get(key)

    def tree_node(self, position: bytes) -> bytes | None:
        overwritten, before = self._store._value_at(_UNDO_TREE, position, self._height)
        return before if overwritten else self._store.tree_node(position)


def _write_tree(db: sqlite3.Connection, writes: dict[bytes, bytes | None]) -> None:
    db.executemany(
        "INSERT INTO state_tree (position, record) VALUES (?, ?)"
        " ON CONFLICT (position) DO UPDATE SET record = excluded.record",
        [(position, record) for position, record in writes.items() if record is not None],
    )
    db.executemany(
        "DELETE FROM state_tree WHERE position = ?",
        [(position,) for position, record in writes.items() if record is None],
    )


def _insert_commitment(db: sqlite3.Connection, height: int, root: Subtree | None, results: bytes) -> None:
    db.execute(
        "INSERT INTO state_commitments (height, state_root, results_root, root) VALUES (?, ?, ?, ?)",
        (height, EMPTY_ROOT if root is None else root.hash, results, encode_subtree(root)),
    )


class _EmptyTree:
    def tree_node(self, position: bytes) -> bytes | None:
        return None


def _commit_genesis_state(connection: sqlite3.Connection, path: Path) -> None:
    """Build the tree of a store that has none yet: a new one's genesis state. A store with
    blocks but no commitments was written before state roots existed and is refused."""
    if connection.execute("SELECT 1 FROM state_commitments LIMIT 1").fetchone() is not None:
        return
    if connection.execute("SELECT 1 FROM blocks LIMIT 1").fetchone() is not None:
        raise StoreError(
            f"{path}: this store was written by a p2pmed without state roots; start this node from an empty"
            " data directory (it fetches the chain from its peers)"
        )
    genesis = dict(connection.execute("SELECT key, value FROM state"))
    root, writes = update(_EmptyTree(), None, genesis)
    _write_tree(connection, writes)
    _insert_commitment(connection, 0, root, results_root(()))


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_rest: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _claim(connection: sqlite3.Connection, path: Path, key: str, value: bytes, described: str) -> bool:
    """Record ``value`` under ``key`` in a new store (True); refuse a store that recorded another."""
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        connection.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        return True
    if row[0] != value:
        mine = repr(row[0].decode(errors="replace")) if key == "chain_id" else row[0].hex()[:16] + "…"
        raise StoreError(
            f"{path}: store belongs to {key.replace('_', ' ')} {mine}, not {described}; keep the data with the"
            " genesis.json it was created for, or start this node from an empty data directory"
        )
    return False


def _prepare(connection: sqlite3.Connection, path: Path) -> None:
    """Check the file is ours and intact, set durability, bring the schema up to date."""
    try:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = connection.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path}: not a p2pmed store or corrupt ({error}); the file was left untouched") from None
    if application_id != APPLICATION_ID and (application_id != 0 or tables != 0):
        raise StoreError(f"{path}: this SQLite file belongs to another application; the file was left untouched")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {version} is newer than this p2pmed ({SCHEMA_VERSION}); upgrade p2pmed"
        )
    try:
        problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path}: store is corrupt ({error}); the file was left untouched") from None
    if problems != ["ok"]:
        raise StoreError(f"{path}: store is corrupt: {'; '.join(problems[:3])}; the file was left untouched")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    for next_version in range(version, SCHEMA_VERSION):
        _migrate(connection, next_version)


def _migrate(connection: sqlite3.Connection, version: int) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in MIGRATIONS[version].split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {version + 1}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
