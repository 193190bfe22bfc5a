"""Validator set changes on real NodeCores (Ed25519, SQLite, the ledger) over an in-memory
network: a site voted in syncs as an outsider and then orders blocks, a removed validator
stops voting, a rotated key takes over, and every block verifies against its epoch's set."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.ledger_harness import DictState

from p2pmed import codec
from p2pmed.consensus.certificates import InvalidMessage, Validators
from p2pmed.consensus.light_client import check_next, validators_at
from p2pmed.consensus.messages import BlockWithCertificate, CommitCertificate, Vote, VoteKind
from p2pmed.consensus.replica import ReplicaConfig
from p2pmed.consensus.state_proof import ProofRefused, verify_state_proof
from p2pmed.crypto import Ed25519Verifier, SigningKey
from p2pmed.ledger.block import GENESIS_PARENT_HASH, STATE_LAG_MAX
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.contracts.membership import ValidatorChange, ValidatorJoin, ValidatorProfile
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.node.core import NodeCore
from p2pmed.node.state_proofs import certifying_epoch, state_proof
from p2pmed.testing.local_network import LocalNetwork
from signing import signed

CHAIN = "epochs-test"
CONFIG = ReplicaConfig(checkpoint_interval=4, watermark_window=16, batch_delay_ms=5)
SENDER = SigningKey.from_seed(b"s" * 32)


class Client:
    def __init__(self, network: LocalNetwork) -> None:
        self.network = network
        self.nonces: dict[bytes, int] = {}

    def submit(self, signer: SigningKey, tx_type: str, body: object) -> Transaction:
        nonce = self.nonces.get(signer.public_key, 0)
        self.nonces[signer.public_key] = nonce + 1
        tx = sign_transaction(signer, CHAIN, tx_type, nonce, body)
        self.network.submit_everywhere(tx)
        return tx

    def vote(self, change: ValidatorChange, voters: list[int]) -> None:
        for index in voters:
            self.submit(self.network.keys[index], "validator.change", change)


def join(network: LocalNetwork, index: int, organisation: bytes) -> ValidatorJoin:
    key = network.keys[index]
    profile = ValidatorProfile(
        key.public_key, organisation, f"/ip4/127.0.0.1/tcp/{27000 + index}", network.encryption_key(index).public_key
    )
    return ValidatorJoin(profile, membership.sign_join(key, profile, CHAIN))


def live(network: LocalNetwork) -> list[NodeCore]:
    return [core for core in network.cores if core is not None]


def run_until(network: LocalNetwork, done: object, limit_ms: int = 30_000) -> None:
    for _ in range(limit_ms // 100):
        if done():  # type: ignore[operator]
            return
        network.run(100)
    raise AssertionError("the network did not get there in time")


def epoch_of(core: NodeCore) -> int:
    return core.validators.epoch


def check_whole_chain(core: NodeCore, genesis_state: dict[str, bytes]) -> None:
    """Replay the stored chain from genesis as a light client: each block's certificate
    against the set its epoch had, read from the state the blocks before it built."""
    state = DictState()
    state.apply(genesis_state)
    previous_hash = GENESIS_PARENT_HASH
    for height in range(1, core.store.head()[0] + 1):
        block, certificate = core.store.block(height), core.store.certificate(height)
        assert block is not None and certificate is not None
        item = BlockWithCertificate(block, codec.decode(CommitCertificate, certificate, codec.BLOCK_SIZE_MAX))
        check_next(validators_at(state, height, CHAIN, Ed25519Verifier()), height - 1, previous_hash, item)
        state.apply(core.ledger.execute_block(state, block).changes)
        previous_hash = block.hash


@pytest.fixture
def network(tmp_path: Path):  # type: ignore[no-untyped-def]
    net = LocalNetwork(tmp_path, CHAIN, config=CONFIG, joiners=2)
    yield net
    net.close()


def head_proposers(core: NodeCore, first: int) -> set[bytes]:
    height = core.store.head()[0]
    return {core.store.block(number).header.proposer for number in range(first, height + 1)}  # type: ignore[union-attr]


def test_a_site_voted_in_takes_part_from_its_epoch_and_a_removed_one_stops(network: LocalNetwork) -> None:
    client = Client(network)
    newcomer, removed = 4, 3
    assert all(core.replica is None for core in live(network)[4:])
    change = ValidatorChange(remove=(network.key(removed),), join=(join(network, newcomer, network.key(0)),))
    client.vote(change, [0, 1, 2])
    genesis = live(network)[0]
    run_until(network, lambda: membership.latest_epoch(genesis.store).number == 1)  # type: ignore[union-attr]
    first = membership.latest_epoch(genesis.store).first_height  # type: ignore[union-attr]
    run_until(network, lambda: all(epoch_of(core) == 1 for core in live(network)))
    new, gone, bystander = network.cores[newcomer], network.cores[removed], network.cores[5]
    assert new is not None and new.replica is not None
    assert gone is not None and gone.replica is None and bystander is not None and bystander.replica is None
    network.crash(1)  # of the new set {0, 1, 2, newcomer}, the three left must include the newcomer
    sent = [client.submit(SENDER, "load.probe", Probe(f"after {count}")) for count in range(10)]
    run_until(network, lambda: all(core.store.transaction(sent[-1].id) is not None for core in live(network)))
    assert len({core.store.head() for core in live(network)}) == 1
    assert network.key(removed) not in head_proposers(genesis, first)
    for core in live(network):
        check_whole_chain(core, dict(network.ledger.genesis_state))


def test_a_new_epoch_commits_to_the_old_epochs_state_and_certifies_proofs_with_its_own_set(
    network: LocalNetwork,
) -> None:
    client = Client(network)
    client.vote(ValidatorChange(remove=(network.key(3),), join=(join(network, 4, network.key(0)),)), [0, 1, 2])
    run_until(network, lambda: all(epoch_of(core) == 1 for core in live(network)))
    for count in range(2):  # the second block certifies the state after the first
        sent = client.submit(SENDER, "load.probe", Probe(f"in epoch 1, {count}"))
        run_until(network, lambda sent=sent: all(core.store.transaction(sent.id) is not None for core in live(network)))
    core = live(network)[0]
    first = core.validators.first_height
    block = core.store.block(first)
    assert block is not None
    state = block.header.state
    assert first - STATE_LAG_MAX <= state.height < first and state == core.store.commitment(state.height)
    proof = state_proof(core.store, "nonce/" + SENDER.public_key.hex(), None)
    assert proof.header.state.height >= first and proof.value is not None
    epoch = certifying_epoch(core.store, proof.header.height)
    assert (epoch.number, epoch.first_height, epoch.keys) == (1, first, core.validators.keys)
    verify_state_proof(proof, validators_at(core.store, proof.header.height, CHAIN, Ed25519Verifier()))
    with pytest.raises(ProofRefused, match="certificate:"):
        verify_state_proof(proof, network.validators)


def test_two_of_four_replaced_one_after_the_other_under_load(network: LocalNetwork) -> None:
    client = Client(network)
    genesis = live(network)[0]
    for step, (leaving, joining) in enumerate([(3, 4), (2, 5)], start=1):
        voters = [index for index in range(6) if network.cores[index].replica is not None][:3]  # type: ignore[union-attr]
        client.vote(
            ValidatorChange(remove=(network.key(leaving),), join=(join(network, joining, network.key(0)),)), voters
        )
        for count in range(5):
            client.submit(SENDER, "load.probe", Probe(f"during {step}.{count}"))
        run_until(network, lambda step=step: all(epoch_of(core) == step for core in live(network)))
    assert [core.replica is not None for core in live(network)] == [True, True, False, False, True, True]
    sent = client.submit(SENDER, "load.probe", Probe("last"))
    run_until(network, lambda: all(core.store.transaction(sent.id) is not None for core in live(network)))
    assert len({core.store.head() for core in live(network)}) == 1
    for core in live(network):
        check_whole_chain(core, dict(network.ledger.genesis_state))
    assert genesis.store.transactions_by_sender(SENDER.public_key)[-1].reject_reason is None


def test_a_validator_down_across_the_change_catches_up_into_the_new_epoch(network: LocalNetwork) -> None:
    client = Client(network)
    network.crash(2)
    client.vote(ValidatorChange(join=(join(network, 4, network.key(0)),)), [0, 1, 3])
    run_until(network, lambda: epoch_of(network.cores[0]) == 1)  # type: ignore[arg-type]
    sent = client.submit(SENDER, "load.probe", Probe("while 2 was down"))
    run_until(network, lambda: network.cores[0].store.transaction(sent.id) is not None)  # type: ignore[union-attr]
    network.restart(2)  # its consensus records are of epoch 0; blocks of both epochs come by state transfer
    restarted = network.cores[2]
    assert restarted is not None
    run_until(network, lambda: restarted.store.transaction(sent.id) is not None)
    assert epoch_of(restarted) == 1 and restarted.replica is not None
    assert dict(restarted.store.consensus_items()).get("epoch") == codec.encode(1)
    check_whole_chain(restarted, dict(network.ledger.genesis_state))


def test_a_vote_signed_in_one_epoch_counts_in_no_other(network: LocalNetwork) -> None:
    """Two epochs with the same keys in the same places still refuse each other's votes."""
    keys = tuple(network.key(index) for index in range(4))
    epoch0 = Validators(CHAIN, keys, Ed25519Verifier())
    epoch1 = Validators(CHAIN, keys, Ed25519Verifier(), None, 1, 200)
    vote = Vote(VoteKind.COMMIT, 0, 250, bytes(32), 1, bytes(64))
    signed0 = signed(vote, network.keys[1], epoch0.signing_context)
    epoch0.check_signed(signed0)
    with pytest.raises(InvalidMessage, match="bad commit signature"):
        epoch1.check_signed(signed0)
    epoch1.check_signed(signed(vote, network.keys[1], epoch1.signing_context))
    with pytest.raises(InvalidMessage, match="before epoch 1"):
        epoch1.check_checkpoint_proof(100, ())


