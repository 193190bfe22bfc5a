"""What a run on real processes sends: a mix of transaction kinds, each valid under the
ledger's rules, all signed from the seed before the clock starts.

- ``probe``: ``load.probe`` from throwaway keys;
- ``consent``: a registered patient grants site 1 access to one data category for
  treatment (a later grant for the same category and purpose renews the earlier,
  so every one of them passes);
- ``record``: a registered patient anchors a self-reported record (a site would
  need a care relationship first, ``policy``), custodians 2f+1 validators taking
  turns, any f+1 of whose key shares open it (the ciphertext itself is never sent: a run measures ordering, and
  custodians have nothing to check until someone stores it);
- ``supply``: a site records a scan of a pack nobody commissioned (an alert).

Patients must exist first, so the workload comes with ``setup``: site 0 (a hospital
in force from genesis) registers them, and the harness commits that before the
clock starts. A sender's transactions must commit in nonce order, so each kind
spreads its transactions over several senders: ``SENDER_TXS_MAX`` per throwaway key
or patient, round robin over the sites for scans.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from p2pmed.crypto import SEAL_OVERHEAD, EncryptionPrivateKey, Kem, SigningKey, padme
from p2pmed.ledger.contracts.consent import CATEGORIES, ConsentGrant
from p2pmed.ledger.contracts.identity import PersonRegister
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.contracts.records import RecordAdd
from p2pmed.ledger.contracts.supply import SupplyVerify
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.quorum import fault_tolerance

__all__ = ["SENDER_TXS_MAX", "Workload", "build_workload"]

SENDER_TXS_MAX = 50
FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01
SCANNED_GTIN = "10614141073464"


@dataclass(frozen=True)
class Workload:
    setup: list[Transaction]
    """To commit, in order, before the run starts."""
    txs: list[Transaction]
    """The run's transactions, in the order they are sent."""


class _Signer:
    """Signs each sender's transactions with consecutive nonces."""

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        self.nonces: Counter[bytes] = Counter()

    def sign(self, key: SigningKey, tx_type: str, body: Any) -> Transaction:
        tx = sign_transaction(key, self.chain_id, tx_type, self.nonces[key.public_key], body)
        self.nonces[key.public_key] += 1
        return tx


def build_workload(
    chain_id: str, count: int, mix: tuple[tuple[str, float], ...], sites: list[SigningKey], rng: random.Random
) -> Workload:
    """``count`` transactions, kinds drawn from ``mix`` by ``rng``; ``sites`` are the genesis
    validators' keys in genesis order (they are organisations in force from height 0)."""
    kinds = [kind for kind, _ in mix]
    drawn = rng.choices(kinds, weights=[weight for _, weight in mix], k=count)
    signer = _Signer(chain_id)
    probes = [SigningKey.from_seed(rng.randbytes(32)) for _ in range(_senders(drawn.count("probe")))]
    patients = [
        SigningKey.from_seed(rng.randbytes(32)) for _ in range(_senders(drawn.count("consent") + drawn.count("record")))
    ]
    setup = [
        signer.sign(
            sites[0],
            "identity.person.register",
            PersonRegister(
                patient.public_key, "patient", EncryptionPrivateKey(Kem.X25519, rng.randbytes(32)).public_key
            ),
        )
        for patient in patients
    ]
    faulty = fault_tolerance(len(sites))
    custodians = 2 * faulty + 1
    categories = sorted(CATEGORIES)
    used: Counter[str] = Counter()
    txs = []
    for kind in drawn:
        number = used[kind]
        used[kind] += 1
        if kind == "probe":
            txs.append(signer.sign(probes[number % len(probes)], "load.probe", Probe(f"load {number}")))
        elif kind == "consent":
            grant = ConsentGrant(
                patients[number % len(patients)].public_key,
                sites[1 % len(sites)].public_key,
                (rng.choice(categories),),
                ("TREAT",),
                FAR_FUTURE_MS,
            )
            txs.append(signer.sign(patients[number % len(patients)], "consent.grant", grant))
        elif kind == "record":
            first, patient = number % len(sites), patients[number % len(patients)]
            anchor = RecordAdd(
                rng.randbytes(32),
                patient.public_key,
                rng.choice(categories),
                rng.randbytes(32),
                padme(rng.randint(100, 10_000)) + SEAL_OVERHEAD,
                tuple(sites[(first + i) % len(sites)].public_key for i in range(custodians)),
                faulty + 1,
                tuple(rng.randbytes(32) for _ in range(custodians)),
            )
            txs.append(signer.sign(patient, "record.add", anchor))
        else:
            txs.append(
                signer.sign(
                    sites[number % len(sites)],
                    "supply.verify",
                    SupplyVerify(SCANNED_GTIN, f"X{number}", "L1", "2099-12-31"),
                )
            )
    return Workload(setup, txs)


def _senders(count: int) -> int:
    return -(-count // SENDER_TXS_MAX) if count else 0
