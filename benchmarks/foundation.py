"""Foundation micro-benchmarks: what one signature, one encoding, one key wrap and one block append cost.

Run ``python benchmarks/foundation.py`` (or ``make bench``). It prints a table and
asserts nothing about speed. Iteration counts are fixed and small, so a run takes
a few seconds; the store figures come from a real SQLite file in a temporary
directory, with the store's own settings (WAL, ``synchronous=FULL``: every block
is one fsynced commit), so they depend on the disk.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cryptography

from p2pmed import codec, crypto, key_shares
from p2pmed.crypto import Kem, SignatureDomain, SigningKey
from p2pmed.ledger.block import make_block
from p2pmed.ledger.contracts import ALL_TX_TYPES
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.machine import Ledger
from p2pmed.ledger.tx import Transaction, decode_transaction, sign_transaction
from p2pmed.store import Store

CHAIN_ID = "p2pmed-bench"
TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
RECORD_SIZE = 4096
WARMUP_ITERATIONS = 20

# (txs per block, blocks appended)
STORE_RUNS = ((1, 200), (100, 30))


def _seeded_key(name: str) -> SigningKey:
    return SigningKey.from_seed(name.encode().ljust(32, b"\0"))


def _microseconds_per_call(function: Callable[[], object], iterations: int) -> float:
    for _ in range(min(WARMUP_ITERATIONS, iterations)):
        function()
    start = time.perf_counter()
    for _ in range(iterations):
        function()
    return (time.perf_counter() - start) / iterations * 1e6


def _sample_probe(sender: SigningKey, nonce: int) -> Transaction:
    return sign_transaction(sender, CHAIN_ID, "load.probe", nonce, Probe(f"bench {nonce}"))


def measure_operations() -> list[tuple[str, int, float]]:
    """(operation, iterations, µs per operation) for the crypto and codec primitives."""
    sender = _seeded_key("bench-sender")
    tx = _sample_probe(sender, 0)
    payload = tx.signing_payload()
    signature = sender.sign(SignatureDomain.TRANSACTION, CHAIN_ID, payload)
    encoded = codec.encode(tx)
    record_id = b"record-0001"
    record = os.urandom(RECORD_SIZE)
    data_key, _ = crypto.encrypt_record(record_id, record)

    rows: list[tuple[str, int, float]] = []

    def run(name: str, iterations: int, function: Callable[[], object]) -> None:
        rows.append((name, iterations, _microseconds_per_call(function, iterations)))

    run(
        f"ed25519 sign ({len(payload)} B tx payload)",
        2000,
        lambda: sender.sign(SignatureDomain.TRANSACTION, CHAIN_ID, payload),
    )
    run(
        "ed25519 verify (crypto.verify)",
        2000,
        lambda: crypto.verify(sender.public_key, signature, SignatureDomain.TRANSACTION, CHAIN_ID, payload),
    )
    run(f"tx encode (codec.encode, {len(encoded)} B)", 5000, lambda: codec.encode(tx))
    run("tx decode (decode_transaction)", 3000, lambda: decode_transaction(encoded))
    shares = key_shares.split(data_key, 2, 3)
    run("shamir split 2 of 3 (key_shares.split)", 2000, lambda: key_shares.split(data_key, 2, 3))
    run("shamir combine 2 shares", 2000, lambda: key_shares.combine({1: shares[0], 2: shares[1]}))
    for kem, iterations in ((Kem.X25519, 500), (Kem.MLKEM768_X25519, 300)):
        reader = crypto.EncryptionPrivateKey.generate(kem)
        wrapped = key_shares.wrap_share(shares[0], 1, reader.public_key, record_id)
        run(
            f"hpke seal a key share {kem.value} ({len(wrapped)} B)",
            iterations,
            lambda reader=reader: key_shares.wrap_share(shares[0], 1, reader.public_key, record_id),
        )
        run(
            f"hpke open a key share {kem.value}",
            iterations,
            lambda reader=reader, wrapped=wrapped: key_shares.unwrap_share(wrapped, reader, record_id),
        )
    run(f"aes-256-gcm seal {RECORD_SIZE // 1024} KiB record", 2000, lambda: crypto.encrypt_record(record_id, record))
    return rows


def measure_store(txs_per_block: int, block_count: int) -> tuple[float, float]:
    """Appended blocks/s and tx/s; only ``append_block`` is timed (signing and execution are not)."""
    ledger = Ledger(CHAIN_ID, ALL_TX_TYPES)
    proposer = _seeded_key("bench-proposer")
    senders = [_seeded_key(f"bench-sender-{index}") for index in range(txs_per_block)]
    with (
        tempfile.TemporaryDirectory(prefix="p2pmed-bench-") as scratch,
        Store.open(Path(scratch) / "bench.sqlite3", CHAIN_ID) as store,
    ):
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2, "the store must run with synchronous=FULL"
        elapsed = 0.0
        for height in range(1, block_count + 1):
            txs = tuple(_sample_probe(sender, height - 1) for sender in senders)
            _, head_hash = store.head()
            parent = store.commitment(height - 1)
            assert parent is not None
            time_ms = TIME_MS + height * 1000
            block = make_block(CHAIN_ID, height, head_hash, txs, proposer.public_key, time_ms, parent)
            execution = ledger.execute_block(store, block, verified_tx_ids={tx.id for tx in txs})
            assert all(result.ok for result in execution.results), "every benchmark probe must apply"
            start = time.perf_counter()
            store.append_block(block, execution)
            elapsed += time.perf_counter() - start
    return block_count / elapsed, block_count * txs_per_block / elapsed


def main() -> int:
    started = time.perf_counter()
    print(
        f"p2pmed foundation benchmarks: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
        f" cryptography {cryptography.__version__}, {platform.machine()}"
    )
    print()
    print(f"{'operation':<44} {'iterations':>10} {'µs/op':>10}")
    print("-" * 66)
    for name, iterations, microseconds in measure_operations():
        print(f"{name:<44} {iterations:>10} {microseconds:>10.1f}")
    print()
    print(f"{'store append_block (WAL, synchronous=FULL)':<44} {'blocks':>6} {'blocks/s':>9} {'tx/s':>9}")
    print("-" * 71)
    for txs_per_block, block_count in STORE_RUNS:
        blocks_per_second, txs_per_second = measure_store(txs_per_block, block_count)
        label = f"{txs_per_block} load probe{'s' if txs_per_block > 1 else ''} per block"
        print(f"{label:<44} {block_count:>6} {blocks_per_second:>9.1f} {txs_per_second:>9.0f}")
    print()
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
