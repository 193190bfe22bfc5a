"""The genesis document: the chain id and the validator set every node starts from (epoch 0;
later sets are voted on the ledger, ``p2pmed.ledger.contracts.membership``).

Each validator is also a site: an organisation of a ``kind`` (hospital,
laboratory, ...) with an ``encryption_key`` (X25519, or ML-KEM-768 + X25519 when
``encryption_kem`` says so) for the key shares it keeps as a record custodian.
These organisations are in force from genesis; others join by a vote of the
validators (``p2pmed.ledger.contracts.identity``).

It is JSON for operators to read and share (``genesis.json`` in every node's
home), and its identity is the SHA-256 of its canonical CBOR encoding, so two
sites can compare one short hash to know they run the same network. Loading is
strict like every other input: a bad file raises ``GenesisError`` naming the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pmed import codec
from p2pmed.crypto import PUBLIC_KEY_SIZE, EncryptionPublicKey, Kem
from p2pmed.input_error import KeyedInputError
from p2pmed.ledger.contracts import identity, membership
from p2pmed.ledger.contracts.identity import ORGANISATION_KINDS, OrganisationProfile
from p2pmed.ledger.contracts.membership import ValidatorProfile

__all__ = ["Genesis", "GenesisError", "ValidatorInfo", "load_genesis", "write_genesis"]

GENESIS_SIZE_MAX = 1 << 20
VALIDATORS_MAX = 100
_CHAIN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_MONIKER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


class GenesisError(KeyedInputError):
    """A bad genesis.json."""


@dataclass(frozen=True)
class ValidatorInfo:
    moniker: str
    public_key: bytes
    address: str
    """Where the validator listens, as a multiaddr such as ``/ip4/127.0.0.1/tcp/26656``."""
    kind: str
    """The site's organisation kind, one of ``identity.ORGANISATION_KINDS``."""
    encryption_key: EncryptionPublicKey
    """The site's public encryption key: record key shares are sealed to it when it is a custodian."""


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    validators: tuple[ValidatorInfo, ...]

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(codec.encode(self)).digest()

    @property
    def validator_keys(self) -> tuple[bytes, ...]:
        return tuple(validator.public_key for validator in self.validators)

    @property
    def organisations(self) -> tuple[OrganisationProfile, ...]:
        """The validators as the sites they are, in force from genesis."""
        return tuple(OrganisationProfile(v.public_key, v.moniker, v.kind, v.encryption_key) for v in self.validators)

    @property
    def validator_profiles(self) -> tuple[ValidatorProfile, ...]:
        """The validator set of epoch 0; each genesis validator is its own organisation."""
        return tuple(ValidatorProfile(v.public_key, v.public_key, v.address, v.encryption_key) for v in self.validators)

    def ledger_state(self) -> dict[str, bytes]:
        """The state at height 0: the genesis sites in force and the epoch-0 validator set."""
        return identity.genesis_state(self.organisations) | membership.genesis_state(self.validator_profiles)


