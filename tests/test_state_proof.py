"""State proofs end to end: a store of certified blocks makes them (``state.proof``), and
``verify_state_proof`` checks them offline with the validator set alone, refusing any
altered byte and naming what failed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from p2pmed import codec
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.messages import CommitCertificate, Vote, VoteKind, proposal_digest
from p2pmed.consensus.state_proof import ProofRefused, StateProof, decode_state_proof, verify_state_proof
from p2pmed.crypto import Ed25519Verifier, SigningKey
from p2pmed.ledger.block import make_block
from p2pmed.ledger.contracts.probe import TX_TYPES, Probe
from p2pmed.ledger.machine import Ledger
from p2pmed.ledger.state_tree import TreePath
from p2pmed.ledger.tx import sign_transaction
from p2pmed.node.state_proofs import ProofUnavailable, state_proof
from p2pmed.store import Store
from signing import signed

CHAIN = "p2pmed-proofs"
KEYS = [SigningKey.from_seed(bytes([index + 1]) * 32) for index in range(4)]
VALIDATORS = Validators(CHAIN, tuple(key.public_key for key in KEYS), Ed25519Verifier())
GENESIS = {f"genesis/{n}": f"value {n}".encode() for n in range(200)}
SENDER = SigningKey.from_seed(b"s" * 32)
NONCE_KEY = "nonce/" + SENDER.public_key.hex()


def certified_store(path: Path, blocks: int) -> Store:
    """A store of ``blocks`` blocks, each with one probe from SENDER and a quorum's certificate."""
    ledger = Ledger(CHAIN, TX_TYPES, GENESIS)
    store = Store.open(path, CHAIN, genesis_state=GENESIS)
    for height in range(1, blocks + 1):
        parent = store.commitment(height - 1)
        assert parent is not None
        tx = sign_transaction(SENDER, CHAIN, "load.probe", height - 1, Probe(f"p{height}"))
        block = make_block(CHAIN, height, store.head()[1], (tx,), KEYS[0].public_key, 1_000 * height, parent)
        digest = proposal_digest(block.header)
        votes = tuple(
            signed(Vote(VoteKind.COMMIT, 0, height, digest, replica, bytes(64)), KEYS[replica], CHAIN)
            for replica in range(VALIDATORS.quorum)
        )
        store.append_block(block, ledger.execute_block(store, block), codec.encode(CommitCertificate(votes)))
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return certified_store(tmp_path_factory.mktemp("proofs") / "chain.sqlite3", 5)


def test_a_present_key_is_proved_under_the_newest_certified_state(store: Store) -> None:
    proof = state_proof(store, "genesis/7", None)
    assert proof.value == b"value 7"
    state = verify_state_proof(decode_state_proof(codec.encode(proof)), VALIDATORS)
    assert (proof.header.height, state.height) == (5, 4), "the head block commits to the state after its parent"
    assert state == store.commitment(4)


def test_an_absent_key_is_proved_absent(store: Store) -> None:
    proof = state_proof(store, "genesis/never", None)
    assert proof.value is None
    verify_state_proof(proof, VALIDATORS)


def test_a_proof_at_an_older_height_shows_the_value_then(store: Store) -> None:
    old = state_proof(store, NONCE_KEY, 1)
    assert codec.decode(int, old.value or b"", 16) == 1 and old.header.height == 2
    assert verify_state_proof(old, VALIDATORS).height == 1
    absent = state_proof(store, NONCE_KEY, 0)
    assert absent.value is None and verify_state_proof(absent, VALIDATORS).height == 0


def test_a_state_no_certified_block_commits_to_yet_is_not_found(store: Store) -> None:
    for height in (5, 6, -1):
        with pytest.raises(ProofUnavailable, match="no certified block here commits to the state after block"):
            state_proof(store, "genesis/1", height)


def test_every_altered_byte_of_a_proof_is_refused(store: Store) -> None:
    encoded = codec.encode(state_proof(store, "genesis/3", None))
    for index in range(len(encoded)):
        altered = bytearray(encoded)
        altered[index] ^= 0x01
        with pytest.raises(ProofRefused):
            verify_state_proof(decode_state_proof(bytes(altered)), VALIDATORS)


def refusal(proof: StateProof) -> str:
    with pytest.raises(ProofRefused) as refused:
        verify_state_proof(proof, VALIDATORS)
    return str(refused.value)


def test_a_refusal_names_what_failed(store: Store) -> None:
    proof = state_proof(store, "genesis/3", None)
    assert proof.value is not None
    assert refusal(dataclasses.replace(proof, value=proof.value + b"!")).startswith("state root:")
    assert refusal(dataclasses.replace(proof, key="genesis/4")).startswith("state root:")
    assert refusal(dataclasses.replace(proof, value=None)).startswith("state root:")
    siblings = (bytes(32), *proof.path.siblings[1:])
    assert refusal(dataclasses.replace(proof, path=TreePath(siblings, b"", b""))).startswith("state root:")
    assert refusal(dataclasses.replace(proof, path=TreePath((b"x",), b"", b""))).startswith("proof path:")
    forged_state = dataclasses.replace(proof.header.state, state_root=bytes(32))
    forged = dataclasses.replace(proof, header=dataclasses.replace(proof.header, state=forged_state))
    assert refusal(forged).startswith("certificate:")
    short = CommitCertificate(proof.certificate.commits[:2])
    assert "needs 3" in refusal(dataclasses.replace(proof, certificate=short))
    other_chain = Validators("another-chain", VALIDATORS.keys, Ed25519Verifier())
    with pytest.raises(ProofRefused, match="certificate:"):
        verify_state_proof(proof, other_chain)


def test_a_proof_is_checked_against_the_set_of_its_blocks_epoch(store: Store) -> None:
    proof = state_proof(store, "genesis/3", None)
    later = Validators(CHAIN, VALIDATORS.keys, Ed25519Verifier(), None, epoch=1, first_height=2)
    with pytest.raises(ProofRefused, match="bad commit signature"):  # same keys, another epoch's signatures
        verify_state_proof(proof, later)
    not_yet = Validators(CHAIN, VALIDATORS.keys, Ed25519Verifier(), None, epoch=1, first_height=proof.header.height + 1)
    with pytest.raises(ProofRefused, match=f"block {proof.header.height} is before epoch 1"):
        verify_state_proof(proof, not_yet)


def test_garbage_is_refused_as_malformed() -> None:
    with pytest.raises(ProofRefused, match="malformed proof"):
        decode_state_proof(b"\xa0")
