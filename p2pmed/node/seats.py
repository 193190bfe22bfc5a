"""The validator set of the current epoch as operators read it: each validator with the name
and kind of the organisation that runs it, where it listens and its custody key."""

from __future__ import annotations

from dataclasses import dataclass

from p2pmed.crypto import EncryptionPublicKey
from p2pmed.ledger.contracts import identity, membership
from p2pmed.store import Store

__all__ = ["Seat", "neighbours", "seats"]


@dataclass(frozen=True)
class Seat:
    key: bytes
    moniker: str
    """The name of the organisation that runs the validator (a genesis site's moniker)."""
    kind: str
    address: str
    encryption_key: EncryptionPublicKey


def seats(store: Store, epoch: membership.Epoch | None = None) -> tuple[Seat, ...]:
    """The validators of ``epoch`` (by default the one that orders the next block), in index order."""
    epoch = epoch or membership.epoch_at(store, store.head()[0] + 1)
    assert epoch is not None, "a node's chain has validators from genesis"
    found = []
    for validator in epoch.validators:
        organisation = identity.organisation(store, validator.organisation)
        name, kind = (organisation.profile.name, organisation.kind) if organisation else ("", "")
        found.append(Seat(validator.key, name, kind, validator.address, validator.encryption_key))
    return tuple(found)


def neighbours(store: Store) -> tuple[Seat, ...]:
    """The validators of the recent epochs (``membership.recent_epochs``): those about to join
    are dialled before their epoch begins, and those that just left can still fetch the last
    blocks of their epoch from us (``p2pmed.consensus.foreign_fetches``)."""
    found: dict[bytes, Seat] = {}
    for epoch in membership.recent_epochs(store):
        for seat in seats(store, epoch):
            found.setdefault(seat.key, seat)
    return tuple(found.values())