def write_genesis(path: Path, genesis: Genesis) -> None:
    document = {
        "chain_id": genesis.chain_id,
        "genesis_time_ms": genesis.genesis_time_ms,
        "validators": [
            {
                "moniker": v.moniker,
                "public_key": v.public_key.hex(),
                "address": v.address,
                "kind": v.kind,
                "encryption_key": v.encryption_key.key.hex(),
                "encryption_kem": v.encryption_key.kem.value,
            }
            for v in genesis.validators
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def load_genesis(path: Path) -> Genesis:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise GenesisError("", f"{path}: cannot read genesis file: {error.strerror}") from None
    if len(data) > GENESIS_SIZE_MAX:
        raise GenesisError("", f"{path}: genesis file is larger than {GENESIS_SIZE_MAX} bytes")
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GenesisError("", f"{path}: not valid JSON: {error}") from None
    return parse_genesis(document)


def parse_genesis(document: Any) -> Genesis:
    if not isinstance(document, dict):
        raise GenesisError("", "expected a JSON object")
    _only_keys(document, {"chain_id", "genesis_time_ms", "validators"}, "")
    chain_id = document.get("chain_id")
    if not isinstance(chain_id, str) or not _CHAIN_ID.match(chain_id):
        raise GenesisError(
            "chain_id", "expected 1-63 lowercase letters, digits or '-', starting with a letter or digit"
        )
    time_ms = document.get("genesis_time_ms")
    if type(time_ms) is not int or time_ms < 0:
        raise GenesisError("genesis_time_ms", "expected a non-negative integer (milliseconds since 1970)")
    validators = document.get("validators")
    if not isinstance(validators, list) or not 1 <= len(validators) <= VALIDATORS_MAX:
        raise GenesisError("validators", f"expected a list of 1..{VALIDATORS_MAX} validators")
    parsed = tuple(_validator(entry, f"validators[{index}]") for index, entry in enumerate(validators))
    for field in ("public_key", "moniker", "address"):
        seen = [getattr(validator, field) for validator in parsed]
        if len(set(seen)) != len(seen):
            raise GenesisError("validators", f"two validators share a {field}")
    return Genesis(chain_id, time_ms, parsed)


def _validator(entry: Any, key: str) -> ValidatorInfo:
    if not isinstance(entry, dict):
        raise GenesisError(key, "expected an object with moniker, public_key, address, kind and encryption_key")
    _only_keys(entry, {"moniker", "public_key", "address", "kind", "encryption_key"}, key, optional={"encryption_kem"})
    moniker = entry.get("moniker")
    if not isinstance(moniker, str) or not _MONIKER.match(moniker):
        raise GenesisError(f"{key}.moniker", "expected 1-64 letters, digits, spaces, '.', '_' or '-'")
    key_bytes = _hex_key(entry.get("public_key"), f"{key}.public_key")
    address = entry.get("address")
    if not isinstance(address, str) or not address.startswith("/") or len(address) > 256:
        raise GenesisError(f"{key}.address", "expected a multiaddr such as /ip4/127.0.0.1/tcp/26656")
    kind = entry.get("kind")
    if kind not in ORGANISATION_KINDS:
        raise GenesisError(f"{key}.kind", f"expected one of {', '.join(sorted(ORGANISATION_KINDS))}")
    return ValidatorInfo(moniker, key_bytes, address, kind, _encryption_key(entry, key))


def _encryption_key(entry: dict[str, Any], key: str) -> EncryptionPublicKey:
    """``encryption_key`` under ``encryption_kem`` (x25519 when absent, as genesis files before it had)."""
    kem_name = entry.get("encryption_kem", Kem.X25519.value)
    if kem_name not in {kem.value for kem in Kem}:
        raise GenesisError(f"{key}.encryption_kem", f"expected one of {', '.join(kem.value for kem in Kem)}")
    value = entry.get("encryption_key")
    try:
        return EncryptionPublicKey(Kem(kem_name), bytes.fromhex(value) if isinstance(value, str) else b"")
    except ValueError as error:
        raise GenesisError(f"{key}.encryption_key", f"expected a {kem_name} public key in hex: {error}") from None


def _hex_key(value: Any, key: str) -> bytes:
    try:
        key_bytes = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        key_bytes = b""
    if len(key_bytes) != PUBLIC_KEY_SIZE:
        raise GenesisError(key, f"expected {PUBLIC_KEY_SIZE} bytes as {2 * PUBLIC_KEY_SIZE} hex digits")
    return key_bytes


def _only_keys(
    table: dict[str, Any], allowed: set[str], key: str, optional: frozenset[str] | set[str] = frozenset()
) -> None:
    unknown = sorted(set(table) - allowed - optional)
    if unknown:
        where = f"{key}.{unknown[0]}" if key else unknown[0]
        raise GenesisError(where, f"unknown key; expected only {', '.join(sorted(allowed))}")
    missing = sorted(allowed - set(table))
    if missing:
        where = f"{key}.{missing[0]}" if key else missing[0]
        raise GenesisError(where, "missing")
