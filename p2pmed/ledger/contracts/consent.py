"""Patient-controlled consent, shaped after FHIR R5 ``Consent.provision``.

A patient (a registered person with the role ``patient``, named by their
person id) grants a grantee (a person in force, by person id, or an
organisation in force, by id: FHIR ``provision.actor``) access to data
categories (``provision.class``) for a purpose of use (``provision.purpose``,
HL7 v3 PurposeOfUse codes) until an expiry (``provision.period.end``). A
consent to an organisation covers the clinicians it registered.

Only the patient, signing with their current key, or a delegate they named
(``consent.delegate``: a guardian, a carer, the site that keeps their records)
grants or revokes; only the patient names or removes delegates. A delegate acts
within its delegation: only its categories and purposes, never to itself, never
past the delegation's expiry; and
what a delegate granted lapses when its delegation ends (removed or expired), so
removing a delegate removes everything it did in the patient's name. A revoke takes
effect from the block that orders it and ends every purpose granted for its
categories. One state entry per (patient, grantee, category, purpose): a grant
for another purpose adds to the ones before it, a grant for the same purpose
replaces that one (its expiry).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from p2pmed import codec
from p2pmed.crypto import PUBLIC_KEY_SIZE
from p2pmed.ledger.contracts import audit
from p2pmed.ledger.contracts.identity import organisation_in_force, organisation_of, person, person_in_force, person_of
from p2pmed.ledger.contracts.policy import CATEGORIES, PURPOSES
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import STATE_VALUE_SIZE_MAX, ScanState, StateOverlay, StateReader

__all__ = [
    "CATEGORIES",
    "PURPOSES",
    "TX_TYPES",
    "ConsentDelegate",
    "ConsentGrant",
    "ConsentProvision",
    "ConsentRevoke",
    "ConsentUndelegate",
    "Delegation",
    "acting_for_patient",
    "consents_in_force",
    "delegations_in_force",
    "party_id",
    "valid_consent",
]

CATEGORIES_MAX = len(CATEGORIES)


@dataclass(frozen=True)
class ConsentGrant:
    patient: bytes
    grantee: bytes
    categories: tuple[str, ...]
    purpose: str
    expires_ms: int


@dataclass(frozen=True)
class ConsentRevoke:
    patient: bytes
    grantee: bytes
    categories: tuple[str, ...]


@dataclass(frozen=True)
class ConsentDelegate:
    """Name a delegate until ``expires_ms``, for these categories and purposes (empty: all)."""

    delegate: bytes
    expires_ms: int
    categories: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsentUndelegate:
    delegate: bytes


@dataclass(frozen=True)
class ConsentProvision:
    """A consent in force, as the ledger keeps it; ``granted_by`` is the patient or a delegate."""

    patient: bytes
    grantee: bytes
    category: str
    purpose: str
    granted_ms: int
    expires_ms: int
    tx_id: bytes
    granted_by: bytes


@dataclass(frozen=True)
class Delegation:
    patient: bytes
    delegate: bytes
    expires_ms: int
    categories: tuple[str, ...]
    purposes: tuple[str, ...]


def _key(patient: bytes, grantee: bytes, category: str, purpose: str) -> str:
    return f"consent/{patient.hex()}/{grantee.hex()}/{category}/{purpose}"


def _delegation_key(patient: bytes, delegate: bytes) -> str:
    return f"consent-delegate/{patient.hex()}/{delegate.hex()}"


def party_id(state: StateReader, key: bytes) -> bytes | None:
    """Who signs with ``key``: the id of a person or an organisation in force."""
    found = person_of(state, key) or organisation_of(state, key)
    return None if found is None else found.id


def _is_party(state: StateReader, party: bytes) -> bool:
    return person_in_force(state, party) is not None or organisation_in_force(state, party) is not None


def _patient_id(state: StateReader, key: bytes) -> bytes:
    found = person_of(state, key)
    if found is None or found.role != "patient":
        raise TxRejected(
            RejectReason.NOT_AUTHORISED, "only a registered patient, signing with their current key, does this"
        )
    return found.id


def acting_for_patient(state: StateOverlay, context: TxContext, patient: bytes) -> bytes:
    """The signer's party id, if they are the patient or a delegate in force; else refuse."""
    return _acting_for(state, context, patient)[0]


