"""Patient-controlled consent, shaped after FHIR R5 ``Consent.provision``.

A patient (a registered person with the role ``patient``, named by their
person id) grants a grantee (a person in force, by person id, or an
organisation in force, by id: FHIR ``provision.actor``) access to data
categories (``provision.class``) for purposes of use (``provision.purpose``,
HL7 v3 PurposeOfUse codes) until an expiry (``provision.period.end``). A
consent to an organisation covers the clinicians it registered.

A patient also records denies (``consent.deny``, FHIR's deny provisions): a
grantee, or everyone, may not see these categories for these purposes until an
expiry. A deny in force overrides every permit it covers, whether granted before
or after it (FHIR: a nested deny excepts from the permit); a deny of an
organisation covers the staff it registered, as a consent to it does. Lifting
the deny (``consent.undeny``) restores the permits it covered. Break-glass is
not bound by a deny: an emergency read for treatment overrides the patient's
restrictions, and its audit entry says which deny it overrode
(``records._break_glass``).

Only the patient, signing with their current key, or a delegate they named
(``consent.delegate``: a guardian, a carer, the site that keeps their records)
grants, revokes, denies or lifts a deny; only the patient names or removes
delegates. A delegate acts within its delegation: only its categories and
purposes, never past the delegation's expiry, and never granting to itself; and
what a delegate granted or denied lapses when its delegation ends (removed or
expired), so removing a delegate removes everything it did in the patient's name.

Research consent to one study (``consent.study``: purpose HRESCH, scoped to a study id): the
patient agrees to the study as registered (``studies``): its categories, its
organisation as the reader, until the study's period ends. It opens that study and no other:
it is kept apart from the grants above (``consent-study/``), so it never counts as an HRESCH
grant to the organisation for another study or for plain reads. Only the patient, or a
delegate who is a person (a guardian, a carer) within HRESCH and the study's categories and
not staff of the study's organisation, consents: an organisation that keeps a patient's
records as their delegate must not enrol them in research, least of all its own. The
patient or any delegate in force withdraws it (``consent.study-withdraw``); a deny of the
organisation or of everyone for HRESCH still overrides it, category by category.
A revoke takes effect from the block that orders it and ends every purpose
granted for its categories; lifting a deny likewise ends every purpose it denied
for its categories. One state entry per (patient, grantee, category, purpose),
for grants and for denies apart: a grant for another purpose adds to the ones
before it, a grant for the same purpose replaces that one (its expiry); denies
likewise. A transaction names 1..8 distinct known categories and 1..7 distinct
known purposes, so it writes at most 56 entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from p2pmed import codec
from p2pmed.crypto import PUBLIC_KEY_SIZE
from p2pmed.ledger.contracts import audit
from p2pmed.ledger.contracts.identity import organisation_in_force, organisation_of, person, person_in_force, person_of
from p2pmed.ledger.contracts.policy import CATEGORIES, PURPOSES
from p2pmed.ledger.contracts.studies import RESEARCH_PURPOSE, Study, check_study_id, study_open
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import STATE_VALUE_SIZE_MAX, ScanState, StateOverlay, StateReader

__all__ = [
    "CATEGORIES",
    "EVERYONE",
    "NEVER_MS",
    "PURPOSES",
    "TX_TYPES",
    "ConsentDelegate",
    "ConsentDeny",
    "ConsentGrant",
    "ConsentProvision",
    "ConsentRevoke",
    "ConsentUndelegate",
    "ConsentUndeny",
    "Delegation",
    "DenyProvision",
    "StudyConsent",
    "StudyProvision",
    "StudyWithdraw",
    "acting_for_patient",
    "consents_in_force",
    "delegations_in_force",
    "denies_in_force",
    "deny_covering",
    "party_id",
    "permit_in_force",
    "study_consent",
    "study_participants",
    "valid_consent",
]

CATEGORIES_MAX = len(CATEGORIES)
PURPOSES_MAX = len(PURPOSES)
EVERYONE = b""
"""The grantee of a deny that binds every reader."""
NEVER_MS = 2**63 - 1
"""The expiry of a deny that holds until it is lifted."""


@dataclass(frozen=True)
class ConsentGrant:
    patient: bytes
    grantee: bytes
    categories: tuple[str, ...]
    purposes: tuple[str, ...]
    expires_ms: int


@dataclass(frozen=True)
class ConsentRevoke:
    patient: bytes
    grantee: bytes
    categories: tuple[str, ...]


@dataclass(frozen=True)
class ConsentDeny:
    """``grantee`` (a party, or ``EVERYONE``) may not see these categories for these purposes
    until ``expires_ms`` (``NEVER_MS``: until lifted), whatever consents say."""

    patient: bytes
    grantee: bytes
    categories: tuple[str, ...]
    purposes: tuple[str, ...]
    expires_ms: int


@dataclass(frozen=True)
class ConsentUndeny:
    """Lift the denies of ``grantee`` (or ``EVERYONE``) for these categories, every purpose."""

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
class DenyProvision:
    """A deny in force, as the ledger keeps it; ``grantee`` is ``EVERYONE`` for a deny of all readers."""

    patient: bytes
    grantee: bytes
    category: str
    purpose: str
    denied_ms: int
    expires_ms: int
    tx_id: bytes
    denied_by: bytes


@dataclass(frozen=True)
class Delegation:
    patient: bytes
    delegate: bytes
    expires_ms: int
    categories: tuple[str, ...]
    purposes: tuple[str, ...]


@dataclass(frozen=True)
class StudyConsent:
    """The patient's research consent to one study, as it was registered."""

    patient: bytes
    study_id: str


