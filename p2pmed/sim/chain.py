"""The simulated chain: each node's blocks and the ledger state they build, under the real
membership rules, and the votes that change the validator set.

Every simulated node executes each block it commits with ``Ledger`` over an in-memory
state (``NodeChain``), as ``NodeCore`` does over its store, so the validator set of every
epoch is whatever ``p2pmed.ledger.contracts.membership`` decided from the votes the chain
ordered; nothing in the simulator decides it. The ledger runs the membership rules only:
the workload's ``sim.noop`` transactions are of a type it does not know, so it refuses them
at the first check and they only take block space. Transactions carry the simulator's fast
signatures, which Ed25519 would refuse, so a block's transaction ids go in as
``verified_tx_ids``: each was checked (with ``FastVerifier``) by the replicas that certified
the block, as a node's ids were checked on arrival.

A validator voted in must prove it holds its key with a real Ed25519 signature
(``membership.sign_join``), so the nodes outside the genesis set get an Ed25519 key from
the seed, which is also the public key of their fast signer. Signing a join costs one
Ed25519 signature per joiner, once per vote.

Every node commits the same blocks, so ``SharedLedger`` executes each block once for all
of them (and for the checker's own chain): a block's hash commits to its parent's, hence
to the whole chain below it, so every chain that commits a block holds the same state
under it and gets the same changes.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field

from p2pmed import codec
from p2pmed.consensus.messages import Blocks, BlockWithCertificate, CommitCertificate, blocks_answer
from p2pmed.crypto import EncryptionPrivateKey, EncryptionPublicKey, Kem, SignatureDomain, SigningKey
from p2pmed.ledger.block import GENESIS_PARENT_HASH, Block
from p2pmed.ledger.contracts import identity, membership
from p2pmed.ledger.contracts.identity import OrganisationProfile
from p2pmed.ledger.contracts.membership import ValidatorChange, ValidatorJoin, ValidatorProfile
from p2pmed.ledger.machine import BlockExecution, Ledger
from p2pmed.ledger.state import StateReader
from p2pmed.ledger.tx import Transaction, UnsignedTransaction
from p2pmed.sim.fastsig import FastSigner

__all__ = ["VOTE_TYPE", "NodeChain", "SharedLedger", "SimSites"]

VOTE_TYPE = "validator.change"


class SharedLedger(Ledger):
    """A ``Ledger`` that executes each block once, for chains of certified blocks that all
    start from its genesis state (the simulated nodes' and the checker's), by block hash."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger.chain_id, ledger.tx_types.values(), ledger.genesis_state)
        self._executions: dict[bytes, BlockExecution] = {}

    def execute_block(
        self, state: StateReader, block: Block, verified_tx_ids: Container[bytes] = frozenset()
    ) -> BlockExecution:
        execution = self._executions.get(block.hash)
        if execution is None:
            execution = self._executions[block.hash] = super().execute_block(state, block, verified_tx_ids)
        return execution


@dataclass
class NodeChain:
    """One node's committed blocks with their certificates, and the state they built: what
    survives a crash (its store)."""

    blocks: list[tuple[Block, CommitCertificate]]
    state: dict[str, bytes]

    @classmethod
    def genesis(cls, ledger: Ledger) -> NodeChain:
        return cls([], dict(ledger.genesis_state))

    def state_get(self, key: str) -> bytes | None:
        return self.state.get(key)

    @property
    def height(self) -> int:
        return len(self.blocks)

    @property
    def head_hash(self) -> bytes:
        return self.blocks[-1][0].hash if self.blocks else GENESIS_PARENT_HASH

    @property
    def head_time_ms(self) -> int:
        return self.blocks[-1][0].header.time_ms if self.blocks else 0

    def append(self, ledger: Ledger, block: Block, certificate: CommitCertificate) -> None:
        """Execute ``block`` (its transactions verified by whoever certified it) and keep it."""
        assert block.height == self.height + 1 and block.header.previous_hash == self.head_hash
        execution = ledger.execute_block(self, block, verified_tx_ids=frozenset(tx.id for tx in block.txs))
        for key, value in execution.changes.items():
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value
        self.blocks.append((block, certificate))

    def answer(self, from_height: int) -> Blocks:
        """What this node's store serves a block fetch from ``from_height``."""
        chosen = self.blocks[from_height - 1 :] if from_height >= 1 else []
        return blocks_answer(BlockWithCertificate(block, certificate) for block, certificate in chosen)

    def copy(self) -> NodeChain:
        return NodeChain(list(self.blocks), dict(self.state))


