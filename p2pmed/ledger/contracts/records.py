"""Health records: anchors on the ledger, content encrypted off it.

The writer's client pads and encrypts a record (AES-256-GCM under a fresh data
key) and splits the data key into one Shamir share per custodian
(``p2pmed.key_shares``), each sealed (HPKE) to its custodian. The ciphertext and
the sealed shares live at the custodians: at least 2f+1 validators, any
``threshold`` of whose shares open the record, with f < threshold <= custodians
- f: no f sites (which may all be Byzantine) can open a record, and any f down
still leave enough to read it. The ledger holds only the anchor
(``record.add``): record id, patient, data category, SHA-256 and padded size of
the ciphertext, custodians, threshold, a digest of each share, writer. Who writes what follows ``policy``: a role or
organisation kind writes only its categories, and only for a patient in its care
(registered at its organisation, or who gave it a consent in force for the
category); the patient may add their own.

Reading is a transaction too (``record.read``), signed by the reader, so the
decision is the ledger's and every read is on it. The stated purpose must fit the
reader's role or kind (``policy.PURPOSES_OF``). It passes when the reader is
the patient, holds a consent in force for the record's category and the stated
purpose, or is staff of an organisation that holds one. A clinician of a care
provider may instead break the glass for treatment (``break_glass`` with a stated
reason): allowed without consent, always recorded as such. A read for a research study
(``study`` set, purpose HRESCH) passes only on the patient's consent to that study
(``consent.study``), by the study's organisation or its researchers, within the study's
categories while it is open (``studies``); no other consent counts for it. A passing read leaves a read grant that lets
the custodians hand the ciphertext and their key shares to that reader for
``READ_GRANT_MS``; they check it, and the consent, again at their latest height.

Erasure (``record.erase``, by the patient or a delegate) marks the anchor
erased; the custodians then delete the ciphertext and every wrap
(crypto-shredding). The anchor stays and says when it was erased; reads of an
erased record are refused.

Every write, read, break-glass and erasure is an audit entry
(``p2pmed.ledger.contracts.audit``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from p2pmed.crypto import is_padded_sealed_size
from p2pmed.ledger.contracts import audit
from p2pmed.ledger.contracts.consent import (
    CATEGORIES,
    PURPOSES,
    DenyProvision,
    acting_for_patient,
    deny_covering,
    party_id,
    permit_in_force,
    study_consent,
    valid_consent,
)
from p2pmed.ledger.contracts.identity import Person, organisation_in_force, organisation_of, person, person_of
from p2pmed.ledger.contracts.policy import (
    BREAK_GLASS_PER_WINDOW,
    BREAK_GLASS_PURPOSES,
    BREAK_GLASS_WINDOW_MS,
    CARE_PROVIDERS,
    CATEGORIES_WRITTEN_BY,
    PURPOSES_OF,
    STAFF_ROLES,
)
from p2pmed.ledger.contracts.studies import RESEARCH_PURPOSE, study_open, study_reader
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader
from p2pmed.quorum import fault_tolerance

__all__ = [
    "READ_GRANT_MS",
    "REVIEW_FINDINGS",
    "TX_TYPES",
    "Access",
    "BreakGlassReview",
    "ReadGrant",
    "Record",
    "RecordAdd",
    "RecordErase",
    "RecordRead",
    "access",
    "anchor_record",
    "read_grant",
    "record",
]

RECORD_ID_SIZE = 32
SIZE_MAX = 1 << 20
"""Largest ciphertext a record may have: it travels whole, as hex in one RPC line and in one blob message."""
DIGEST_SIZE = hashlib.sha256().digest_size
CUSTODIANS_MAX = 255
"""Shamir shares are numbered 1..255 (``p2pmed.key_shares``)."""
READ_GRANT_MS = 10 * 60 * 1000
DETAIL_LENGTH_MAX = 500
SEALED_REASONS_MAX = 4
SEALED_REASON_BYTES_MAX = 4096


@dataclass(frozen=True)
class RecordAdd:
    record_id: bytes
    patient: bytes
    category: str
    ciphertext_sha256: bytes
    size: int
    custodians: tuple[bytes, ...]
    threshold: int
    share_sha256: tuple[bytes, ...]
    """``p2pmed.key_shares.share_digest`` of each custodian's share, in the order of ``custodians``."""


