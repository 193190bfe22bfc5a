"""Who is who: organisations (sites) and the people they register.

Organisations (hospitals, labs, trial sponsors, pharmacies, distributors,
manufacturers, regulators) are admitted by the validators, which govern the network: each
validator sends ``identity.org.propose`` with the same ``OrganisationProfile``;
the organisation is in force from the block that orders the quorum-th (2f+1)
identical vote. A validator may change its vote by proposing again; votes for
another profile do not add up. Revoking an organisation takes the same vote
(``identity.org.revoke``, naming its id).

An organisation's id is the signing key it was admitted with, for life: people
record their organisation by id, consents name an organisation grantee by id, and
supply custody, trial sponsorship, break-glass reviews and audit entries keep the
id, so they all still mean the same organisation after its keys change. Its
current key signs what the site does on the ledger. Keys change two ways:

- ``identity.org.rotate``, signed with the current key: a new signing key and a
  new HPKE encryption key, with the new key's signature of the rotation
  (``sign_rotation``), so nobody rotates onto a key they do not hold and so
  burns someone else's. The old key counts for nothing from the block that
  orders the rotation.
- ``identity.org.propose`` naming the organisation's id (``OrgProposal.organisation``)
  with a new profile, by the same 2f+1 vote as admission: the way out when the key
  was stolen, since a thief holding the key could rotate it too. The vote is on the
  id, not the key, so a thief's own rotation does not escape it. The kind stays (the
  people the organisation registered were allowed for that kind); the name may
  change. The same vote reinstates a revoked organisation.

Either way the new key must never have been used by anyone (a key once used, by an
organisation or a person, is never registered or rotated to again), except that the
validators' profile may keep the current key (a rename or a reinstatement).

A genesis site's organisation key starts as its validator's key (``genesis_state``).
Rotating the organisation moves its ledger signing key off the validator key for
good; the validator key keeps signing consensus, voting on organisations and
people as a validator, and names the site as a record custodian, whose custody
encryption key is the validator's in the genesis file, not the organisation's.
Rotating validator keys is a change of the validator set.

People (patients, clinicians, researchers, pharmacists) are registered by an
organisation in force (``identity.person.register``): an Ed25519 signing key, an
HPKE encryption key and a role. A person's id is the signing key they were
registered with, for life; ``identity.person.rotate`` (signed with the current
key, and by the new one as for organisations) replaces both keys, under the same
never-reused rule. The registering
organisation or the person revokes (``identity.person.revoke``), and so do the
validators by a 2f+1 vote (the same transaction from each), which is how a person
whose organisation misbehaves or is gone is removed; a revoked person's signatures
count for nothing in the other rules. The ledger holds keys and roles only: names
and other personal data stay at the site (the FHIR ``Patient`` the site keeps).

Other contracts ask ``organisation_of(state, key)`` and ``person_of(state, key)``,
which answer for current keys of parties in force only, and
``organisation_in_force(state, id)`` and ``person_in_force(state, id)`` for ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Container, Iterable
from dataclasses import dataclass

from p2pmed import codec
from p2pmed.crypto import PUBLIC_KEY_SIZE, EncryptionPublicKey, SignatureDomain, SigningKey, verify
from p2pmed.ledger.contracts.policy import REGISTRARS, STAFF_ROLES
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader
from p2pmed.ledger.votes import quorum_agrees

__all__ = [
    "ORGANISATION_KINDS",
    "PERSON_ROLES",
    "TX_TYPES",
    "OrgProposal",
    "OrgRevoke",
    "OrgRotate",
    "Organisation",
    "OrganisationProfile",
    "Person",
    "PersonRegister",
    "PersonRevoke",
    "PersonRotate",
    "check_fresh_key",
    "genesis_state",
    "is_registered",
    "mark_key_used",
    "organisation",
    "organisation_by_id_or_key",
    "organisation_in_force",
    "organisation_of",
    "person",
    "person_in_force",
    "person_of",
    "sign_rotation",
]

ORGANISATION_KINDS = frozenset(
    {"hospital", "clinic", "laboratory", "sponsor", "pharmacy", "distributor", "manufacturer", "regulator"}
)
PERSON_ROLES = frozenset(REGISTRARS)
NAME_LENGTH_MAX = 200


@dataclass(frozen=True)
class OrganisationProfile:
    """``key``: the organisation's current signing key (at admission, also its id)."""

    key: bytes
    name: str
    kind: str
    encryption_key: EncryptionPublicKey


