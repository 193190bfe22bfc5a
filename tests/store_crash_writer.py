"""Crash a store in the middle of writing a block; run as a subprocess by ``test_store.py``.

Usage: ``python tests/store_crash_writer.py PATH CHAIN_ID BLOCKS``

Opens the store at PATH, appends BLOCKS blocks of ``chain_blocks(CHAIN_ID, ...)``
normally, then patches ``Store._write_state`` so that appending the next block
writes half of the block's state changes and then SIGKILLs its own process:
the block row and its transactions are already inserted in the open SQL
transaction, which never commits. The cache is kept tiny so that the
uncommitted pages spill into the WAL file before the kill; recovery must
ignore them.

Everything is deterministic (keys from fixed seeds, fixed block times), so the
test rebuilds the same blocks with ``chain_blocks`` to know what to expect.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from p2pmed.crypto import SigningKey
from p2pmed.ledger.block import GENESIS_PARENT_HASH, Block, make_block
from p2pmed.ledger.contracts import ALL_TX_TYPES
from p2pmed.ledger.contracts.consent import ConsentGrant, ConsentRevoke
from p2pmed.ledger.machine import Ledger
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.store import Store

PATIENT_COUNT = 24
BLOCK_TIME_MS_START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOCK_INTERVAL_MS = 1_000
EXPIRES_MS = BLOCK_TIME_MS_START + 365 * 24 * 3600 * 1000
ROTATING_CATEGORIES = ("condition", "genomics", "imaging", "medication", "procedure", "vital-signs")
CRASH_MARKER = "crash-writer: killing itself inside the open transaction of block"


def seeded_key(name: str) -> SigningKey:
    return SigningKey.from_seed(name.encode().ljust(32, b"\0"))


PROPOSER = seeded_key("proposer")
GRANTEES = (seeded_key("grantee-0"), seeded_key("grantee-1"))
PATIENTS = tuple(seeded_key(f"patient-{index}") for index in range(PATIENT_COUNT))


def block_transactions(chain_id: str, height: int) -> tuple[Transaction, ...]:
    """One transaction per patient per block: grants, and from block 2 on some revokes.

    A patient's nonce is ``height - 1``, since every earlier block held one of its
    transactions (a refused revoke still uses up its nonce).
    """
    txs = []
    for index, patient in enumerate(PATIENTS):
        grantee = GRANTEES[(height + index) % 2].public_key
        if height > 1 and (height + index) % 3 == 0:
            # Grants to this grantee always include "laboratory"; when this patient
            # has never granted it to this grantee the revoke is refused (invalid).
            tx_type, body = "consent.revoke", ConsentRevoke(grantee, ("laboratory",))
        else:
            category = ROTATING_CATEGORIES[(height + index) % len(ROTATING_CATEGORIES)]
            tx_type, body = "consent.grant", ConsentGrant(grantee, ("laboratory", category), "TREAT", EXPIRES_MS)
        txs.append(sign_transaction(patient, chain_id, tx_type, height - 1, body))
    return tuple(txs)


def chain_blocks(chain_id: str, count: int) -> list[Block]:
    """Blocks 1..count, each extending the previous one."""
    blocks: list[Block] = []
    previous_hash = GENESIS_PARENT_HASH
    for height in range(1, count + 1):
        time_ms = BLOCK_TIME_MS_START + height * BLOCK_INTERVAL_MS
        block = make_block(chain_id, height, previous_hash, block_transactions(chain_id, height), PROPOSER.public_key, time_ms)
        blocks.append(block)
        previous_hash = block.hash
    return blocks


def append_blocks(store: Store, ledger: Ledger, blocks: list[Block]) -> None:
    for block in blocks:
        store.append_block(block, ledger.execute_block(store, block))


def main(argv: list[str]) -> int:
    path, chain_id, count = Path(argv[1]), argv[2], int(argv[3])
    blocks = chain_blocks(chain_id, count + 1)
    ledger = Ledger(chain_id, ALL_TX_TYPES)
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