@dataclass(frozen=True)
class RecordRead:
    """A read; a break-glass read carries its stated reason off the ledger: the reason's salted
    SHA-256 (``reason_sha256``) and the reason sealed to the patient and the clinician's
    organisation (``reason_sealed``, see ``p2pmed.client.records.seal_reason``). The text may
    be health information, and the ledger is for ever and everywhere."""

    record_id: bytes
    purpose: str
    break_glass: bool
    reason_sha256: bytes = b""
    reason_sealed: tuple[bytes, ...] = ()
    study: str = ""
    """The research study the read is for (purpose HRESCH), if any."""


@dataclass(frozen=True)
class RecordErase:
    record_id: bytes


@dataclass(frozen=True)
class Record:
    """A record's anchor as the ledger keeps it."""

    record_id: bytes
    patient: bytes
    category: str
    ciphertext_sha256: bytes
    size: int
    custodians: tuple[bytes, ...]
    threshold: int
    share_sha256: tuple[bytes, ...]
    writer: bytes
    written_ms: int
    height: int
    erased_ms: int | None


@dataclass(frozen=True)
class ReadGrant:
    record_id: bytes
    reader: bytes
    basis: str
    purpose: str
    expires_ms: int
    tx_id: bytes
    study: str = ""


@dataclass(frozen=True)
class Access:
    """Why a reader may read a record (``basis``), or why not (``basis`` empty)."""

    basis: str  # "owner", "consent", "organisation-consent", "study-consent", "break-glass" or ""
    detail: str

    @property
    def allowed(self) -> bool:
        return bool(self.basis)


def _record_key(record_id: bytes) -> str:
    return f"record/{record_id.hex()}"


REVIEW_FINDINGS = frozenset({"justified", "unjustified"})


@dataclass(frozen=True)
class BreakGlassReview:
    """The organisation of a clinician who broke the glass reviews it (``event``: that read's tx id)."""

    event: bytes
    finding: str


@dataclass(frozen=True)
class BreakGlassEvent:
    """A break-glass read awaiting (``finding`` empty) or given its organisation's review."""

    record_id: bytes
    patient: bytes
    clinician: bytes
    organisation: bytes
    finding: str


def _break_glass_event_key(tx_id: bytes) -> str:
    return f"record-break-glass-event/{tx_id.hex()}"


@dataclass(frozen=True)
class BreakGlassLog:
    """When a clinician last broke the glass, within ``BREAK_GLASS_WINDOW_MS``."""

    times_ms: tuple[int, ...]


def _break_glass_key(clinician: bytes) -> str:
    return f"record-break-glass/{clinician.hex()}"


def _recent_break_glass(state: StateReader, clinician: bytes, now_ms: int) -> tuple[int, ...]:
    log = StateOverlay(state).get(BreakGlassLog, _break_glass_key(clinician))
    return () if log is None else tuple(t for t in log.times_ms if t > now_ms - BREAK_GLASS_WINDOW_MS)


def _grant_key(record_id: bytes, reader: bytes) -> str:
    return f"record-read/{record_id.hex()}/{reader.hex()}"


def record(state: StateReader, record_id: bytes) -> Record | None:
    return StateOverlay(state).get(Record, _record_key(record_id))


def read_grant(state: StateReader, record_id: bytes, reader: bytes, now_ms: int) -> ReadGrant | None:
    """The read grant that lets custodians serve ``reader`` (a party id) at ``now_ms``, if any."""
    grant = StateOverlay(state).get(ReadGrant, _grant_key(record_id, reader))
    return grant if grant is not None and grant.expires_ms > now_ms else None


