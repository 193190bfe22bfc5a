"""An in-process network of real validators (``NodeCore``: Ed25519, SQLite, the ledger
rules) joined by an in-memory FIFO instead of sockets, with a manual clock. The demo
and the integration tests use it; the daemon replaces the FIFO with libp2p.

Nodes are numbered; the first ``n`` are the genesis validators, the ``joiners`` after
them start outside the set (as a site that will be voted in does) and follow the chain
by syncing certified blocks from the others until their epoch makes them validators."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path

from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.replica import ReplicaConfig
from p2pmed.crypto import Ed25519Verifier, EncryptionPrivateKey, Kem, SigningKey
from p2pmed.ledger.contracts import ALL_TX_TYPES, identity, membership
from p2pmed.ledger.contracts.identity import OrganisationProfile
from p2pmed.ledger.contracts.membership import ValidatorProfile
from p2pmed.ledger.machine import Ledger
from p2pmed.ledger.tx import Transaction
from p2pmed.node.core import NodeCore, Outgoing
from p2pmed.store.sqlite import SNAPSHOT_INTERVAL_BLOCKS

__all__ = ["LocalNetwork", "validator_keys"]

STEP_MS = 5


def validator_keys(count: int) -> list[SigningKey]:
    """The keys of a local network's first ``count`` nodes (fixed seeds, so tests can sign as them)."""
    return [SigningKey.from_seed(bytes([index + 1]) * 32) for index in range(count)]


class LocalNetwork:
    def __init__(
        self,
        directory: Path,
        chain_id: str,
        n: int = 4,
        config: ReplicaConfig | None = None,
        *,
        joiners: int = 0,
        probes_from_anyone: bool = True,
        snapshot_interval: int = SNAPSHOT_INTERVAL_BLOCKS,
    ) -> None:
        self.probes_from_anyone = probes_from_anyone
        self.snapshot_interval = snapshot_interval
        self.keys = validator_keys(n + joiners)
        self.validators = Validators(chain_id, tuple(key.public_key for key in self.keys[:n]), Ed25519Verifier())
        self._index_of = {key.public_key: index for index, key in enumerate(self.keys)}
        sites = [  # each validator runs a hospital in force from genesis, as ``p2pmed testnet`` sets up
            OrganisationProfile(key.public_key, f"site{index}", "hospital", self.encryption_key(index).public_key)
            for index, key in enumerate(self.keys[:n])
        ]
        validators = [
            ValidatorProfile(site.key, site.key, f"/ip4/127.0.0.1/tcp/{26656 + index}", site.encryption_key)
            for index, site in enumerate(sites)
        ]
        self.ledger = Ledger(
            chain_id, ALL_TX_TYPES, identity.genesis_state(sites) | membership.genesis_state(validators)
        )
        self.config = config or ReplicaConfig()
        self.paths = [directory / f"node{index}.sqlite3" for index in range(len(self.keys))]
        self.now_ms = 1_000
        self.in_flight: deque[tuple[int, int, bytes]] = deque()
        self.drops: Callable[[int, int, bytes], bool] = lambda source, destination, data: False
        """Tests set this to lose chosen messages (source, destination, bytes) on the way."""
        self.cores: list[NodeCore | None] = [None] * len(self.keys)
        for index in range(len(self.keys)):
            self.restart(index)

    @staticmethod
    def encryption_key(index: int) -> EncryptionPrivateKey:
        return EncryptionPrivateKey(Kem.X25519, bytes([index + 101]) * 32)

    def restart(self, index: int) -> None:
        """Start node ``index`` from whatever its store holds (nothing, at first)."""
        core = NodeCore(
            self.paths[index],
            self.ledger,
            self.keys[index],
            self.config,
            self.now_ms,
            probes_from_anyone=self.probes_from_anyone,
            snapshot_interval=self.snapshot_interval,
        )
        self.cores[index] = core
        self.send_from(index, core.start())

    def crash(self, index: int) -> None:
        """Stop node ``index`` dead: what it had not stored is gone, messages to it are lost."""
        core = self.cores[index]
        assert core is not None, f"node {index} is already down"
        core.close()
        self.cores[index] = None

    def submit_everywhere(self, tx: Transaction) -> None:
        """What gossip does: every live node receives the transaction."""
        for index, core in enumerate(self.cores):
            if core is not None:
                self.send_from(index, core.submit(tx, self.now_ms))

    def run(self, duration_ms: int) -> None:
        for _ in range(duration_ms // STEP_MS):
            while self.deliver_next():
                pass
            self.now_ms += STEP_MS
            for index, core in enumerate(self.cores):
                if core is not None and core.next_deadline_ms() <= self.now_ms:
                    self.send_from(index, core.tick(self.now_ms))
            self.sync_outsiders()

    def sync_outsiders(self) -> None:
        """What an observer's block sync does: each live node outside the current set takes
        the certified blocks after its head from the live node with the longest chain."""
        donors = [core for core in self.cores if core is not None]
        if not donors:
            return
        donor = max(donors, key=lambda core: core.store.head()[0])
        for index, core in enumerate(self.cores):
            if core is None or core.replica is not None:
                continue
            while core.replica is None and core.store.head()[0] < donor.store.head()[0]:
                served = donor.blocks_from(core.store.head()[0] + 1)
                for item in served.blocks:
                    if core.replica is not None:
                        break
                    self.send_from(index, core.apply_synced(item))

    def key(self, index: int) -> bytes:
        """Node ``index``'s validator key: how cores name their peers."""
        return self.keys[index].public_key

    def deliver(self, source: int, destination: int, data: bytes) -> None:
        """Hand ``data`` from ``source`` to ``destination`` now; what it answers goes in flight."""
        core = self.cores[destination]
        if core is not None:
            self.send_from(destination, core.receive(self.key(source), data, self.now_ms))

    def deliver_next(self) -> bool:
        """Deliver the oldest message in flight, if any; False when none is left."""
        if not self.in_flight:
            return False
        source, destination, data = self.in_flight.popleft()
        if self.cores[source] is not None:
            self.deliver(source, destination, data)
        return True

    def tick(self, index: int) -> None:
        """Run node ``index``'s timers at the current time; what it sends goes in flight."""
        core = self.cores[index]
        assert core is not None, f"node {index} is down"
        self.send_from(index, core.tick(self.now_ms))

    def heads(self) -> list[tuple[int, bytes] | None]:
        return [None if core is None else core.store.head() for core in self.cores]

    def close(self) -> None:
        for index, core in enumerate(self.cores):
            if core is not None:
                core.close()
                self.cores[index] = None

    def send_from(self, source: int, outgoing: Outgoing) -> None:
        """Put what node ``source``'s core returned in flight (unless ``drops`` loses it)."""
        for key, data in outgoing:
            destination = self._index_of[key]
            if not self.drops(source, destination, data):
                self.in_flight.append((source, destination, data))