@dataclass(frozen=True)
class OrgProposal:
    """A validator's vote for ``profile``: with ``organisation`` empty, to admit a new
    organisation whose id is ``profile.key``; else for the new profile of the organisation
    with that id (a stolen key replaced, or a revoked organisation reinstated)."""

    profile: OrganisationProfile
    organisation: bytes = b""


@dataclass(frozen=True)
class OrgRevoke:
    organisation: bytes


@dataclass(frozen=True)
class OrgRotate:
    key: bytes
    encryption_key: EncryptionPublicKey
    proof: bytes
    """The new key's signature of the rotation (``sign_rotation``): whoever rotates holds it."""


@dataclass(frozen=True)
class Organisation:
    """An organisation as the ledger keeps it; ``id`` is the key it was admitted with."""

    id: bytes
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
    proof: bytes
    """The new key's signature of the rotation (``sign_rotation``): whoever rotates holds it."""


@dataclass(frozen=True)
class PersonRevoke:
    person: bytes


@dataclass(frozen=True)
class Person:
    """A person as the ledger keeps it; ``id`` is the key they were registered with and
    ``organisation`` the id of the organisation that registered them."""

    id: bytes
    key: bytes
    role: str
    encryption_key: EncryptionPublicKey
    organisation: bytes
    active: bool


@dataclass(frozen=True)
class _Vote:
    action: str  # "admit", "replace", "revoke" or "revoke-person"
    digest: bytes


# -- state keys -----------------------------------------------------------------


def _org_key(organisation_id: bytes) -> str:
    return f"identity/org/{organisation_id.hex()}"


def _org_signer_key(key: bytes) -> str:
    return f"identity/org-signer/{key.hex()}"


def _vote_key(subject: bytes, validator: bytes) -> str:
    return f"identity/org-vote/{subject.hex()}/{validator.hex()}"


def _person_key(person_id: bytes) -> str:
    return f"identity/person/{person_id.hex()}"


def _signer_key(key: bytes) -> str:
    return f"identity/signer/{key.hex()}"


def _used_key(key: bytes) -> str:
    return f"identity/key-used/{key.hex()}"


# -- queries for other contracts ------------------------------------------------


def organisation(state: StateReader, organisation_id: bytes) -> Organisation | None:
    """The organisation with this id, in force or revoked, if ever admitted."""
    return StateOverlay(state).get(Organisation, _org_key(organisation_id))


def organisation_in_force(state: StateReader, organisation_id: bytes) -> Organisation | None:
    """The organisation with this id if it is in force."""
    found = organisation(state, organisation_id)
    return found if found is not None and found.active else None


def _organisation_signing(state: StateReader, key: bytes) -> Organisation | None:
    """The organisation, in force or revoked, whose current signing key is ``key``."""
    organisation_id = StateOverlay(state).get(bytes, _org_signer_key(key))
    return None if organisation_id is None else organisation(state, organisation_id)


def organisation_of(state: StateReader, key: bytes) -> Organisation | None:
    """The organisation in force whose current signing key is ``key``, if any."""
    found = _organisation_signing(state, key)
    return found if found is not None and found.active else None


def organisation_by_id_or_key(state: StateReader, id_or_key: bytes) -> Organisation | None:
    """An organisation by id (in force or revoked), else by current signing key (in force).
    Never ambiguous: an id is a key once used, and no organisation rotates to one."""
    return organisation(state, id_or_key) or organisation_of(state, id_or_key)


def person(state: StateReader, person_id: bytes) -> Person | None:
    """The person with this id, in force or revoked, if ever registered."""
    return StateOverlay(state).get(Person, _person_key(person_id))


