"""The validator set, epoch by epoch, and its changes by a 2f+1 vote of the validators.

The chain is ordered by one validator set per *epoch*: epoch 0 is the genesis set from
height 1, and each later epoch starts at the height its change named. A change
(``validator.change``) removes validators, adds new ones, or both: rotating a validator's
keys is removing its old key and adding the new one. Each validator of the set in force
sends the same change; the change passes in the block that orders the quorum-th identical
vote (height ``a``) and its set orders every block from ``a + EPOCH_DELAY_BLOCKS`` on.

Why a delay, and why this one: a replica accepts proposals only inside its watermark
window, at most ``watermark_window`` blocks past a checkpoint that f+1 honest replicas
reached by executing it (``p2pmed.site.config`` keeps the window below the delay). So
by the time any honest replica could vote on a height of the new epoch, f+1 honest
replicas have executed block ``a`` and refuse that height in the old epoch: the old set
cannot certify a block the new set certifies too. The old set orders up to the last
height of its epoch and stops; its primary proposes empty blocks there without waiting,
so the change happens on an idle network too.

One change at a time: while a passed change waits for its first height, votes are
refused (vote again once it is in force), and a passed change clears every vote, since
votes name a change from the set they were cast in.

Joining takes the joining key's own signature of its profile (``sign_join``): nobody adds
a key they do not hold, and a key once used (by a validator, organisation or person) is
never used again. A validator belongs to an organisation in force, which answers for it;
the organisation's own key and the validator key are distinct keys.

Other modules ask ``epoch_at(state, height)`` for the set that orders a height: the
ledger for the rules' ``TxContext.validators``, the node for its replica, an observer for
which quorum certifies each block it syncs.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from p2pmed import codec
from p2pmed.crypto import EncryptionPublicKey, SignatureDomain, SigningKey, verify
from p2pmed.ledger.contracts import identity
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import STATE_VALUE_SIZE_MAX, StateOverlay, StateReader
from p2pmed.ledger.votes import quorum_agrees

__all__ = [
    "EPOCH_DELAY_BLOCKS",
    "LATEST_KEY",
    "TX_TYPES",
    "VALIDATORS_MAX",
    "Epoch",
    "ValidatorChange",
    "ValidatorJoin",
    "ValidatorProfile",
    "epoch_at",
    "epoch_key",
    "epoch_record",
    "genesis_epoch",
    "genesis_state",
    "known_validator_keys",
    "latest_epoch",
    "recent_epochs",
    "served_for",
    "sign_join",
]

EPOCH_DELAY_BLOCKS = 100
VALIDATORS_MAX = 100
CHANGE_ENTRIES_MAX = 16
ADDRESS_LENGTH_MAX = 256


@dataclass(frozen=True)
class ValidatorProfile:
    """A validator as the set lists it: its consensus key, the organisation that runs it,
    where it listens (a multiaddr) and the key record shares are sealed to when it is a custodian."""

    key: bytes
    organisation: bytes
    address: str
    encryption_key: EncryptionPublicKey


@dataclass(frozen=True)
class ValidatorJoin:
    profile: ValidatorProfile
    proof: bytes
    """The joining key's signature of the profile (``sign_join``)."""


@dataclass(frozen=True)
class ValidatorChange:
    """Keys to remove and validators to add, applied in that order to the set in force."""

    remove: tuple[bytes, ...] = ()
    join: tuple[ValidatorJoin, ...] = ()


@dataclass(frozen=True)
class Epoch:
    number: int
    first_height: int
    validators: tuple[ValidatorProfile, ...]

    @property
    def keys(self) -> tuple[bytes, ...]:
        return tuple(validator.key for validator in self.validators)


def epoch_key(number: int) -> str:
    """The state key of epoch ``number`` (an ``Epoch``): written once, when its change passes."""
    return f"validators/epoch/{number:010d}"


LATEST_KEY = "validators/latest"
"""The state key of the newest epoch's number (in force, or passed and waiting)."""


def _served_key(validator: bytes) -> str:
    return f"validators/served/{validator.hex()}"


def _vote_key(validator: bytes) -> str:
    return f"validators/vote/{validator.hex()}"


# -- queries ---------------------------------------------------------------------------


def epoch_record(state: StateReader, number: int) -> Epoch | None:
    """Epoch ``number``'s set, if ``state`` has it."""
    data = state.state_get(epoch_key(number))
    return None if data is None else _decoded_epoch(data)


@functools.lru_cache(maxsize=16)
def _decoded_epoch(data: bytes) -> Epoch:
    """Epochs are read after every block (by the ledger, the node and its replica) and
    change once in a long while; decoding a set of validators' profiles each time cost
    about a millisecond a block, so the few recent ones are kept decoded (``Epoch`` is
    immutable, and the bytes are the key: nothing stale can come back)."""
    return codec.decode(Epoch, data, STATE_VALUE_SIZE_MAX)


def latest_epoch(state: StateReader) -> Epoch | None:
    """The newest epoch: in force, or passed and waiting for its first height."""
    number = StateOverlay(state).get(int, LATEST_KEY)
    return None if number is None else epoch_record(state, number)


def epoch_at(state: StateReader, height: int) -> Epoch | None:
    """The epoch whose set orders ``height``, as far as ``state`` knows (None on a chain
    with no validators, as some tests build). Correct for every height above the one
    ``state`` was executed to, up to that height plus ``EPOCH_DELAY_BLOCKS``."""
    latest = latest_epoch(state)
    if latest is None or latest.first_height <= height or latest.number == 0:
        return latest
    previous = epoch_record(state, latest.number - 1)
    assert previous is not None, "an epoch is scheduled only over one in force"
    return previous


