"""Four validators' NodeCores (real Ed25519, real SQLite stores, the consent rules)
wired by an in-memory network: what the daemon will run, minus sockets and clocks."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from p2pmed import codec
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.messages import CommitCertificate
from p2pmed.consensus.replica import ReplicaConfig
from p2pmed.crypto import Ed25519Verifier, SigningKey
from p2pmed.ledger.contracts import ALL_TX_TYPES
from p2pmed.ledger.contracts.consent import ConsentGrant, valid_consent
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.machine import Ledger
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.node_core import NodeCore, Outgoing

CHAIN = "node-core-test"
STEP_MS = 5
FAR_FUTURE_MS = 4_102_444_800_000


class Network:
    def __init__(self, tmp_path: Path, n: int = 4) -> None:
        self.keys = [SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(n)]
        self.validators = Validators(CHAIN, tuple(key.public_key for key in self.keys), Ed25519Verifier())
        self.ledger = Ledger(CHAIN, ALL_TX_TYPES)
        self.paths = [tmp_path / f"node{i}.sqlite3" for i in range(n)]
        self.now = 1_000
        self.cores: list[NodeCore | None] = [self._open(i) for i in range(n)]
        self.in_flight: deque[tuple[int, int, bytes]] = deque()
        for index, core in enumerate(self.cores):
            assert core is not None
            self._queue(index, core.start())

    def _open(self, index: int) -> NodeCore:
        config = ReplicaConfig(checkpoint_interval=4, watermark_window=16)
        return NodeCore(self.paths[index], self.ledger, self.validators, self.keys[index], config, self.now)

    def _queue(self, source: int, outgoing: Outgoing) -> None:
        self.in_flight.extend((source, destination, data) for destination, data in outgoing)

    def submit_everywhere(self, tx: Transaction) -> None:
        for index, core in enumerate(self.cores):
            if core is not None:
                self._queue(index, core.submit(tx, self.now))

    def run(self, duration_ms: int) -> None:
        for _ in range(duration_ms // STEP_MS):
            while self.in_flight:
                source, destination, data = self.in_flight.popleft()
                core = self.cores[destination]
                if core is not None and self.cores[source] is not None:
                    self._queue(destination, core.receive(source, data, self.now))
            self.now += STEP_MS
            for index, core in enumerate(self.cores):
                if core is not None and core.next_deadline_ms() <= self.now:
                    self._queue(index, core.tick(self.now))

    def crash(self, index: int) -> None:
        core = self.cores[index]
        assert core is not None
        core.close()
        self.cores[index] = None

    def restart(self, index: int) -> None:
        core = self._open(index)
        self.cores[index] = core
        self._queue(index, core.start())

    def heads(self) -> list[tuple[int, bytes]]:
        return [core.store.head() for core in self.cores if core is not None]


def grant(patient: SigningKey, nonce: int, grantee: SigningKey) -> Transaction:
    body = ConsentGrant(grantee.public_key, ("laboratory",), "TREAT", FAR_FUTURE_MS)
    return sign_transaction(patient, CHAIN, "consent.grant", nonce, body)


@pytest.fixture
def network(tmp_path: Path):  # type: ignore[no-untyped-def]
    net = Network(tmp_path)
    yield net
    for core in net.cores:
        if core is not None:
            core.close()


def test_four_nodes_commit_consent_grants_into_identical_stores(network: Network) -> None:
    patient, hospitals = SigningKey.from_seed(b"p" * 32), [SigningKey.from_seed(bytes([70 + i]) * 32) for i in range(3)]
    for nonce, hospital in enumerate(hospitals):
        network.submit_everywhere(grant(patient, nonce, hospital))
    network.run(1_000)

    heads = network.heads()
    assert len(set(heads)) == 1 and heads[0][0] >= 1
    for core in network.cores:
        assert core is not None
        for hospital in hospitals:
            assert valid_consent(core.store, patient.public_key, hospital.public_key, "laboratory", network.now)


def test_a_stored_commit_certificate_lets_an_outsider_verify_each_block(network: Network) -> None:
    patient, hospital = SigningKey.from_seed(b"q" * 32), SigningKey.from_seed(b"h" * 32)
    network.submit_everywhere(grant(patient, 0, hospital))
    network.run(1_000)
    core = network.cores[2]
    assert core is not None
    height, _ = core.store.head()
    outsider = Validators(CHAIN, network.validators.keys, network.validators.verifier)
    previous = bytes(32)
    for number in range(1, height + 1):
        block, raw = core.store.block(number), core.store.certificate(number)
        assert block is not None and raw is not None
        certificate = codec.decode(CommitCertificate, raw, codec.BLOCK_SIZE_MAX)
        outsider.check_committed_block(block, certificate, previous)
        previous = block.hash


def test_a_crashed_node_restarts_from_its_store_and_catches_up(network: Network) -> None:
    patient, hospital = SigningKey.from_seed(b"r" * 32), SigningKey.from_seed(b"s" * 32)
    network.submit_everywhere(grant(patient, 0, hospital))
    network.run(500)
    network.crash(3)
    for nonce in range(1, 8):
        network.submit_everywhere(grant(patient, nonce, SigningKey.from_seed(bytes([100 + nonce]) * 32)))
        network.run(300)
    network.restart(3)
    network.run(2_000)

    heads = network.heads()
    assert len(heads) == 4 and len(set(heads)) == 1
    restarted = network.cores[3]
    assert restarted is not None and len(restarted.store.transactions_by_sender(patient.public_key)) == 8


def test_a_transaction_with_a_bad_signature_is_refused_on_submit(network: Network) -> None:
    tx = grant(SigningKey.from_seed(b"t" * 32), 0, SigningKey.from_seed(b"u" * 32))
    forged = Transaction(tx.type, tx.chain_id, tx.sender, tx.nonce, tx.body, bytes(64))
    core = network.cores[1]
    assert core is not None
    with pytest.raises(TxRejected) as raised:
        core.submit(forged, network.now)
    assert raised.value.reason is RejectReason.BAD_SIGNATURE
    assert core.replica.pending_count == 0