def person_in_force(state: StateReader, person_id: bytes) -> Person | None:
    """The person with this id if in force: not revoked, and for staff, while the organisation
    that registered them is (``policy``)."""
    found = person(state, person_id)
    if found is None or not found.active:
        return None
    if found.role in STAFF_ROLES and organisation_in_force(state, found.organisation) is None:
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
    """State entries that put the genesis sites in force from height 0, each with its
    validator key as its id and first signing key."""
    entries: dict[str, bytes] = {}
    for profile in profiles:
        entries[_org_key(profile.key)] = codec.encode(Organisation(profile.key, profile, True, 0))
        entries[_org_signer_key(profile.key)] = codec.encode(profile.key)
        entries[_used_key(profile.key)] = codec.encode(True)
    return entries


# -- keys -------------------------------------------------------------------------------


def _check_key(key: bytes, what: str) -> None:
    if len(key) != PUBLIC_KEY_SIZE:
        raise TxRejected(RejectReason.INVALID, f"{what} must be a {PUBLIC_KEY_SIZE}-byte Ed25519 public key")


def check_fresh_key(state: StateOverlay, context: TxContext, key: bytes, what: str) -> None:
    """Refuse ``key`` unless it is a well-formed key that nobody ever used (keys are never reused)."""
    _check_key(key, what)
    if state.state_get(_used_key(key)) is not None or key in context.validators:
        raise TxRejected(RejectReason.INVALID, "this key is already in use or was used before; keys are never reused")


def mark_key_used(state: StateOverlay, key: bytes) -> None:
    state.put(_used_key(key), True)


def _rotation_payload(current_key: bytes, new_key: bytes) -> bytes:
    return codec.encode([current_key, new_key])


def sign_rotation(new_key: SigningKey, current_key: bytes, chain_id: str) -> bytes:
    """The proof a rotation from ``current_key`` carries: the new key's signature, so nobody
    rotates onto a key they do not hold (and so takes it from its owner: keys are never reused)."""
    return new_key.sign(SignatureDomain.KEY_ROTATION, chain_id, _rotation_payload(current_key, new_key.public_key))


def _check_rotation(state: StateOverlay, context: TxContext, key: bytes, proof: bytes, what: str) -> None:
    check_fresh_key(state, context, key, what)
    payload = _rotation_payload(context.sender, key)
    if not verify(key, proof, SignatureDomain.KEY_ROTATION, context.chain_id, payload):
        raise TxRejected(
            RejectReason.INVALID, f"{what} did not sign this rotation (proof): rotate only to a key you hold"
        )


# -- organisations ----------------------------------------------------------------


def _require_validator(context: TxContext) -> None:
    if context.sender not in context.validators:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "only a validator votes on organisations")


def _check_profile(profile: OrganisationProfile) -> None:
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


def _tally(state: StateOverlay, context: TxContext, subject: bytes, vote: _Vote) -> bool:
    """Record the sender's vote on ``subject``; True once a quorum votes the same."""
    return quorum_agrees(
        state, context.validators, context.sender, lambda validator: _vote_key(subject, validator), vote
    )


def _put_organisation(state: StateOverlay, found: Organisation, profile: OrganisationProfile, active: bool) -> None:
    """Write ``found`` with ``profile`` and ``active``; a new key takes over signing for it."""
    if profile.key != found.profile.key:
        state.delete(_org_signer_key(found.profile.key))
        state.put(_org_signer_key(profile.key), found.id)
        state.put(_used_key(profile.key), True)
    state.put(_org_key(found.id), Organisation(found.id, profile, active, found.since_height))


def _propose_admission(state: StateOverlay, context: TxContext, proposal: OrgProposal) -> None:
    key = proposal.profile.key
    if organisation_in_force(state, key) is not None:
        raise TxRejected(RejectReason.INVALID, "this organisation is already in force")
    if organisation(state, key) is not None:
        raise TxRejected(
            RejectReason.INVALID,
            "this organisation was revoked; to reinstate it, propose a profile naming its id as the organisation",
        )
    if person(state, key) is not None:
        raise TxRejected(RejectReason.INVALID, "this key already belongs to a person")
    check_fresh_key(state, context, key, "the organisation key")
    digest = hashlib.sha256(codec.encode(proposal)).digest()
    if _tally(state, context, key, _Vote("admit", digest)):
        state.put(_org_key(key), Organisation(key, proposal.profile, True, context.height))
        state.put(_org_signer_key(key), key)
        state.put(_used_key(key), True)


