"""The machine's signature limit: the committed tx/s that Ed25519 verification alone allows.

Every node verifies every transaction's signature at least once, and on one
machine all the nodes share its cores, so no network of ``nodes`` processes here
can commit more than ``verifications per core-second x cores / nodes`` tx/s.
The benchmark compares its best committed throughput to that figure.

The per-core rate is a timed loop of ``crypto.verify`` (OpenSSL's Ed25519 via
``cryptography``) over pre-signed ``load.probe`` transactions' signing payloads:
the raw verification, with the payloads encoded beforehand. The loop is timed in
this process's CPU time, not wall time, so other programs busy on the machine
lower it little: it is what one core does when it runs us. The full per-transaction
check, ``Transaction.signature_is_valid()`` (which also re-encodes the payload),
is timed the same way and reported beside it, as information: the limit uses the
raw verification.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from p2pmed.client.load import sample_transactions
from p2pmed.crypto import SignatureDomain, verify

__all__ = ["SignatureLimit", "measure_signature_limit", "usable_cores"]

SAMPLE_TXS = 256
MEASURE_CPU_S = 0.5
"""CPU seconds spent on each of the two timed loops."""


@dataclass(frozen=True)
class SignatureLimit:
    verify_per_core_s: float
    signature_is_valid_per_core_s: float
    cores: int
    nodes: int

    @property
    def tx_per_s(self) -> float:
        return self.verify_per_core_s * self.cores / self.nodes

    def as_json(self) -> dict[str, object]:
        return {
            "method": "crypto.verify over pre-encoded signing payloads (Ed25519, OpenSSL via cryptography), "
            "timed in process CPU time",
            "verify_per_core_s": round(self.verify_per_core_s),
            "signature_is_valid_per_core_s": round(self.signature_is_valid_per_core_s),
            "cores": self.cores,
            "nodes": self.nodes,
            "tx_per_s": round(self.tx_per_s, 1),
        }


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), which its children inherit."""
    return len(os.sched_getaffinity(0))


def measure_signature_limit(nodes: int, measure_cpu_s: float = MEASURE_CPU_S) -> SignatureLimit:
    assert nodes >= 1 and measure_cpu_s > 0
    txs = sample_transactions("p2pmed-bench-limit", SAMPLE_TXS, random.Random(0))
    signed = [(tx.sender, tx.signature, tx.chain_id, tx.signing_payload()) for tx in txs]

    def raw(index: int) -> bool:
        sender, signature, chain_id, payload = signed[index]
        return verify(sender, signature, SignatureDomain.TRANSACTION, chain_id, payload)

    verify_rate = _per_cpu_second(raw, len(signed), measure_cpu_s)
    full_rate = _per_cpu_second(lambda index: txs[index].signature_is_valid(), len(txs), measure_cpu_s)
    return SignatureLimit(verify_rate, full_rate, usable_cores(), nodes)


def _per_cpu_second(check: Callable[[int], bool], count: int, cpu_s: float) -> float:
    """Calls of ``check`` per CPU second, cycling over ``count`` samples until ``cpu_s`` is spent."""
    calls = 0
    start = time.process_time()
    while (spent := time.process_time() - start) < cpu_s:
        for index in range(count):
            if not check(index):  # not an assert: under -O that would drop the call being timed
                raise RuntimeError("a pre-signed sample failed to verify")
        calls += count
    return calls / spent
