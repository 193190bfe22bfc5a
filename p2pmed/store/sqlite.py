"""The node's durable store: one SQLite file with blocks, transactions, state and consensus records.

SQLite runs in WAL mode with ``synchronous=FULL``, so a returned commit is on
disk. ``append_block`` writes the block, its transactions with their outcomes and
the state changes in one SQL transaction: after a crash the store holds either
the whole block or none of it. The file carries an application id (``p2md``) and
a schema version; opening a file that is not a p2pmed store, is corrupt, or comes
from a newer p2pmed fails with ``StoreError`` and leaves the file untouched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from p2pmed import codec
from p2pmed.ledger.block import GENESIS_PARENT_HASH, Block, BlockHeader, check_block
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.machine import BlockExecution
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
)
SCHEMA_VERSION = len(MIGRATIONS)


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

    def __init__(self, connection: sqlite3.Connection, path: Path, chain_id: str, genesis_hash: bytes) -> None:
        self._db = connection
        self.path = path
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash

    @classmethod
    def open(
        cls,
        path: Path | str,
        chain_id: str,
        genesis_hash: bytes = GENESIS_PARENT_HASH,
        genesis_state: Mapping[str, bytes] | None = None,
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
        except BaseException:
            connection.close()
            raise
        return cls(connection, path, chain_id, genesis_hash)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- blocks and transactions ---------------------------------------------

    def head(self) -> tuple[int, bytes]:
        """Height and hash of the last block; ``(0, genesis_hash)`` when empty."""
        row = self._db.execute("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1").fetchone()
        return (0, self.genesis_hash) if row is None else (row[0], row[1])

    def append_block(self, block: Block, execution: BlockExecution, certificate: bytes | None = None) -> None:
        """Write ``block``, its outcomes and state changes atomically; it must extend the head."""
        height, head_hash = self.head()
        check_block(block, self.chain_id, height + 1, head_hash)
        assert len(execution.results) == len(block.txs), "one result per transaction"
        with self._transaction():
            self._db.execute(
                "INSERT INTO blocks (height, hash, header, certificate) VALUES (?, ?, ?, ?)",
                (block.height, block.hash, codec.encode(block.header), certificate),
            )
            self._insert_transactions(block, execution)
            self._write_state(execution.changes)

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

    def set_certificate(self, height: int, certificate: bytes) -> None:
        with self._transaction():
            if (
                self._db.execute("UPDATE blocks SET certificate = ? WHERE height = ?", (certificate, height)).rowcount
                != 1
            ):
                raise StoreError(f"no block at height {height}")

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