def _deny_detail(denial: DenyProvision) -> str:
    who = "everyone" if not denial.grantee else denial.grantee.hex()[:16]
    return f"deny {denial.tx_id.hex()[:16]} of {who} for {denial.category}, {denial.purpose}"


def _study_access(
    state: StateReader, reader_key: bytes, found: Record, purpose: str, study_id: str, now_ms: int
) -> Access:
    """A read for a study: its organisation or researchers, its categories, the patient's consent to it."""
    if purpose != RESEARCH_PURPOSE:
        return Access("", f"a read for a study is for research ({RESEARCH_PURPOSE}), not {purpose}")
    opened = study_open(state, study_id, now_ms)
    if opened is None:
        return Access("", f"no approved study {study_id[:40]} is open now")
    reader = study_reader(state, reader_key, opened)
    if reader is None:
        return Access("", f"only study {study_id}'s organisation or its researchers read for it")
    if found.category not in opened.terms.categories:
        return Access("", f"study {study_id} did not ask for {found.category} records")
    denial = deny_covering(state, found.patient, (reader, opened.organisation), found.category, purpose, now_ms)
    if denial is not None:
        return Access("", f"the patient's {_deny_detail(denial)} is in force: it overrides any consent")
    provision = study_consent(state, found.patient, study_id, now_ms)
    if provision is None:
        return Access("", f"the patient has no consent in force to study {study_id}")
    return Access("study-consent", f"consent {provision.tx_id.hex()[:16]} to study {study_id}")


def access(
    state: StateReader, reader_key: bytes, found: Record, purpose: str, now_ms: int, study_id: str = ""
) -> Access:
    """May the party signing with ``reader_key`` read ``found`` for ``purpose`` (for the study
    ``study_id``, if given) at ``now_ms``?"""
    if found.erased_ms is not None:
        return Access("", "the record was erased at the patient's request")
    acting = _acting_as(state, reader_key)
    if acting is None:
        return Access("", "the reader is neither a person nor an organisation in force")
    reader, role, employer = acting
    if reader == found.patient:
        return Access("owner", "the patient reads their own record")
    if study_id:
        return _study_access(state, reader_key, found, purpose, study_id, now_ms)
    organisation = employer if role in STAFF_ROLES else None
    parties = (reader,) if organisation is None else (reader, organisation)
    denial = deny_covering(state, found.patient, parties, found.category, purpose, now_ms)
    if denial is not None:
        return Access("", f"the patient's {_deny_detail(denial)} is in force: it overrides any consent")
    provision = permit_in_force(state, found.patient, reader, found.category, purpose, now_ms)
    if provision is not None:
        return Access("consent", f"consent {provision.tx_id.hex()[:16]} for {found.category}, {purpose}")
    if organisation is not None:
        provision = permit_in_force(state, found.patient, organisation, found.category, purpose, now_ms)
        if provision is not None:
            return Access("organisation-consent", f"consent {provision.tx_id.hex()[:16]} to the reader's organisation")
    return Access("", f"no consent in force lets this reader see {found.category} records for {purpose}")


