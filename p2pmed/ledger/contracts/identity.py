"""Who is who: organisations (sites) and the people they register.

Organisations (hospitals, labs, trial sponsors, pharmacies, distributors,
manufacturers) are admitted by the validators, which govern the network: each
validator sends ``identity.org.propose`` with the same ``OrganisationProfile``;
the organisation is in force from the block that orders the quorum-th (2f+1)
identical vote. A validator may change its vote by proposing again; votes for
another profile do not add up. Revoking an organisation takes the same vote
(``identity.org.revoke``). An organisation's key signs what the site does on
the ledger; a site that runs a validator may use the validator's key.

People (patients, clinicians, researchers, pharmacists) are registered by an
organisation in force (``identity.person.register``): an Ed25519 signing key, an
HPKE encryption key and a role. A person's id is the signing key they were
registered with, for life; ``identity.person.rotate`` (signed with the current
key) replaces both keys, and a key once used can never be registered or rotated
to again. The registering organisation or the person revokes
(``identity.person.revoke``), and so do the validators by a 2f+1 vote (the same
transaction from each), which is how a person whose organisation misbehaves or is
gone is removed; a revoked person's signatures count for nothing in the other
rules. The ledger holds keys and roles only: names and other
personal data stay at the site (the FHIR ``Patient`` the site keeps).

Other contracts ask ``organisation_of(state, key)`` and ``person_of(state, key)``,
which answer for current keys of parties in force only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterable
from dataclasses import dataclass

from p2pmed import codec
from p2pmed.crypto import PUBLIC_KEY_SIZE, EncryptionPublicKey
from p2pmed.ledger.contracts.policy import REGISTRARS, STAFF_ROLES
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader
from p2pmed.quorum import quorum_size

__all__ = [
    "ORGANISATION_KINDS",
    "PERSON_ROLES",
    "TX_TYPES",
    "OrgProposal",
    "OrgRevoke",
    "Organisation",
    "OrganisationProfile",
    "Person",
    "PersonRegister",
    "PersonRevoke",
    "PersonRotate",
    "genesis_state",
    "is_registered",
    "organisation_of",
    "person",
    "person_in_force",
    "person_of",
]

ORGANISATION_KINDS = frozenset(
    {"hospital", "clinic", "laboratory", "sponsor", "pharmacy", "distributor", "manufacturer"}
)
PERSON_ROLES = frozenset(REGISTRARS)
NAME_LENGTH_MAX = 200


@dataclass(frozen=True)
class OrganisationProfile:
    key: bytes
    name: str
    kind: str
    encryption_key: EncryptionPublicKey


@dataclass(frozen=True)
class OrgProposal:
    profile: OrganisationProfile


@dataclass(frozen=True)
class OrgRevoke:
    key: bytes


@dataclass(frozen=True)
class Organisation:
    """An organisation as the ledger keeps it."""

    profile: OrganisationProfile
    active: bool
    since_height: int

    @property
    def kind(self) -> str:
        return self.profile.kind


@dataclass(frozen=True)
class PersonRegister:
    key: bytes
    role: str
    encryption_key: EncryptionPublicKey


@dataclass(frozen=True)
class PersonRotate:
    key: bytes
    encryption_key: EncryptionPublicKey


@dataclass(frozen=True)
class PersonRevoke:
    person: bytes


@dataclass(frozen=True)
class Person:
    """A person as the ledger keeps it; ``id`` is the key they were registered with."""

    id: bytes
    key: bytes
    role: str
    encryption_key: EncryptionPublicKey
    organisation: bytes
    active: bool


@dataclass(frozen=True)
class _Vote:
    action: str  # "admit" or "revoke"
    digest: bytes


# -- state keys -----------------------------------------------------------------


def _org_key(key: bytes) -> str:
    return f"identity/org/{key.hex()}"


def _vote_key(subject: bytes, validator: bytes) -> str:
    return f"identity/org-vote/{subject.hex()}/{validator.hex()}"


def _person_key(person_id: bytes) -> str:
    return f"identity/person/{person_id.hex()}"


def _signer_key(key: bytes) -> str:
    return f"identity/signer/{key.hex()}"


def _used_key(key: bytes) -> str:
    return f"identity/key-used/{key.hex()}"


# -- queries for other contracts ------------------------------------------------


def organisation_of(state: StateReader, key: bytes) -> Organisation | None:
    """The organisation in force whose key is ``key``, if any."""
    organisation = StateOverlay(state).get(Organisation, _org_key(key))
    return organisation if organisation is not None and organisation.active else None


def person(state: StateReader, person_id: bytes) -> Person | None:
    """The person with this id, in force or revoked, if ever registered."""
    return StateOverlay(state).get(Person, _person_key(person_id))


def person_in_force(state: StateReader, person_id: bytes) -> Person | None:
    """The person with this id if in force: not revoked, and for staff, while the organisation
    that registered them is (``policy``)."""
    found = person(state, person_id)
    if found is None or not found.active:
        return None
    if found.role in STAFF_ROLES and organisation_of(state, found.organisation) is None:
        return None
    return found


def person_of(state: StateReader, key: bytes) -> Person | None:
    """The person in force whose current signing key is ``key``, if any."""
    person_id = StateOverlay(state).get(bytes, _signer_key(key))
    return None if person_id is None else person_in_force(state, person_id)


def is_registered(state: StateReader, key: bytes, validators: Container[bytes]) -> bool:
    """Whether ``key`` may send transactions: a validator, or an organisation or person in force."""
    return key in validators or organisation_of(state, key) is not None or person_of(state, key) is not None


def genesis_state(profiles: Iterable[OrganisationProfile]) -> dict[str, bytes]:
    """State entries that put the genesis sites in force from height 0."""
    return {_org_key(profile.key): codec.encode(Organisation(profile, True, 0)) for profile in profiles}


# -- organisations ----------------------------------------------------------------


def _require_validator(context: TxContext) -> None:
    if context.sender not in context.validators:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "only a validator votes on organisations")


def _check_key(key: bytes, what: str) -> None:
    if len(key) != PUBLIC_KEY_SIZE:
        raise TxRejected(RejectReason.INVALID, f"{what} must be a {PUBLIC_KEY_SIZE}-byte Ed25519 public key")


def _tally(state: StateOverlay, context: TxContext, subject: bytes, vote: _Vote) -> bool:
    """Record the sender's vote on ``subject``; True once a quorum votes the same."""
    state.put(_vote_key(subject, context.sender), vote)
    same = sum(1 for validator in context.validators if state.get(_Vote, _vote_key(subject, validator)) == vote)
    if same < quorum_size(len(context.validators)):
        return False
    for validator in context.validators:
        state.delete(_vote_key(subject, validator))
    return True