def _propose_replacement(state: StateOverlay, context: TxContext, proposal: OrgProposal) -> None:
    found = organisation(state, proposal.organisation)
    if found is None:
        raise TxRejected(RejectReason.INVALID, "no organisation has this id")
    profile = proposal.profile
    if profile.kind != found.kind:
        raise TxRejected(
            RejectReason.INVALID,
            f"a new profile keeps the organisation's kind ({found.kind}): the people it registered were allowed"
            " for that kind",
        )
    if profile.key != found.profile.key:
        check_fresh_key(state, context, profile.key, "the organisation's new key")
    digest = hashlib.sha256(codec.encode(proposal)).digest()
    if _tally(state, context, found.id, _Vote("replace", digest)):
        _put_organisation(state, found, profile, True)


def apply_org_propose(state: StateOverlay, context: TxContext, proposal: OrgProposal) -> None:
    _require_validator(context)
    _check_profile(proposal.profile)
    if proposal.organisation:
        _propose_replacement(state, context, proposal)
    else:
        _propose_admission(state, context, proposal)


def apply_org_rotate(state: StateOverlay, context: TxContext, rotate: OrgRotate) -> None:
    current = organisation_of(state, context.sender)
    if current is None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "the sender is not the current key of an organisation in force")
    _check_rotation(state, context, rotate.key, rotate.proof, "the organisation's new key")
    rotated = dataclasses.replace(current.profile, key=rotate.key, encryption_key=rotate.encryption_key)
    _put_organisation(state, current, rotated, True)


def apply_org_revoke(state: StateOverlay, context: TxContext, revoke: OrgRevoke) -> None:
    _require_validator(context)
    found = organisation_in_force(state, revoke.organisation)
    if found is None:
        raise TxRejected(RejectReason.INVALID, "no organisation in force has this id")
    if _tally(state, context, found.id, _Vote("revoke", b"")):
        _put_organisation(state, found, found.profile, False)


# -- people -------------------------------------------------------------------------


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
    check_fresh_key(state, context, register.key, "the person's key")
    state.put(
        _person_key(register.key),
        Person(register.key, register.key, register.role, register.encryption_key, registrar.id, True),
    )
    state.put(_signer_key(register.key), register.key)
    state.put(_used_key(register.key), True)


def apply_person_rotate(state: StateOverlay, context: TxContext, rotate: PersonRotate) -> None:
    current = person_of(state, context.sender)
    if current is None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "the sender is not the current key of a person in force")
    _check_rotation(state, context, rotate.key, rotate.proof, "the person's new key")
    state.delete(_signer_key(current.key))
    state.put(_signer_key(rotate.key), current.id)
    state.put(_used_key(rotate.key), True)
    rotated = Person(current.id, rotate.key, current.role, rotate.encryption_key, current.organisation, True)
    state.put(_person_key(current.id), rotated)


def apply_person_revoke(state: StateOverlay, context: TxContext, revoke: PersonRevoke) -> None:
    target = person(state, revoke.person)
    if target is None or not target.active:
        raise TxRejected(RejectReason.INVALID, "no person in force has this id")
    registrar = _organisation_signing(state, context.sender)
    by_registrar = registrar is not None and registrar.id == target.organisation
    if context.sender != target.key and not by_registrar:
        if context.sender not in context.validators:
            raise TxRejected(
                RejectReason.NOT_AUTHORISED,
                "only the person, the organisation that registered them or a 2f+1 vote of the validators revokes",
            )
        if not _tally(state, context, target.id, _Vote("revoke-person", b"")):
            return
    elif by_registrar and organisation_of(state, context.sender) is None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "the registering organisation is no longer in force")
    state.delete(_signer_key(target.key))
    state.put(
        _person_key(target.id),
        Person(target.id, target.key, target.role, target.encryption_key, target.organisation, False),
    )


TX_TYPES = (
    TxType("identity.org.propose", OrgProposal, apply_org_propose),
    TxType("identity.org.rotate", OrgRotate, apply_org_rotate),
    TxType("identity.org.revoke", OrgRevoke, apply_org_revoke),
    TxType("identity.person.register", PersonRegister, apply_person_register),
    TxType("identity.person.rotate", PersonRotate, apply_person_rotate),
    TxType("identity.person.revoke", PersonRevoke, apply_person_revoke),
)