def recent_epochs(state: StateReader) -> tuple[Epoch, ...]:
    """The latest epoch and the one before it (in force, or passed and waiting; or in force and
    just ended): the validators a node keeps in touch with."""
    latest = latest_epoch(state)
    if latest is None:
        return ()
    previous = epoch_record(state, latest.number - 1) if latest.number else None
    return (latest,) if previous is None else (latest, previous)


def known_validator_keys(state: StateReader) -> frozenset[bytes]:
    """The keys of the recent epochs' sets: validators in force or about to be, who may send
    transactions (the vote that decides what they may do runs in the block)."""
    return frozenset(key for epoch in recent_epochs(state) for key in epoch.keys)


def served_for(state: StateReader, key: bytes) -> bytes | None:
    """The organisation ``key`` serves or once served as a validator for (None if it never did):
    a voted-out validator's node is still its organisation's, and may follow the chain."""
    return StateOverlay(state).get(bytes, _served_key(key))


def genesis_epoch(validators: Iterable[ValidatorProfile]) -> Epoch:
    """Epoch 0: the genesis validators, from height 1."""
    return Epoch(0, 1, tuple(validators))


def genesis_state(validators: Iterable[ValidatorProfile]) -> dict[str, bytes]:
    """The state that records epoch 0 (``genesis_epoch``) as the latest."""
    epoch = genesis_epoch(validators)
    served = {_served_key(validator.key): codec.encode(validator.organisation) for validator in epoch.validators}
    return {epoch_key(0): codec.encode(epoch), LATEST_KEY: codec.encode(0), **served}


# -- joining ---------------------------------------------------------------------------


def _join_payload(profile: ValidatorProfile) -> bytes:
    return codec.encode(profile)


def sign_join(key: SigningKey, profile: ValidatorProfile, chain_id: str) -> bytes:
    """The proof a joining validator's profile carries: its own key's signature of it."""
    assert key.public_key == profile.key, "a validator signs its own profile"
    return key.sign(SignatureDomain.VALIDATOR_JOIN, chain_id, _join_payload(profile))


def _check_join(state: StateOverlay, context: TxContext, join: ValidatorJoin) -> None:
    profile = join.profile
    identity.check_fresh_key(state, context, profile.key, "the joining validator's key")
    if not verify(profile.key, join.proof, SignatureDomain.VALIDATOR_JOIN, context.chain_id, _join_payload(profile)):
        raise TxRejected(RejectReason.INVALID, "the joining key did not sign its profile (proof): add only a key held")
    if identity.organisation_in_force(state, profile.organisation) is None:
        raise TxRejected(RejectReason.INVALID, "the joining validator's organisation is not in force")
    address = profile.address
    if not address.startswith("/") or len(address) > ADDRESS_LENGTH_MAX or not address.isprintable():
        raise TxRejected(
            RejectReason.INVALID,
            f"the address must be a multiaddr such as /ip4/10.0.0.5/tcp/26656, at most {ADDRESS_LENGTH_MAX} characters",
        )


# -- the rule --------------------------------------------------------------------------


def _changed_set(
    state: StateOverlay, context: TxContext, current: Epoch, change: ValidatorChange
) -> tuple[ValidatorProfile, ...]:
    if not change.remove and not change.join:
        raise TxRejected(RejectReason.INVALID, "the change removes and adds nobody")
    if len(change.remove) + len(change.join) > CHANGE_ENTRIES_MAX:
        raise TxRejected(RejectReason.INVALID, f"a change names at most {CHANGE_ENTRIES_MAX} validators")
    removed = set(change.remove)
    if len(removed) != len(change.remove):
        raise TxRejected(RejectReason.INVALID, "a validator is removed twice")
    strangers = removed - set(current.keys)
    if strangers:
        raise TxRejected(RejectReason.INVALID, f"{min(strangers).hex()[:16]}… is not a validator")
    joining = [join.profile.key for join in change.join]
    if len(set(joining)) != len(joining):
        raise TxRejected(RejectReason.INVALID, "a validator joins twice")
    for join in change.join:
        _check_join(state, context, join)
    remaining = tuple(validator for validator in current.validators if validator.key not in removed)
    validators = remaining + tuple(join.profile for join in change.join)
    if not 1 <= len(validators) <= VALIDATORS_MAX:
        raise TxRejected(RejectReason.INVALID, f"the set after the change must have 1..{VALIDATORS_MAX} validators")
    return validators


def apply_change(state: StateOverlay, context: TxContext, change: ValidatorChange) -> None:
    current = epoch_at(state, context.height)
    if current is None or context.sender not in current.keys:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "only a validator in force votes on the validator set")
    latest = latest_epoch(state)
    assert latest is not None
    if latest.first_height > context.height:
        raise TxRejected(
            RejectReason.INVALID,
            f"a validator change already takes effect at height {latest.first_height}; vote after it",
        )
    validators = _changed_set(state, context, current, change)
    digest = hashlib.sha256(codec.encode(change)).digest()
    if not quorum_agrees(state, current.keys, context.sender, _vote_key, digest):
        return
    for join in change.join:
        identity.mark_key_used(state, join.profile.key)
        state.put(_served_key(join.profile.key), join.profile.organisation)
    epoch = Epoch(current.number + 1, context.height + EPOCH_DELAY_BLOCKS, validators)
    state.put(epoch_key(epoch.number), epoch)
    state.put(LATEST_KEY, epoch.number)


TX_TYPES = (TxType("validator.change", ValidatorChange, apply_change),)
