"""What a full mempool's eviction of a stuck transaction costs, per admission.

Run ``python benchmarks/mempool_evict.py``. It fills a mempool of ``size_max`` 5,000
with transactions stuck behind a missing nonce, then times the admission of
transactions that are their sender's next nonce (so consensus could order them at
once): each finds the mempool full and evicts one stuck transaction first. It prints
the median over ``ROUNDS`` rounds (a fresh full mempool each) of the microseconds per
admission, for two fillings:

- *many senders*: 5,000 senders with one stuck transaction each (nonce 1, nonce 0
  missing), as after an overload refused their first transactions;
- *few senders*: 6 senders with up to ``ahead_max - 1`` (999, nonces 1 to 999) stuck
  transactions each, as any registered sender can do on purpose.

Every transaction is signed before the clock starts (signing costs far more than
what is measured). It asserts nothing about speed.
"""

from __future__ import annotations

import statistics
import time

from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.node.mempool import Mempool

CHAIN_ID = "p2pmed-bench-mempool"
SIZE_MAX = 5_000
AHEAD_MAX = 1_000
ADMISSIONS = 1_000
ROUNDS = 5


def _key(index: int) -> SigningKey:
    return SigningKey.from_seed(index.to_bytes(32, "big"))


def _sign(key: SigningKey, nonce: int) -> Transaction:
    return sign_transaction(key, CHAIN_ID, "load.probe", nonce, Probe("evict"))


def _per_admission_us(stuck: list[Transaction], admitted: list[Transaction]) -> float:
    """Median over rounds of the microseconds one admission of ``admitted`` takes in a
    mempool filled with ``stuck``."""
    rounds = []
    for _ in range(ROUNDS):
        pool = Mempool(size_max=SIZE_MAX, ahead_max=AHEAD_MAX)
        for tx in stuck:
            assert pool.add(tx, 0) == []
        start = time.perf_counter()
        for tx in admitted:
            pool.add(tx, 0)
        rounds.append((time.perf_counter() - start) / len(admitted))
        assert len(pool) == SIZE_MAX and all(tx.id in pool for tx in admitted)
    return statistics.median(rounds) * 1e6


def main() -> None:
    start = time.perf_counter()
    admitted = [_sign(_key(SIZE_MAX + index), 0) for index in range(ADMISSIONS)]
    many = [_sign(_key(index), 1) for index in range(SIZE_MAX)]
    few = [_sign(_key(index // (AHEAD_MAX - 1)), 1 + index % (AHEAD_MAX - 1)) for index in range(SIZE_MAX)]
    print(f"signed {len(admitted) + len(many) + len(few):,} transactions in {time.perf_counter() - start:.1f} s")
    print(f"{ADMISSIONS:,} admissions into a full mempool of {SIZE_MAX:,}, each evicting a stuck transaction:")
    fillings = {
        f"many senders ({len(many):,} x 1 stuck)": many,
        f"few senders ({len({tx.sender for tx in few})} x up to {AHEAD_MAX - 1:,} stuck)": few,
    }
    for name, stuck in fillings.items():
        print(f"  {name:<34} {_per_admission_us(stuck, admitted):8.1f} µs per admission")


if __name__ == "__main__":
    main()
