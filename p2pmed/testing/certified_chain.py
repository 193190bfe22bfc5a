"""A long certified chain made without running consensus: for tests and measurements of block
sync that need thousands of blocks before a node starts (a live network makes one a second
when idle).

Every block is what the validators would have committed in view 0: proposed by validator
0, each carrying ``txs_per_block`` load probes, dated one millisecond apart and ending
before ``end_ms``, with a commit certificate of a quorum of the validators' signatures. The
chain is executed with the ledger into the first home's store, with a stable checkpoint at
its head (a quorum's signed checkpoints, as PBFT keeps it), and the store copied to the
others, so the validators start at its head and carry on from there: without the
checkpoint their log window would still start at 0, and nothing past it could be proposed.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from p2pmed import codec
from p2pmed.client.load import sample_transactions
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.messages import (
    Checkpoint,
    CommitCertificate,
    Vote,
    VoteKind,
    proposal_digest,
    signing_payload,
)
from p2pmed.consensus.replica import StableRecord
from p2pmed.crypto import Ed25519Verifier, SigningKey
from p2pmed.ledger.block import make_block
from p2pmed.ledger.contracts import ALL_TX_TYPES
from p2pmed.ledger.machine import Ledger
from p2pmed.ledger.tx import Transaction
from p2pmed.site.home import load_home
from p2pmed.store import Store

__all__ = ["write_certified_chain"]


def write_certified_chain(
    homes: list[Path],
    blocks: int,
    end_ms: int,
    txs_per_block: int = 1,
    seed: int = 0,
    txs: Sequence[Transaction] | None = None,
) -> None:
    """Write ``blocks`` certified blocks into the stores of ``homes``: validators' homes of one
    network, none running, with empty stores. ``blocks`` is a multiple of the checkpoint interval.
    The blocks carry ``txs`` if given, else load probes from ``seed``."""
    loaded = [load_home(home) for home in homes]
    genesis = loaded[0].genesis
    assert blocks % loaded[0].config.checkpoint_interval == 0, "the head is a checkpoint"
    keys: dict[bytes, SigningKey] = {home.key.public_key: home.key for home in loaded}
    validators = Validators(genesis.chain_id, genesis.validator_keys, Ed25519Verifier())
    signers = [keys[key] for key in genesis.validator_keys[: validators.quorum]]
    ledger = Ledger(genesis.chain_id, ALL_TX_TYPES, genesis.ledger_state())
    if txs is None:
        txs = sample_transactions(genesis.chain_id, blocks * txs_per_block, random.Random(seed))
    first = loaded[0].store_path
    with Store.open(first, genesis.chain_id, genesis.hash, ledger.genesis_state) as store:
        assert store.head()[0] == 0, "the stores must be empty"
        previous_hash = store.head()[1]
        for height in range(1, blocks + 1):
            chosen = tuple(txs[(height - 1) * txs_per_block : height * txs_per_block])
            time_ms = end_ms - (blocks - height) - 1
            parent = store.commitment(height - 1)
            assert parent is not None
            proposer = genesis.validator_keys[0]
            block = make_block(genesis.chain_id, height, previous_hash, chosen, proposer, time_ms, parent)
            certificate = _certificate(genesis.chain_id, signers, height, proposal_digest(block.header))
            store.append_block(block, ledger.execute_block(store, block), codec.encode(certificate))
            previous_hash = block.hash
        proof = tuple(
            _signed(Checkpoint(blocks, previous_hash, replica, bytes(64)), key, genesis.chain_id)
            for replica, key in enumerate(signers)
        )
        store.consensus_put({"stable": codec.encode(StableRecord(blocks, proof))})
    for home in loaded[1:]:
        shutil.copyfile(first, home.store_path)


def _certificate(chain_id: str, signers: list[SigningKey], height: int, digest: bytes) -> CommitCertificate:
    return CommitCertificate(
        tuple(
            _signed(Vote(VoteKind.COMMIT, 0, height, digest, replica, bytes(64)), key, chain_id)
            for replica, key in enumerate(signers)
        )
    )


Signed = TypeVar("Signed", Vote, Checkpoint)


def _signed(unsigned: Signed, key: SigningKey, chain_id: str) -> Signed:
    return dataclasses.replace(unsigned, signature=key.sign(unsigned.domain, chain_id, signing_payload(unsigned)))