def _acting_for(state: StateOverlay, context: TxContext, patient: bytes) -> tuple[bytes, Delegation | None]:
    """``acting_for_patient``, with the delegation the signer acts under (None for the patient)."""
    owner = person(state, patient)
    if owner is None or not owner.active or owner.role != "patient":
        raise TxRejected(RejectReason.INVALID, "no patient in force has this person id")
    signer = party_id(state, context.sender)
    if signer == patient:
        return signer, None
    delegation = None if signer is None else _delegation(state, patient, signer, context.time_ms)
    if signer is None or delegation is None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "only the patient or a delegate they named changes their consent")
    return signer, delegation


def _delegation(state: StateReader, patient: bytes, delegate: bytes, now_ms: int) -> Delegation | None:
    """The patient's delegation to ``delegate``, if in force at ``now_ms``."""
    delegation = StateOverlay(state).get(Delegation, _delegation_key(patient, delegate))
    return delegation if delegation is not None and delegation.expires_ms > now_ms else None


def _check_categories(categories: tuple[str, ...]) -> None:
    if not 0 < len(categories) <= CATEGORIES_MAX:
        raise TxRejected(RejectReason.INVALID, f"give 1..{CATEGORIES_MAX} categories")
    unknown = sorted(set(categories) - CATEGORIES)
    if unknown:
        raise TxRejected(
            RejectReason.INVALID, f"unknown data category {unknown[0]!r}; known: {', '.join(sorted(CATEGORIES))}"
        )
    if len(set(categories)) != len(categories):
        raise TxRejected(RejectReason.INVALID, "a category is listed twice")


def _check_grantee(state: StateReader, grantee: bytes, patient: bytes) -> None:
    if len(grantee) != PUBLIC_KEY_SIZE:
        raise TxRejected(
            RejectReason.INVALID, f"grantee must be a {PUBLIC_KEY_SIZE}-byte person id or organisation key"
        )
    if grantee == patient:
        raise TxRejected(RejectReason.INVALID, "a patient does not need consent to their own records")
    if not _is_party(state, grantee):
        raise TxRejected(RejectReason.INVALID, "the grantee is neither a person nor an organisation in force")


def _check_within_delegation(grant: ConsentGrant, delegation: Delegation) -> None:
    if grant.grantee == delegation.delegate:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "a delegate may not grant consent to itself")
    if grant.expires_ms > delegation.expires_ms:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "a delegate's grant may not outlive its delegation")
    _check_scope(delegation, grant.categories)
    if grant.purpose not in delegation.purposes:
        raise TxRejected(RejectReason.NOT_AUTHORISED, f"the delegation does not cover the purpose {grant.purpose}")


def _check_scope(delegation: Delegation, categories: tuple[str, ...]) -> None:
    outside = sorted(set(categories) - set(delegation.categories))
    if outside:
        raise TxRejected(RejectReason.NOT_AUTHORISED, f"the delegation does not cover the category {outside[0]}")


def apply_grant(state: StateOverlay, context: TxContext, grant: ConsentGrant) -> None:
    granted_by, delegation = _acting_for(state, context, grant.patient)
    if delegation is not None:
        _check_within_delegation(grant, delegation)
    _check_grantee(state, grant.grantee, grant.patient)
    _check_categories(grant.categories)
    if grant.purpose not in PURPOSES:
        raise TxRejected(
            RejectReason.INVALID, f"unknown purpose {grant.purpose!r}; known: {', '.join(sorted(PURPOSES))}"
        )
    if grant.expires_ms <= context.time_ms:
        raise TxRejected(RejectReason.INVALID, "consent would already have expired at this block's time")
    for category in grant.categories:
        provision = ConsentProvision(
            grant.patient,
            grant.grantee,
            category,
            grant.purpose,
            context.time_ms,
            grant.expires_ms,
            context.tx_id,
            granted_by,
        )
        state.put(_key(grant.patient, grant.grantee, category, grant.purpose), provision)
    categories = ",".join(grant.categories)
    audit.record_event(
        state,
        context,
        "consent-grant",
        grant.patient,
        granted_by,
        category=categories,
        purpose=grant.purpose,
        detail=f"grantee {grant.grantee.hex()}",
    )


def apply_revoke(state: StateOverlay, context: TxContext, revoke: ConsentRevoke) -> None:
    revoked_by, delegation = _acting_for(state, context, revoke.patient)
    _check_categories(revoke.categories)
    if delegation is not None:
        _check_scope(delegation, revoke.categories)
    keys = [
        _key(revoke.patient, revoke.grantee, category, purpose)
        for category in revoke.categories
        for purpose in sorted(PURPOSES)
    ]
    if all(state.state_get(key) is None for key in keys):
        raise TxRejected(RejectReason.INVALID, "no consent in force for this grantee and these categories")
    for key in keys:
        state.delete(key)
    audit.record_event(
        state,
        context,
        "consent-revoke",
        revoke.patient,
        revoked_by,
        category=",".join(revoke.categories),
        detail=f"grantee {revoke.grantee.hex()}",
    )


