"""Compliance report bundles: how fast entries are proved and checked, and how many bytes each adds.

Run ``python benchmarks/report_bundle.py``. It builds a store whose genesis state has
``STATE_KEYS`` filler keys, a genesis validator set and one patient's ``ENTRIES`` audit
entries (with their count), appends one certified block, and times, median of ``RUNS``:

- making the bundle (``report_proof``: one tree path per entry, read from SQLite) and its
  JSON (``bundle_document``);
- checking it from genesis (``load_bundle``: strict JSON, one certificate, a path per
  entry, and the readable fields compared with what the proofs say).

It prints entries per second for both, and the bytes an entry adds to the JSON beside the
bytes of one ``audit.proof`` answer's proof (a whole ``StateProof``, header and certificate
each time): the reason a bundle proves every entry against one shared certified block.
It asserts nothing about speed.
"""

from __future__ import annotations

import dataclasses
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from p2pmed import codec
from p2pmed.consensus.messages import CommitCertificate, Vote, VoteKind, proposal_digest, signing_payload
from p2pmed.consensus.report_bundle import bundle_document, load_bundle
from p2pmed.consensus.state_proof import StateProof
from p2pmed.crypto import Ed25519Verifier, EncryptionPrivateKey, SigningKey
from p2pmed.ledger.block import make_block
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.contracts.audit import AuditEntry, count_key, entry_key
from p2pmed.ledger.machine import BlockExecution
from p2pmed.node.api.report import report_proof
from p2pmed.store import Store

CHAIN_ID = "p2pmed-bench-report"
STATE_KEYS = 100_000
ENTRIES = 1_000
RUNS = 5
KEYS = [SigningKey.from_seed(bytes([index + 1]) * 32) for index in range(4)]
PATIENT = SigningKey.from_seed(b"p" * 32).public_key


def _genesis(rng: random.Random) -> dict[str, bytes]:
    state = {f"key/{n:08d}": rng.randbytes(64) for n in range(STATE_KEYS)}
    encryption = EncryptionPrivateKey.generate().public_key
    profiles = [
        membership.ValidatorProfile(key.public_key, key.public_key, "/ip4/127.0.0.1", encryption) for key in KEYS
    ]
    state |= membership.genesis_state(profiles)
    for number in range(ENTRIES):
        tx_id = rng.randbytes(32)
        entry = AuditEntry(
            "record-read", PATIENT, rng.randbytes(32), rng.randbytes(32), "laboratory", "TREAT", "", number, 0, tx_id
        )
        state[entry_key("patient", PATIENT, 0, tx_id)] = codec.encode(entry)
    state[count_key("patient", PATIENT)] = codec.encode(ENTRIES)
    return state


def _certified_block(store: Store) -> None:
    parent = store.commitment(0)
    assert parent is not None
    block = make_block(CHAIN_ID, 1, store.head()[1], (), KEYS[0].public_key, 1_000, parent)
    votes = []
    for replica in range(3):
        vote = Vote(VoteKind.COMMIT, 0, 1, proposal_digest(block.header), replica, bytes(64))
        signature = KEYS[replica].sign(vote.domain, CHAIN_ID, signing_payload(vote))
        votes.append(dataclasses.replace(vote, signature=signature))
    store.append_block(block, BlockExecution((), {}, 1_000), codec.encode(CommitCertificate(tuple(votes))))


def main() -> None:
    rng = random.Random(1)
    genesis_keys = tuple(key.public_key for key in KEYS)
    with tempfile.TemporaryDirectory(prefix="p2pmed-bench-") as scratch:
        store = Store.open(Path(scratch) / "report.sqlite3", CHAIN_ID, genesis_state=_genesis(rng))
        _certified_block(store)
        make_s, verify_s = [], []
        for _ in range(RUNS):
            start = time.perf_counter()
            proof = report_proof(store, "patient", PATIENT, 0, None)
            data = json.dumps(bundle_document(proof)).encode()
            make_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            report = load_bundle(data, CHAIN_ID, genesis_keys, Ed25519Verifier())
            verify_s.append(time.perf_counter() - start)
        assert report.proof.complete and len(report.entries) == ENTRIES
        first = proof.entries[0]
        whole = StateProof(first.key, first.value, first.path, proof.header, proof.certificate)
        entry_json = len(json.dumps(bundle_document(proof)["entries"][0]))
        paths = statistics.median(len(codec.encode(entry.path)) for entry in proof.entries)
        store.close()
    print(
        f"a bundle of {ENTRIES:,} audit entries in a state of {STATE_KEYS:,} keys: {len(data) / 1024:,.0f} KiB of JSON,"
        f" {len(data) / ENTRIES:,.0f} bytes an entry (its JSON {entry_json} bytes: readable fields, value and a"
        f" {paths:.0f}-byte tree path, in hex)"
    )
    print(
        f"make: {statistics.median(make_s) * 1000:,.0f} ms, {ENTRIES / statistics.median(make_s):,.0f} entries/s;"
        f" verify from genesis: {statistics.median(verify_s) * 1000:,.0f} ms,"
        f" {ENTRIES / statistics.median(verify_s):,.0f} entries/s (median of {RUNS})"
    )
    print(
        f"one entry's proof alone: {len(codec.encode(first.path)) + len(first.value or b''):,} bytes (path and value)"
        f" in a bundle, {len(codec.encode(whole)):,} bytes as a whole StateProof (audit.proof), with its own header"
        " and certificate"
    )


if __name__ == "__main__":
    main()