def _check_custody(context: TxContext, add: RecordAdd) -> None:
    faulty = fault_tolerance(len(context.validators)) if context.validators else 0
    custodians = add.custodians
    if len(set(custodians)) != len(custodians):
        raise TxRejected(RejectReason.INVALID, "a custodian is listed twice")
    if len(custodians) < 2 * faulty + 1:
        raise TxRejected(
            RejectReason.INVALID,
            f"name at least {2 * faulty + 1} custodians (2f+1), so that f sites can neither open nor lose a record",
        )
    if len(custodians) > CUSTODIANS_MAX:
        raise TxRejected(RejectReason.INVALID, f"name at most {CUSTODIANS_MAX} custodians (one key share each)")
    strangers = [custodian for custodian in custodians if custodian not in context.validators]
    if strangers:
        raise TxRejected(RejectReason.INVALID, f"custodian {strangers[0].hex()[:16]}… does not run a validator node")
    if not faulty < add.threshold <= len(custodians) - faulty:
        raise TxRejected(
            RejectReason.INVALID,
            f"threshold must be {faulty + 1}..{len(custodians) - faulty} for {len(custodians)} custodians: more"
            f" than f ({faulty}) so f sites cannot open the record, at most custodians - f so f down can",
        )
    if len(add.share_sha256) != len(custodians) or any(len(d) != DIGEST_SIZE for d in add.share_sha256):
        raise TxRejected(RejectReason.INVALID, "give one 32-byte share digest per custodian, in the same order")


def _acting_as(state: StateReader, key: bytes) -> tuple[bytes, str, bytes | None] | None:
    """Who signs with ``key``: (party id, role or organisation kind, the organisation a person
    works for), or None for a key of no party in force."""
    found = person_of(state, key)
    if found is not None:
        return found.id, found.role, found.organisation
    organisation = organisation_of(state, key)
    return None if organisation is None else (organisation.id, organisation.kind, organisation.id)


def _in_care_of(
    state: StateReader, patient: Person, writer: bytes, organisation: bytes | None, category: str, now_ms: int
) -> bool:
    """A care relationship: the patient is registered at the writer's organisation, or gave the
    writer or its organisation a consent in force for ``category`` (any purpose)."""
    if organisation is not None and patient.organisation == organisation:
        return True
    grantees = [writer] if organisation is None or organisation == writer else [writer, organisation]
    return any(valid_consent(state, patient.id, grantee, category, now_ms) is not None for grantee in grantees)


def apply_add(state: StateOverlay, context: TxContext, add: RecordAdd) -> None:
    acting = _acting_as(state, context.sender)
    if acting is None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "records are written by a person or an organisation in force")
    anchor_record(state, context, add, *acting)


def anchor_record(
    state: StateOverlay,
    context: TxContext,
    add: RecordAdd,
    writer: bytes,
    role: str,
    organisation: bytes | None,
    detail: str = "",
) -> None:
    """Check ``add`` as written by the party ``writer`` (a ``role`` or organisation kind, of
    ``organisation``) and put its anchor, audited with ``detail``: ``record.add`` for the
    signer, and ``device.batch`` for the organisation that operates the device."""
    owner = person(state, add.patient)
    if owner is None or not owner.active or owner.role != "patient":
        raise TxRejected(RejectReason.INVALID, "no patient in force has this person id")
    if add.category not in CATEGORIES:
        raise TxRejected(
            RejectReason.INVALID, f"unknown data category {add.category!r}; known: {', '.join(sorted(CATEGORIES))}"
        )
    if writer != add.patient:
        if add.category not in CATEGORIES_WRITTEN_BY.get(role, frozenset()):
            raise TxRejected(RejectReason.NOT_AUTHORISED, f"a {role} may not write {add.category} records")
        if not _in_care_of(state, owner, writer, organisation, add.category, context.time_ms):
            raise TxRejected(
                RejectReason.NOT_AUTHORISED,
                "no care relationship: the patient is not registered at the writer's organisation and gave it no"
                f" consent in force for {add.category}",
            )
    if len(add.record_id) != RECORD_ID_SIZE or len(add.ciphertext_sha256) != DIGEST_SIZE:
        raise TxRejected(RejectReason.INVALID, "record_id and ciphertext_sha256 must be 32 bytes each")
    if not 0 < add.size <= SIZE_MAX or not is_padded_sealed_size(add.size):
        raise TxRejected(
            RejectReason.INVALID,
            f"size {add.size} is not that of a padded record (p2pmed.crypto.encrypt_record) of at most {SIZE_MAX}"
            " bytes: an unpadded size tells everyone the record's exact length",
        )
    _check_custody(context, add)
    if state.state_get(_record_key(add.record_id)) is not None:
        raise TxRejected(RejectReason.DUPLICATE, "a record with this id exists; use a fresh random id")
    anchor = Record(
        add.record_id,
        add.patient,
        add.category,
        add.ciphertext_sha256,
        add.size,
        add.custodians,
        add.threshold,
        add.share_sha256,
        writer,
        context.time_ms,
        context.height,
        None,
    )
    state.put(_record_key(add.record_id), anchor)
    audit.record_event(state, context, "record-write", add.patient, writer, add.record_id, add.category, detail=detail)