@dataclass
class SimSites:
    """The simulated network's sites: node ``i`` has ``signers[i]``; the first ``genesis``
    are the genesis validators (each its own organisation, as ``p2pmed testnet`` sets up),
    the others start outside the set with an Ed25519 key to join with."""

    chain_id: str
    signers: list[FastSigner]
    genesis: int
    join_keys: dict[int, SigningKey]
    encryption_keys: list[EncryptionPublicKey]
    nonces: Counter[bytes] = field(default_factory=Counter)
    """The next nonce of each validator's votes: its operator's wallet."""

    @classmethod
    def build(cls, chain_id: str, seed: int, nodes: int, genesis: int) -> SimSites:
        def secret(name: str, index: int) -> bytes:
            return hashlib.sha256(f"sim-{name}-{seed}-{index}".encode()).digest()

        join_keys = {index: SigningKey.from_seed(secret("joiner", index)) for index in range(genesis, nodes)}
        signers = [
            FastSigner(secret("validator", index), join_keys[index].public_key if index in join_keys else None)
            for index in range(nodes)
        ]
        encryption = [EncryptionPrivateKey(Kem.X25519, secret("site", index)).public_key for index in range(nodes)]
        return cls(chain_id, signers, genesis, join_keys, encryption)

    def _profile(self, index: int, organisation: bytes) -> ValidatorProfile:
        key = self.signers[index].public_key
        return ValidatorProfile(
            key, organisation, f"/ip4/10.0.{index // 250}.{index % 250 + 1}/tcp/26656", self.encryption_keys[index]
        )

    def ledger(self) -> SharedLedger:
        """The rules every node runs, from the genesis sites and validators."""
        keys = [signer.public_key for signer in self.signers[: self.genesis]]
        sites = [
            OrganisationProfile(key, f"site{index}", "hospital", self.encryption_keys[index])
            for index, key in enumerate(keys)
        ]
        validators = [self._profile(index, key) for index, key in enumerate(keys)]
        genesis = identity.genesis_state(sites) | membership.genesis_state(validators)
        return SharedLedger(Ledger(self.chain_id, membership.TX_TYPES, genesis))

    def change(self, remove: list[int], join: list[int]) -> ValidatorChange:
        """The change removing nodes ``remove`` and voting in nodes ``join``, each joiner run
        by a genesis site's organisation in turn, with its proof of holding its key."""
        joins = []
        for index in join:
            organisation = self.signers[index % self.genesis].public_key
            profile = self._profile(index, organisation)
            joins.append(ValidatorJoin(profile, membership.sign_join(self.join_keys[index], profile, self.chain_id)))
        return ValidatorChange(tuple(self.signers[index].public_key for index in remove), tuple(joins))

    def vote(self, voter: int, change: ValidatorChange) -> Transaction:
        """Validator ``voter``'s vote for ``change``, with its next nonce."""
        signer = self.signers[voter]
        nonce = self.nonces[signer.public_key]
        self.nonces[signer.public_key] += 1
        unsigned = UnsignedTransaction(VOTE_TYPE, self.chain_id, signer.public_key, nonce, codec.to_value(change))
        signature = signer.sign(SignatureDomain.TRANSACTION, self.chain_id, codec.encode(unsigned))
        return Transaction(unsigned.type, self.chain_id, unsigned.sender, nonce, unsigned.body, signature)