@pytest.mark.parametrize(
    ("removed", "down"), [(0, 2), (3, 3)], ids=["indices-shift-under-it", "it-was-voted-out-meanwhile"]
)
def test_a_validator_down_across_the_end_of_its_epoch_catches_up_from_peers_that_moved_on(
    network: LocalNetwork, removed: int, down: int
) -> None:
    """Found by the simulator: a node that restarts in an epoch the others have left asks them
    for blocks as the validator it was then; with validator 0 gone every index shifted (its
    fetch was refused as relayed), a node voted out is no peer of theirs at all (refused as a
    stranger), so it never reached the end of its epoch. Their hosts now answer such fetches."""
    client = Client(network)
    network.crash(down)
    client.vote(ValidatorChange(remove=(network.key(removed),)), [index for index in range(4) if index != down])
    run_until(network, lambda: epoch_of(network.cores[1]) == 1)  # type: ignore[arg-type]
    sent = client.submit(SENDER, "load.probe", Probe("while it was down"))
    run_until(network, lambda: network.cores[1].store.transaction(sent.id) is not None)  # type: ignore[union-attr]
    network.restart(down)
    restarted = network.cores[down]
    assert restarted is not None
    run_until(network, lambda: restarted.store.transaction(sent.id) is not None)
    assert epoch_of(restarted) == 1 and (restarted.replica is None) == (down == removed)
    check_whole_chain(restarted, dict(network.ledger.genesis_state))