def _existing(state: StateReader, record_id: bytes) -> Record:
    found = record(state, record_id)
    if found is None:
        raise TxRejected(RejectReason.INVALID, "no record has this id")
    return found


def apply_read(state: StateOverlay, context: TxContext, read: RecordRead) -> None:
    found = _existing(state, read.record_id)
    if read.purpose not in PURPOSES:
        raise TxRejected(
            RejectReason.INVALID, f"unknown purpose {read.purpose!r}; known: {', '.join(sorted(PURPOSES))}"
        )
    acting = _acting_as(state, context.sender)
    fitting = PURPOSES_OF.get(acting[1], frozenset()) if acting is not None else frozenset()
    if acting is not None and acting[0] != found.patient and read.purpose not in fitting:
        allowed = ", ".join(sorted(fitting)) or "none"
        raise TxRejected(
            RejectReason.NOT_AUTHORISED, f"a {acting[1]} may not read for {read.purpose} (allowed: {allowed})"
        )
    if read.break_glass:
        if read.study:
            raise TxRejected(RejectReason.INVALID, "the glass is broken for treatment, never for a study")
        decision = _break_glass(state, context, found, read)
    else:
        if read.reason_sha256 or read.reason_sealed:
            raise TxRejected(RejectReason.INVALID, "a reason is given only when breaking the glass")
        decision = access(state, context.sender, found, read.purpose, context.time_ms, read.study)
    if not decision.allowed:
        raise TxRejected(RejectReason.NOT_AUTHORISED, decision.detail)
    assert acting is not None, "an allowed read is by a party in force"
    reader, _, organisation = acting
    grant = ReadGrant(
        found.record_id,
        reader,
        decision.basis,
        read.purpose,
        context.time_ms + READ_GRANT_MS,
        context.tx_id,
        read.study,
    )
    state.put(_grant_key(found.record_id, reader), grant)
    if read.break_glass:
        recent = _recent_break_glass(state, reader, context.time_ms)
        state.put(_break_glass_key(reader), BreakGlassLog((*recent, context.time_ms)))
        assert organisation is not None, "only a clinician in force breaks the glass"
        event = BreakGlassEvent(found.record_id, found.patient, reader, organisation, "")
        state.put(_break_glass_event_key(context.tx_id), event)
    kind = "break-glass" if read.break_glass else "record-read"
    audit.record_event(
        state,
        context,
        kind,
        found.patient,
        reader,
        found.record_id,
        found.category,
        read.purpose,
        decision.detail if read.break_glass or read.study else "",
    )


def refused_read(state: StateOverlay, context: TxContext, read: RecordRead, error: TxRejected) -> None:
    """A read the rules refused, of a record that exists, is on the patient's audit trail too
    (who tried, for what purpose, and why not; never the stated break-glass reason)."""
    found = record(state, read.record_id)
    if found is None or error.reason is not RejectReason.NOT_AUTHORISED:
        return
    reader = party_id(state, context.sender) or context.sender
    detail = ("break-glass: " if read.break_glass else "") + error.detail[:DETAIL_LENGTH_MAX]
    purpose = read.purpose if read.purpose in PURPOSES else ""
    audit.record_event(
        state, context, "record-read-refused", found.patient, reader, found.record_id, found.category, purpose, detail
    )


