"""The state root's cost: tree update per block and proof size, for a state of 100,000 keys.

Run ``python benchmarks/state_root.py``. It builds a store whose genesis state has
``STATE_KEYS`` keys (values of 64 bytes), then appends empty blocks whose execution
changes ``k`` keys each (half updates of existing keys, half new keys) and prints, per
``k``: the median time of the tree update alone (``state_tree.update`` reading the
store's node records: the cost the state root adds to executing a block), and of the
whole ``append_block`` (block, tree records, undo rows and commitment in one fsynced
SQLite transaction). Then, for 1,000 keys: the median proof size (encoded
``StateProof``, of which the tree path), the time to make one from the store and to
verify one (3 Ed25519 signatures dominate). It asserts nothing about speed.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import tempfile
import time
from pathlib import Path

from p2pmed import codec
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.messages import (
    CommitCertificate,
    Vote,
    VoteKind,
    proposal_digest,
    proposal_header,
    signing_payload,
)
from p2pmed.consensus.state_proof import StateProof, verify_state_proof
from p2pmed.crypto import Ed25519Verifier, SigningKey
from p2pmed.ledger.block import make_block
from p2pmed.ledger.machine import BlockExecution
from p2pmed.ledger.state_tree import update
from p2pmed.store import Store

CHAIN_ID = "p2pmed-bench-state"
STATE_KEYS = 100_000
VALUE_SIZE = 64
CHANGED_KEYS = (10, 100, 1_000)
BLOCKS_PER_RUN = 20
PROOFS = 1_000
KEYS = [SigningKey.from_seed(bytes([index + 1]) * 32) for index in range(4)]
VALIDATORS = Validators(CHAIN_ID, tuple(key.public_key for key in KEYS), Ed25519Verifier())


def _certificate(height: int, digest: bytes) -> CommitCertificate:
    votes = []
    for replica in range(VALIDATORS.quorum):
        vote = Vote(VoteKind.COMMIT, 0, height, digest, replica, bytes(64))
        signature = KEYS[replica].sign(vote.domain, CHAIN_ID, signing_payload(vote))
        votes.append(dataclasses.replace(vote, signature=signature))
    return CommitCertificate(tuple(votes))


def _append(store: Store, changes: dict[str, bytes | None]) -> float:
    """Append an empty block whose execution makes ``changes``; the seconds it took."""
    height, head_hash = store.head()
    parent = store.commitment(height)
    assert parent is not None
    block = make_block(CHAIN_ID, height + 1, head_hash, (), KEYS[0].public_key, 1_000 * (height + 1), parent)
    certificate = codec.encode(_certificate(block.height, proposal_digest(block.header)))
    start = time.perf_counter()
    store.append_block(block, BlockExecution((), changes, block.header.time_ms), certificate)
    return time.perf_counter() - start


def _changes(rng: random.Random, count: int, fresh: list[int]) -> dict[str, bytes | None]:
    changes: dict[str, bytes | None] = {}
    for index in range(count):
        if index % 2:
            fresh[0] += 1
            changes[f"key/{fresh[0]:08d}"] = rng.randbytes(VALUE_SIZE)
        else:
            changes[f"key/{rng.randrange(STATE_KEYS):08d}"] = rng.randbytes(VALUE_SIZE)
    return changes


def main() -> None:
    rng = random.Random(1)
    genesis = {f"key/{n:08d}": rng.randbytes(VALUE_SIZE) for n in range(STATE_KEYS)}
    with tempfile.TemporaryDirectory(prefix="p2pmed-bench-") as scratch:
        start = time.perf_counter()
        store = Store.open(Path(scratch) / "state.sqlite3", CHAIN_ID, genesis_state=genesis)
        print(f"genesis of {STATE_KEYS:,} keys: tree built in {time.perf_counter() - start:.2f} s")
        fresh = [STATE_KEYS]
        print(f"{'keys changed/block':>18} {'tree update (ms)':>17} {'append_block (ms)':>18}")
        for count in CHANGED_KEYS:
            updates, appends = [], []
            for _ in range(BLOCKS_PER_RUN):
                changes = _changes(rng, count, fresh)
                height = store.head()[0]
                start = time.perf_counter()
                update(store, store._root(height), changes)
                updates.append(time.perf_counter() - start)
                appends.append(_append(store, changes))
            print(f"{count:>18,} {statistics.median(updates) * 1000:>17.2f} {statistics.median(appends) * 1000:>18.2f}")
        _append(store, {})  # a block that certifies the state the proofs are of
        _proofs(store, rng, fresh[0])
        store.close()


def _proofs(store: Store, rng: random.Random, keys: int) -> None:
    block = store.block(store.head()[0])
    encoded = store.certificate(store.head()[0])
    assert block is not None and encoded is not None
    certificate = codec.decode(CommitCertificate, encoded, codec.BLOCK_SIZE_MAX)
    sizes, paths, depths, make_s, verify_s = [], [], [], [], []
    for _ in range(PROOFS):
        key = f"key/{rng.randrange(keys):08d}"
        start = time.perf_counter()
        value, path = store.state_path(key, block.header.state.height)
        proof = StateProof(key, value, path, proposal_header(block.header), certificate)
        make_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        verify_state_proof(proof, VALIDATORS)
        verify_s.append(time.perf_counter() - start)
        sizes.append(len(codec.encode(proof)))
        paths.append(len(codec.encode(path)))
        depths.append(len(path.siblings))
    print(
        f"proofs of {PROOFS:,} keys in a state of {keys:,}: median {statistics.median(sizes):,.0f} bytes"
        f" (tree path {statistics.median(paths):,.0f} bytes, {statistics.median(depths):.0f} siblings,"
        f" deepest {max(depths)}; value {VALUE_SIZE} bytes, the rest header and 3-vote certificate);"
        f" make {statistics.median(make_s) * 1000:.2f} ms, verify {statistics.median(verify_s) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