@dataclass(frozen=True)
class StudyWithdraw:
    patient: bytes
    study_id: str


@dataclass(frozen=True)
class StudyProvision:
    """A research consent to one study in force; ``grantee`` is the study's organisation."""

    patient: bytes
    study_id: str
    grantee: bytes
    categories: tuple[str, ...]
    granted_ms: int
    expires_ms: int
    tx_id: bytes
    granted_by: bytes


def _key(patient: bytes, grantee: bytes, category: str, purpose: str) -> str:
    return f"consent/{patient.hex()}/{grantee.hex()}/{category}/{purpose}"


def _deny_key(patient: bytes, grantee: bytes, category: str, purpose: str) -> str:
    return f"consent-deny/{patient.hex()}/{grantee.hex() or 'everyone'}/{category}/{purpose}"


def _delegation_key(patient: bytes, delegate: bytes) -> str:
    return f"consent-delegate/{patient.hex()}/{delegate.hex()}"


def _study_key(patient: bytes, study_id: str) -> str:
    return f"consent-study/{patient.hex()}/{study_id}"


def _participant_key(study_id: str, patient: bytes) -> str:
    return f"consent-study-of/{study_id}/{patient.hex()}"


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
    """The patient's delegation to ``delegate``, if in force at ``now_ms``: unexpired, and the
    delegate still a party in force (a delegate the validators or its organisation revoked is
    removed, and what it did in the patient's name lapses with it)."""
    delegation = StateOverlay(state).get(Delegation, _delegation_key(patient, delegate))
    if delegation is None or delegation.expires_ms <= now_ms or not _is_party(state, delegate):
        return None
    return delegation


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


def _check_purposes(purposes: tuple[str, ...]) -> None:
    if not 0 < len(purposes) <= PURPOSES_MAX:
        raise TxRejected(RejectReason.INVALID, f"give 1..{PURPOSES_MAX} purposes")
    unknown = sorted(set(purposes) - PURPOSES)
    if unknown:
        raise TxRejected(RejectReason.INVALID, f"unknown purpose {unknown[0]!r}; known: {', '.join(sorted(PURPOSES))}")
    if len(set(purposes)) != len(purposes):
        raise TxRejected(RejectReason.INVALID, "a purpose is listed twice")


def _check_grantee(state: StateReader, grantee: bytes, patient: bytes) -> None:
    if len(grantee) != PUBLIC_KEY_SIZE:
        raise TxRejected(
            RejectReason.INVALID, f"grantee must be a {PUBLIC_KEY_SIZE}-byte person id or organisation key"
        )
    if grantee == patient:
        raise TxRejected(RejectReason.INVALID, "a patient does not need consent to their own records")
    if not _is_party(state, grantee):
        raise TxRejected(RejectReason.INVALID, "the grantee is neither a person nor an organisation in force")