def _break_glass(state: StateReader, context: TxContext, found: Record, read: RecordRead) -> Access:
    if found.erased_ms is not None:
        return Access("", "the record was erased at the patient's request")
    clinician = person_of(state, context.sender)
    if clinician is None or clinician.role != "clinician":
        raise TxRejected(RejectReason.NOT_AUTHORISED, "only a clinician in force may break the glass")
    employer = organisation_in_force(state, clinician.organisation)
    if employer is None or employer.kind not in CARE_PROVIDERS:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"only clinicians of care providers ({', '.join(sorted(CARE_PROVIDERS))}) may break the glass",
        )
    if read.purpose not in BREAK_GLASS_PURPOSES:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "the glass is broken for treatment only (ETREAT or TREAT)")
    sealed = read.reason_sealed
    if (
        len(read.reason_sha256) != hashlib.sha256().digest_size
        or not 0 < len(sealed) <= SEALED_REASONS_MAX
        or any(not 0 < len(copy) <= SEALED_REASON_BYTES_MAX for copy in sealed)
    ):
        raise TxRejected(
            RejectReason.INVALID,
            "breaking the glass needs a stated reason, off the ledger: its salted SHA-256 and the reason sealed"
            f" to the patient and the organisation (1..{SEALED_REASONS_MAX} copies of at most"
            f" {SEALED_REASON_BYTES_MAX} bytes)",
        )
    if len(_recent_break_glass(state, clinician.id, context.time_ms)) >= BREAK_GLASS_PER_WINDOW:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"a clinician breaks the glass at most {BREAK_GLASS_PER_WINDOW} times in 24 hours",
        )
    detail = f"reason sha256 {read.reason_sha256.hex()}"
    denial = deny_covering(
        state, found.patient, (clinician.id, clinician.organisation), found.category, read.purpose, context.time_ms
    )
    if denial is not None:
        detail += f"; overrides the patient's {_deny_detail(denial)}"
    return Access("break-glass", detail)


def apply_review(state: StateOverlay, context: TxContext, review: BreakGlassReview) -> None:
    event = state.get(BreakGlassEvent, _break_glass_event_key(review.event))
    if event is None:
        raise TxRejected(RejectReason.INVALID, "no break-glass read has this transaction id")
    reviewer = organisation_of(state, context.sender)
    if reviewer is None or reviewer.id != event.organisation:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED, "a break-glass read is reviewed by the clinician's organisation, in force"
        )
    if review.finding not in REVIEW_FINDINGS:
        raise TxRejected(
            RejectReason.INVALID, f"the finding is one of: {', '.join(sorted(REVIEW_FINDINGS))}, not {review.finding!r}"
        )
    if event.finding:
        raise TxRejected(RejectReason.INVALID, f"this break-glass read was already reviewed: {event.finding}")
    state.put(_break_glass_event_key(review.event), dataclasses.replace(event, finding=review.finding))
    detail = f"{review.finding}: break-glass read {review.event.hex()} by {event.clinician.hex()}"
    audit.record_event(state, context, "break-glass-review", event.patient, reviewer.id, event.record_id, detail=detail)


def apply_erase(state: StateOverlay, context: TxContext, erase: RecordErase) -> None:
    found = _existing(state, erase.record_id)
    actor = acting_for_patient(state, context, found.patient)
    if found.erased_ms is not None:
        raise TxRejected(RejectReason.INVALID, "this record is already erased")
    erased = dataclasses.replace(found, erased_ms=context.time_ms)
    state.put(_record_key(found.record_id), erased)
    audit.record_event(state, context, "record-erase", found.patient, actor, found.record_id, found.category)


TX_TYPES = (
    TxType("record.add", RecordAdd, apply_add),
    TxType("record.read", RecordRead, apply_read, refused_read),
    TxType("record.erase", RecordErase, apply_erase),
    TxType("record.review", BreakGlassReview, apply_review),
)
