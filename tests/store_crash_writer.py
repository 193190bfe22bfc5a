"""Crash a store in the middle of writing a block; run as a subprocess by ``test_store.py``.

Usage: ``python tests/store_crash_writer.py PATH CHAIN_ID BLOCKS``

Opens the store at PATH, appends BLOCKS blocks of ``chain_blocks(CHAIN_ID, ...)``
normally, then patches ``Store._write_state`` so that appending the next block
writes half of the block's state changes and then SIGKILLs its own process:
the block row and its transactions are already inserted in the open SQL
transaction, which never commits. The cache is kept tiny so that the
uncommitted pages spill into the WAL file before the kill; recovery must
ignore them. The blocks run two test-only rules (``TX_TYPES``) that write and
delete state keys, so the half-written changes hold both.

Everything is deterministic (keys from fixed seeds, fixed block times), so the
test rebuilds the same blocks with ``chain_blocks`` to know what to expect.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from p2pmed.crypto import SigningKey
from p2pmed.ledger.block import GENESIS_PARENT_HASH, Block, make_block
from p2pmed.ledger.contracts import ALL_TX_TYPES
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.machine import Ledger
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.store import Store

AUTHOR_COUNT = 24
BLOCK_TIME_MS_START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOCK_INTERVAL_MS = 1_000
ROTATING_TOPICS = ("condition", "genomics", "imaging", "medication", "procedure", "vital-signs")
CRASH_MARKER = "crash-writer: killing itself inside the open transaction of block"


# -- test-only rules that write and delete state keys ---------------------------


@dataclass(frozen=True)
class NoteWrite:
    topics: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class NoteErase:
    topics: tuple[str, ...]


def note_key(author: bytes, topic: str) -> str:
    return f"note/{author.hex()}/{topic}"


def read_note(state: StateReader, author: bytes, topic: str) -> str | None:
    return StateOverlay(state).get(str, note_key(author, topic))


def write_notes(state: StateOverlay, context: TxContext, body: NoteWrite) -> None:
    for topic in body.topics:
        state.put(note_key(context.sender, topic), body.text)


def erase_notes(state: StateOverlay, context: TxContext, body: NoteErase) -> None:
    for topic in body.topics:
        if state.state_get(note_key(context.sender, topic)) is None:
            raise TxRejected(RejectReason.INVALID, f"no note on {topic!r}")
        state.delete(note_key(context.sender, topic))


TX_TYPES = (
    *ALL_TX_TYPES,
    TxType("test.note.write", NoteWrite, write_notes),
    TxType("test.note.erase", NoteErase, erase_notes),
)
"""The chain's rules and two test-only ones: an author writes notes on topics, or erases them."""


# -- deterministic blocks -------------------------------------------------------


def seeded_key(name: str) -> SigningKey:
    return SigningKey.from_seed(name.encode().ljust(32, b"\0"))


PROPOSER = seeded_key("proposer")
AUTHORS = tuple(seeded_key(f"author-{index}") for index in range(AUTHOR_COUNT))


def block_transactions(chain_id: str, height: int) -> tuple[Transaction, ...]:
    """One transaction per author per block: notes written, and from block 2 on some erased.

    An author's nonce is ``height - 1``, since every earlier block held one of its
    transactions (a refused erase still uses up its nonce).
    """
    txs = []
    for index, author in enumerate(AUTHORS):
        if height > 1 and (height + index) % 3 == 0:
            # Even-numbered authors wrote a "laboratory" note in the block before,
            # so their erase applies; odd-numbered ones never write it: refused.
            tx_type, body = "test.note.erase", NoteErase(("laboratory",))
        else:
            topic = ROTATING_TOPICS[(height + index) % len(ROTATING_TOPICS)]
            topics = ("laboratory", topic) if index % 2 == 0 else (topic,)
            tx_type, body = "test.note.write", NoteWrite(topics, f"written at height {height}")
        txs.append(sign_transaction(author, chain_id, tx_type, height - 1, body))
    return tuple(txs)


def chain_blocks(chain_id: str, count: int) -> list[Block]:
    """Blocks 1..count, each extending the previous one."""
    blocks: list[Block] = []
    previous_hash = GENESIS_PARENT_HASH
    for height in range(1, count + 1):
        time_ms = BLOCK_TIME_MS_START + height * BLOCK_INTERVAL_MS
        block = make_block(
            chain_id, height, previous_hash, block_transactions(chain_id, height), PROPOSER.public_key, time_ms
        )
        blocks.append(block)
        previous_hash = block.hash
    return blocks


def append_blocks(store: Store, ledger: Ledger, blocks: list[Block]) -> None:
    for block in blocks:
        store.append_block(block, ledger.execute_block(store, block))


def main(argv: list[str]) -> int:
    path, chain_id, count = Path(argv[1]), argv[2], int(argv[3])
    blocks = chain_blocks(chain_id, count + 1)
    ledger = Ledger(chain_id, TX_TYPES)
    store = Store.open(path, chain_id)
    append_blocks(store, ledger, blocks[:count])
    print(f"crash-writer: appended {count} blocks, head {store.head()[0]}", flush=True)

    write_state = Store._write_state
    wal = Path(f"{path}-wal")
    wal_size_before = wal.stat().st_size

    def write_half_then_die(self: Store, changes: dict[str, bytes | None]) -> None:
        items = list(changes.items())
        write_state(self, dict(items[: len(items) // 2]))
        head_inside = self.head()[0]  # this connection sees its own uncommitted block row
        wal_size = wal.stat().st_size
        print(f"{CRASH_MARKER} {head_inside}; wal {wal_size_before} -> {wal_size} bytes", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    Store._write_state = write_half_then_die  # type: ignore[method-assign]
    store._db.execute("PRAGMA cache_size = 1")  # spill uncommitted pages into the WAL
    store.append_block(blocks[count], ledger.execute_block(store, blocks[count]))
    print("crash-writer: still alive after the kill", flush=True)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