def _check_scope(delegation: Delegation, categories: tuple[str, ...], purposes: tuple[str, ...] = ()) -> None:
    outside = sorted(set(categories) - set(delegation.categories))
    if outside:
        raise TxRejected(RejectReason.NOT_AUTHORISED, f"the delegation does not cover the category {outside[0]}")
    outside = sorted(set(purposes) - set(delegation.purposes))
    if outside:
        raise TxRejected(RejectReason.NOT_AUTHORISED, f"the delegation does not cover the purpose {outside[0]}")


def _check_provision(
    state: StateReader,
    context: TxContext,
    body: ConsentGrant | ConsentDeny,
    delegation: Delegation | None,
    what: str,
) -> None:
    """What a grant and a deny share: a grantee in force (or everyone, for a deny), categories,
    purposes and an expiry in the future, all within the delegation the signer acts under."""
    if body.grantee != EVERYONE or isinstance(body, ConsentGrant):
        _check_grantee(state, body.grantee, body.patient)
    _check_categories(body.categories)
    _check_purposes(body.purposes)
    if body.expires_ms <= context.time_ms:
        raise TxRejected(RejectReason.INVALID, f"the {what} would already have expired at this block's time")
    if delegation is not None:
        if body.expires_ms > delegation.expires_ms:
            raise TxRejected(RejectReason.NOT_AUTHORISED, f"a delegate's {what} may not outlive its delegation")
        _check_scope(delegation, body.categories, body.purposes)


def apply_grant(state: StateOverlay, context: TxContext, grant: ConsentGrant) -> None:
    granted_by, delegation = _acting_for(state, context, grant.patient)
    if delegation is not None and grant.grantee == delegation.delegate:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "a delegate may not grant consent to itself")
    _check_provision(state, context, grant, delegation, "grant")
    for category in grant.categories:
        for purpose in grant.purposes:
            provision = ConsentProvision(
                grant.patient,
                grant.grantee,
                category,
                purpose,
                context.time_ms,
                grant.expires_ms,
                context.tx_id,
                granted_by,
            )
            state.put(_key(grant.patient, grant.grantee, category, purpose), provision)
    audit.record_event(
        state,
        context,
        "consent-grant",
        grant.patient,
        granted_by,
        category=",".join(grant.categories),
        purpose=",".join(grant.purposes),
        detail=f"grantee {grant.grantee.hex()}",
    )


def apply_deny(state: StateOverlay, context: TxContext, deny: ConsentDeny) -> None:
    denied_by, delegation = _acting_for(state, context, deny.patient)
    _check_provision(state, context, deny, delegation, "deny")
    for category in deny.categories:
        for purpose in deny.purposes:
            provision = DenyProvision(
                deny.patient,
                deny.grantee,
                category,
                purpose,
                context.time_ms,
                deny.expires_ms,
                context.tx_id,
                denied_by,
            )
            state.put(_deny_key(deny.patient, deny.grantee, category, purpose), provision)
    audit.record_event(
        state,
        context,
        "consent-deny",
        deny.patient,
        denied_by,
        category=",".join(deny.categories),
        purpose=",".join(deny.purposes),
        detail=f"denied {deny.grantee.hex() or 'everyone'}",
    )


def _end_every_purpose(
    state: StateOverlay,
    context: TxContext,
    ended: ConsentRevoke | ConsentUndeny,
    key: Callable[[bytes, bytes, str, str], str],
    nothing: str,
) -> bytes:
    """Delete the entries of (patient, grantee, each category, every purpose) for a revoke or
    a lifted deny; refuse if none was there. Returns who did it."""
    actor, delegation = _acting_for(state, context, ended.patient)
    _check_categories(ended.categories)
    if delegation is not None:
        _check_scope(delegation, ended.categories)
    keys = [
        key(ended.patient, ended.grantee, category, purpose)
        for category in ended.categories
        for purpose in sorted(PURPOSES)
    ]
    if all(state.state_get(each) is None for each in keys):
        raise TxRejected(RejectReason.INVALID, nothing)
    for each in keys:
        state.delete(each)
    return actor


def apply_revoke(state: StateOverlay, context: TxContext, revoke: ConsentRevoke) -> None:
    revoked_by = _end_every_purpose(
        state, context, revoke, _key, "no consent in force for this grantee and these categories"
    )
    audit.record_event(
        state,
        context,
        "consent-revoke",
        revoke.patient,
        revoked_by,
        category=",".join(revoke.categories),
        detail=f"grantee {revoke.grantee.hex()}",
    )


