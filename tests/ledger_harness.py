"""A ledger in memory for testing the healthcare rules: each transaction runs in a
block of its own, at a time the test sets, and its changes are kept if it passes."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from p2pmed.client.records import seal_reason
from p2pmed.crypto import SEAL_OVERHEAD, EncryptionPrivateKey, EncryptionPublicKey, SigningKey, padme
from p2pmed.ledger.block import GENESIS_PARENT_HASH, make_block
from p2pmed.ledger.contracts import ALL_TX_TYPES, membership
from p2pmed.ledger.contracts.identity import (
    OrganisationProfile,
    OrgProposal,
    OrgRotate,
    PersonRegister,
    PersonRotate,
    genesis_state,
    sign_rotation,
)
from p2pmed.ledger.contracts.membership import ValidatorProfile
from p2pmed.ledger.contracts.records import RecordAdd, RecordRead
from p2pmed.ledger.contracts.supply import PrefixGrant
from p2pmed.ledger.errors import RejectReason
from p2pmed.ledger.machine import Ledger, TxResult
from p2pmed.ledger.rules import TxType
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.quorum import quorum_size

CHAIN = "contracts-test"
START_MS = 1_800_000_000_000


class DictState:
    """A StateReader over a dict; ``apply`` writes a block's changes."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def state_get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def state_items(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        return iter(sorted((key, value) for key, value in self.data.items() if key.startswith(prefix)))

    def apply(self, changes: dict[str, bytes | None]) -> None:
        for key, value in changes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value


def key(name: str) -> SigningKey:
    """A signing key that is the same in every run for the same name."""
    return SigningKey.from_seed(name.encode().ljust(32, b".")[:32])


class LedgerHarness:
    def __init__(self, validators: int = 4, tx_types: tuple[TxType, ...] = ALL_TX_TYPES) -> None:
        """The validators are hospitals in force from genesis, as a testnet's are."""
        self.validators = [key(f"validator-{index}") for index in range(validators)]
        self.site_encryption_keys = [EncryptionPrivateKey.generate() for _ in self.validators]
        sites = [
            OrganisationProfile(
                validator.public_key, f"site {index}", "hospital", self.site_encryption_keys[index].public_key
            )
            for index, validator in enumerate(self.validators)
        ]
        validators = [
            ValidatorProfile(site.key, site.key, f"/ip4/127.0.0.1/tcp/{26656 + index}", site.encryption_key)
            for index, site in enumerate(sites)
        ]
        self.ledger = Ledger(CHAIN, tx_types, genesis_state(sites) | membership.genesis_state(validators))
        self.state = DictState()
        self.state.apply(dict(self.ledger.genesis_state))
        self.height = 0
        self.time_ms = START_MS
        self.previous_hash = GENESIS_PARENT_HASH
        self._nonces: dict[bytes, int] = defaultdict(int)

    def run(self, signer: SigningKey, tx_type: str, body: Any) -> TxResult:
        """Sign a transaction with the sender's next nonce and order it in the next block."""
        tx = sign_transaction(signer, CHAIN, tx_type, self._nonces[signer.public_key], body)
        self._nonces[signer.public_key] += 1
        return self.commit(tx)

    def commit(self, tx: Transaction) -> TxResult:
        """Order ``tx`` alone in the next block, a second after the last; its changes are applied."""
        self.height += 1
        self.time_ms += 1_000
        block = make_block(CHAIN, self.height, self.previous_hash, (tx,), self.validators[0].public_key, self.time_ms)
        execution = self.ledger.execute_block(self.state, block)
        self.state.apply(execution.changes)
        self.previous_hash = block.hash
        return execution.results[0]

    def skip_to(self, height: int) -> None:
        """The next transaction is ordered at ``height``, as if empty blocks came before it."""
        assert height > self.height
        self.height = height - 1

    def ok(self, signer: SigningKey, tx_type: str, body: Any) -> None:
        result = self.run(signer, tx_type, body)
        assert result.ok, f"{tx_type} refused: {result.reason} {result.detail}"

    def refused(self, signer: SigningKey, tx_type: str, body: Any, reason: RejectReason) -> str:
        """Run a transaction that must be refused for ``reason``; returns the detail."""
        result = self.run(signer, tx_type, body)
        assert result.reason is reason, f"{tx_type}: expected {reason}, got {result.reason} {result.detail!r}"
        return result.detail

    def admit_organisation(self, organisation: SigningKey, kind: str, name: str = "") -> EncryptionPrivateKey:
        """Admit ``organisation`` by a quorum of validators; returns its encryption key."""
        encryption = EncryptionPrivateKey.generate()
        profile = OrganisationProfile(organisation.public_key, name or kind, kind, encryption.public_key)
        for validator in self.validators[: quorum_size(len(self.validators))]:
            self.ok(validator, "identity.org.propose", OrgProposal(profile))
        return encryption

    def grant_prefix(self, organisation: SigningKey, prefix: str) -> None:
        """Grant ``organisation`` (a manufacturer) the GS1 company prefix ``prefix`` by a quorum of validators."""
        grant = PrefixGrant(organisation.public_key, prefix)
        for validator in self.validators[: quorum_size(len(self.validators))]:
            self.ok(validator, "supply.prefix.grant", grant)

    def register_person(self, organisation: SigningKey, person: SigningKey, role: str) -> EncryptionPrivateKey:
        encryption = EncryptionPrivateKey.generate()
        self.ok(
            organisation, "identity.person.register", PersonRegister(person.public_key, role, encryption.public_key)
        )
        return encryption

    def anchor(self, record_id: bytes, patient: bytes, category: str = "laboratory", **changes: Any) -> RecordAdd:
        """A valid anchor (a padded size, 2f+1 custodians, threshold f+1, a digest per share) but for ``changes``."""
        faulty = (len(self.validators) - 1) // 3
        custodians = tuple(validator.public_key for validator in self.validators[: 2 * faulty + 1])
        fields = {
            "record_id": record_id,
            "patient": patient,
            "category": category,
            "ciphertext_sha256": hashlib.sha256(b"ciphertext" + record_id).digest(),
            "size": padme(1) + SEAL_OVERHEAD,
            "custodians": custodians,
            "threshold": faulty + 1,
            "share_sha256": tuple(hashlib.sha256(bytes([i]) + record_id).digest() for i in range(len(custodians))),
            **changes,
        }
        return RecordAdd(**fields)


def person_rotation(
    current: SigningKey, new: SigningKey, encryption: EncryptionPublicKey | None = None
) -> PersonRotate:
    """``current`` rotating to ``new`` (with ``new``'s proof) and a fresh encryption key unless given."""
    fresh = encryption or EncryptionPrivateKey.generate().public_key
    return PersonRotate(new.public_key, fresh, sign_rotation(new, current.public_key, CHAIN))


def org_rotation(current: SigningKey, new: SigningKey, encryption: EncryptionPublicKey | None = None) -> OrgRotate:
    fresh = encryption or EncryptionPrivateKey.generate().public_key
    return OrgRotate(new.public_key, fresh, sign_rotation(new, current.public_key, CHAIN))


def glass(record_id: bytes, purpose: str = "ETREAT", reason: str = "unconscious in A&E") -> RecordRead:
    """A break-glass read as a client sends it: the reason sealed (here to a throwaway key) and
    only its salted SHA-256 in the clear."""
    digest, sealed = seal_reason(reason, record_id, [EncryptionPrivateKey.generate().public_key])
    return RecordRead(record_id, purpose, True, digest, sealed)