def apply_org_propose(state: StateOverlay, context: TxContext, proposal: OrgProposal) -> None:
    _require_validator(context)
    profile = proposal.profile
    _check_key(profile.key, "the organisation key")
    if not 0 < len(profile.name) <= NAME_LENGTH_MAX or not profile.name.isprintable():
        raise TxRejected(
            RejectReason.INVALID, f"the organisation name must be 1..{NAME_LENGTH_MAX} printable characters"
        )
    if profile.kind not in ORGANISATION_KINDS:
        raise TxRejected(
            RejectReason.INVALID,
            f"unknown organisation kind {profile.kind!r}; known: {', '.join(sorted(ORGANISATION_KINDS))}",
        )
    if organisation_of(state, profile.key) is not None:
        raise TxRejected(RejectReason.INVALID, "this organisation is already in force")
    if person_of(state, profile.key) is not None or state.state_get(_used_key(profile.key)) is not None:
        raise TxRejected(RejectReason.INVALID, "this key already belongs to a person")
    digest = hashlib.sha256(codec.encode(profile)).digest()
    if _tally(state, context, profile.key, _Vote("admit", digest)):
        state.put(_org_key(profile.key), Organisation(profile, True, context.height))


def apply_org_revoke(state: StateOverlay, context: TxContext, revoke: OrgRevoke) -> None:
    _require_validator(context)
    organisation = organisation_of(state, revoke.key)
    if organisation is None:
        raise TxRejected(RejectReason.INVALID, "no organisation in force has this key")
    if _tally(state, context, revoke.key, _Vote("revoke", b"")):
        state.put(_org_key(revoke.key), Organisation(organisation.profile, False, organisation.since_height))


# -- people -------------------------------------------------------------------------


def _check_fresh_key(state: StateOverlay, key: bytes) -> None:
    _check_key(key, "the person's key")
    if state.state_get(_used_key(key)) is not None or state.state_get(_org_key(key)) is not None:
        raise TxRejected(RejectReason.INVALID, "this key is already in use or was used before; keys are never reused")


def apply_person_register(state: StateOverlay, context: TxContext, register: PersonRegister) -> None:
    registrar = organisation_of(state, context.sender)
    if registrar is None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "only an organisation in force registers people")
    if register.role not in PERSON_ROLES:
        raise TxRejected(
            RejectReason.INVALID, f"unknown role {register.role!r}; known: {', '.join(sorted(PERSON_ROLES))}"
        )
    kinds = REGISTRARS[register.role]
    if registrar.profile.kind not in kinds:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"a {registrar.profile.kind} may not register a {register.role}; {register.role}s are registered"
            f" by: {', '.join(sorted(kinds))}",
        )
    _check_fresh_key(state, register.key)
    state.put(
        _person_key(register.key),
        Person(register.key, register.key, register.role, register.encryption_key, context.sender, True),
    )
    state.put(_signer_key(register.key), register.key)
    state.put(_used_key(register.key), True)


def apply_person_rotate(state: StateOverlay, context: TxContext, rotate: PersonRotate) -> None:
    current = person_of(state, context.sender)
    if current is None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "the sender is not the current key of a person in force")
    _check_fresh_key(state, rotate.key)
    state.delete(_signer_key(current.key))
    state.put(_signer_key(rotate.key), current.id)
    state.put(_used_key(rotate.key), True)
    rotated = Person(current.id, rotate.key, current.role, rotate.encryption_key, current.organisation, True)
    state.put(_person_key(current.id), rotated)


def apply_person_revoke(state: StateOverlay, context: TxContext, revoke: PersonRevoke) -> None:
    target = person(state, revoke.person)
    if target is None or not target.active:
        raise TxRejected(RejectReason.INVALID, "no person in force has this id")
    if context.sender not in (target.organisation, target.key):
        if context.sender not in context.validators:
            raise TxRejected(
                RejectReason.NOT_AUTHORISED,
                "only the person, the organisation that registered them or a 2f+1 vote of the validators revokes",
            )
        if not _tally(state, context, target.id, _Vote("revoke-person", b"")):
            return
    elif context.sender == target.organisation and organisation_of(state, context.sender) is None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "the registering organisation is no longer in force")
    state.delete(_signer_key(target.key))
    state.put(
        _person_key(target.id),
        Person(target.id, target.key, target.role, target.encryption_key, target.organisation, False),
    )


TX_TYPES = (
    TxType("identity.org.propose", OrgProposal, apply_org_propose),
    TxType("identity.org.revoke", OrgRevoke, apply_org_revoke),
    TxType("identity.person.register", PersonRegister, apply_person_register),
    TxType("identity.person.rotate", PersonRotate, apply_person_rotate),
    TxType("identity.person.revoke", PersonRevoke, apply_person_revoke),
)