def apply_undeny(state: StateOverlay, context: TxContext, undeny: ConsentUndeny) -> None:
    lifted_by = _end_every_purpose(
        state, context, undeny, _deny_key, "no deny recorded for this grantee and these categories"
    )
    audit.record_event(
        state,
        context,
        "consent-undeny",
        undeny.patient,
        lifted_by,
        category=",".join(undeny.categories),
        detail=f"denied {undeny.grantee.hex() or 'everyone'}",
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


def _in_force(state: StateReader, provision: ConsentProvision | DenyProvision | StudyProvision, now_ms: int) -> bool:
    """Unexpired, and if a delegate recorded it, that delegation still in force."""
    if provision.expires_ms <= now_ms:
        return False
    by = provision.denied_by if isinstance(provision, DenyProvision) else provision.granted_by
    if by == provision.patient:
        return True
    return _delegation(state, provision.patient, by, now_ms) is not None


def consents_in_force(state: ScanState, patient: bytes, now_ms: int) -> Iterator[ConsentProvision]:
    """The consents ``patient`` has in force at ``now_ms``, by grantee, then category (a consent
    a deny overrides is still listed: it holds again once the deny is lifted or ends)."""
    for _key, data in state.state_items(f"consent/{patient.hex()}/"):
        provision = codec.decode(ConsentProvision, data, STATE_VALUE_SIZE_MAX)
        if _in_force(state, provision, now_ms):
            yield provision


def denies_in_force(state: ScanState, patient: bytes, now_ms: int) -> Iterator[DenyProvision]:
    """The denies ``patient`` has in force at ``now_ms``, by grantee (everyone last), then category."""
    for _key, data in state.state_items(f"consent-deny/{patient.hex()}/"):
        provision = codec.decode(DenyProvision, data, STATE_VALUE_SIZE_MAX)
        if _in_force(state, provision, now_ms):
            yield provision


def delegations_in_force(state: ScanState, patient: bytes, now_ms: int) -> list[Delegation]:
    """The delegates ``patient`` has named who may act for them at ``now_ms``."""
    delegations = (
        codec.decode(Delegation, data, STATE_VALUE_SIZE_MAX)
        for _key, data in state.state_items(f"consent-delegate/{patient.hex()}/")
    )
    return [
        delegation
        for delegation in delegations
        if delegation.expires_ms > now_ms and _is_party(state, delegation.delegate)
    ]


def deny_covering(
    state: StateReader, patient: bytes, parties: Iterable[bytes], category: str, purpose: str, now_ms: int
) -> DenyProvision | None:
    """The deny in force at ``now_ms`` that refuses ``patient``'s ``category`` data for ``purpose``
    to any of ``parties`` (a reader and the organisation it works for), or to everyone, if any."""
    view = StateOverlay(state)
    for party in (*parties, EVERYONE):
        provision = view.get(DenyProvision, _deny_key(patient, party, category, purpose))
        if provision is not None and _in_force(state, provision, now_ms):
            return provision
    return None


def permit_in_force(
    state: StateReader, patient: bytes, grantee: bytes, category: str, purpose: str, now_ms: int
) -> ConsentProvision | None:
    """The consent ``patient`` gave ``grantee`` for ``category`` and ``purpose``, if in force at
    ``now_ms``, whether or not a deny overrides it (for a caller that has checked the denies)."""
    provision = StateOverlay(state).get(ConsentProvision, _key(patient, grantee, category, purpose))
    return provision if provision is not None and _in_force(state, provision, now_ms) else None


def valid_consent(
    state: StateReader, patient: bytes, grantee: bytes, category: str, now_ms: int, purpose: str | None = None
) -> ConsentProvision | None:
    """The consent that lets ``grantee`` see ``patient``'s ``category`` data at ``now_ms`` for
    ``purpose`` (for any purpose, the first in alphabetical order, when None), if any: in force,
    and no deny in force of ``grantee`` or of everyone covers it."""
    for candidate in sorted(PURPOSES) if purpose is None else [purpose]:
        provision = permit_in_force(state, patient, grantee, category, candidate, now_ms)
        if provision is not None and deny_covering(state, patient, (grantee,), category, candidate, now_ms) is None:
            return provision
    return None


def _open_study(state: StateReader, context: TxContext, study_id: str) -> Study:
    check_study_id(study_id)
    found = study_open(state, study_id, context.time_ms)
    if found is None:
        raise TxRejected(
            RejectReason.INVALID, f"no approved study {study_id} is open at this block's time (see research.study)"
        )
    return found


def _check_study_delegate(state: StateReader, delegation: Delegation, found: Study) -> None:
    """A delegate consents to research only as a person outside the study's organisation."""
    delegate = person_in_force(state, delegation.delegate)
    if delegate is None or (delegate.organisation == found.organisation and delegate.role != "patient"):
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            "a delegate consents to a study only as a person (a guardian, a carer), never as an organisation or"
            " staff of the study's organisation",
        )
    _check_scope(delegation, found.terms.categories, (RESEARCH_PURPOSE,))