def apply_delegate(state: StateOverlay, context: TxContext, delegate: ConsentDelegate) -> None:
    patient = _patient_id(state, context.sender)
    if delegate.delegate == patient:
        raise TxRejected(RejectReason.INVALID, "a patient cannot name themself as their delegate")
    if not _is_party(state, delegate.delegate):
        raise TxRejected(RejectReason.INVALID, "the delegate is neither a person nor an organisation in force")
    if delegate.expires_ms <= context.time_ms:
        raise TxRejected(RejectReason.INVALID, "the delegation would already have expired at this block's time")
    if delegate.categories:
        _check_categories(delegate.categories)
    unknown = sorted(set(delegate.purposes) - PURPOSES)
    if unknown or len(set(delegate.purposes)) != len(delegate.purposes):
        raise TxRejected(RejectReason.INVALID, f"purposes must be distinct, known ones; not {unknown or 'repeated'}")
    categories = tuple(sorted(delegate.categories or CATEGORIES))
    purposes = tuple(sorted(delegate.purposes or PURPOSES))
    delegation = Delegation(patient, delegate.delegate, delegate.expires_ms, categories, purposes)
    state.put(_delegation_key(patient, delegate.delegate), delegation)
    audit.record_event(
        state, context, "consent-delegate", patient, patient, detail=f"delegate {delegate.delegate.hex()}"
    )


def apply_undelegate(state: StateOverlay, context: TxContext, undelegate: ConsentUndelegate) -> None:
    patient = _patient_id(state, context.sender)
    key = _delegation_key(patient, undelegate.delegate)
    if state.state_get(key) is None:
        raise TxRejected(RejectReason.INVALID, "this patient has named no such delegate")
    state.delete(key)
    audit.record_event(
        state, context, "consent-undelegate", patient, patient, detail=f"delegate {undelegate.delegate.hex()}"
    )


def _in_force(state: StateReader, provision: ConsentProvision, now_ms: int) -> bool:
    """Unexpired, and if a delegate granted it, that delegation still in force."""
    if provision.expires_ms <= now_ms:
        return False
    if provision.granted_by == provision.patient:
        return True
    return _delegation(state, provision.patient, provision.granted_by, now_ms) is not None


def consents_in_force(state: ScanState, patient: bytes, now_ms: int) -> Iterator[ConsentProvision]:
    """The consents ``patient`` has in force at ``now_ms``, by grantee, then category."""
    for _key, data in state.state_items(f"consent/{patient.hex()}/"):
        provision = codec.decode(ConsentProvision, data, STATE_VALUE_SIZE_MAX)
        if _in_force(state, provision, now_ms):
            yield provision


def delegations_in_force(state: ScanState, patient: bytes, now_ms: int) -> list[Delegation]:
    """The delegates ``patient`` has named who may act for them at ``now_ms``."""
    delegations = (
        codec.decode(Delegation, data, STATE_VALUE_SIZE_MAX)
        for _key, data in state.state_items(f"consent-delegate/{patient.hex()}/")
    )
    return [delegation for delegation in delegations if delegation.expires_ms > now_ms]


def valid_consent(
    state: StateReader, patient: bytes, grantee: bytes, category: str, now_ms: int, purpose: str | None = None
) -> ConsentProvision | None:
    """The consent that lets ``grantee`` see ``patient``'s ``category`` data at ``now_ms`` for
    ``purpose`` (for any purpose, the first in alphabetical order, when None), if any."""
    view = StateOverlay(state)
    for candidate in sorted(PURPOSES) if purpose is None else [purpose]:
        provision = view.get(ConsentProvision, _key(patient, grantee, category, candidate))
        if provision is not None and _in_force(state, provision, now_ms):
            return provision
    return None


TX_TYPES = (
    TxType("consent.grant", ConsentGrant, apply_grant),
    TxType("consent.revoke", ConsentRevoke, apply_revoke),
    TxType("consent.delegate", ConsentDelegate, apply_delegate),
    TxType("consent.undelegate", ConsentUndelegate, apply_undelegate),
)