def apply_study_consent(state: StateOverlay, context: TxContext, consent: StudyConsent) -> None:
    granted_by, delegation = _acting_for(state, context, consent.patient)
    found = _open_study(state, context, consent.study_id)
    expires_ms = found.terms.end_ms
    if delegation is not None:
        _check_study_delegate(state, delegation, found)
        expires_ms = min(expires_ms, delegation.expires_ms)
    if state.state_get(_study_key(consent.patient, found.study_id)) is not None:
        raise TxRejected(RejectReason.INVALID, f"the patient already consents to study {found.study_id}")
    provision = StudyProvision(
        consent.patient,
        found.study_id,
        found.organisation,
        found.terms.categories,
        context.time_ms,
        expires_ms,
        context.tx_id,
        granted_by,
    )
    state.put(_study_key(consent.patient, found.study_id), provision)
    state.put(_participant_key(found.study_id, consent.patient), provision)
    audit.record_event(
        state,
        context,
        "consent-study",
        consent.patient,
        granted_by,
        category=",".join(found.terms.categories),
        purpose=RESEARCH_PURPOSE,
        detail=f"study {found.study_id} of organisation {found.organisation.hex()}",
    )


def apply_study_withdraw(state: StateOverlay, context: TxContext, withdraw: StudyWithdraw) -> None:
    withdrawn_by = acting_for_patient(state, context, withdraw.patient)
    check_study_id(withdraw.study_id)
    if state.state_get(_study_key(withdraw.patient, withdraw.study_id)) is None:
        raise TxRejected(RejectReason.INVALID, f"the patient gave no consent to study {withdraw.study_id}")
    state.delete(_study_key(withdraw.patient, withdraw.study_id))
    state.delete(_participant_key(withdraw.study_id, withdraw.patient))
    audit.record_event(
        state,
        context,
        "consent-study-withdraw",
        withdraw.patient,
        withdrawn_by,
        purpose=RESEARCH_PURPOSE,
        detail=f"study {withdraw.study_id}",
    )


def study_consent(state: StateReader, patient: bytes, study_id: str, now_ms: int) -> StudyProvision | None:
    """The patient's consent to this study in force at ``now_ms``, if any (denies not checked)."""
    provision = StateOverlay(state).get(StudyProvision, _study_key(patient, study_id))
    return provision if provision is not None and _in_force(state, provision, now_ms) else None


def study_participants(state: ScanState, study_id: str, now_ms: int) -> list[StudyProvision]:
    """The consents to this study in force at ``now_ms``, by patient id."""
    provisions = (
        codec.decode(StudyProvision, data, STATE_VALUE_SIZE_MAX)
        for _key, data in state.state_items(f"consent-study-of/{study_id}/")
    )
    return [provision for provision in provisions if _in_force(state, provision, now_ms)]


TX_TYPES = (
    TxType("consent.grant", ConsentGrant, apply_grant),
    TxType("consent.revoke", ConsentRevoke, apply_revoke),
    TxType("consent.deny", ConsentDeny, apply_deny),
    TxType("consent.undeny", ConsentUndeny, apply_undeny),
    TxType("consent.delegate", ConsentDelegate, apply_delegate),
    TxType("consent.undelegate", ConsentUndelegate, apply_undelegate),
    TxType("consent.study", StudyConsent, apply_study_consent),
    TxType("consent.study-withdraw", StudyWithdraw, apply_study_withdraw),
)
