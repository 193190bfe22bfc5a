"""Research studies: what a research organisation may ask of patients' data, and who says yes.

A study is registered (``research.study.register``) by an organisation in force whose kind
may read for research (``policy.PURPOSES_OF`` lists HRESCH: a ``sponsor`` or an academic
``hospital``), signing with its own key. The registration fixes the study's terms for
good: the ethics approval reference (the IRB or research ethics committee's decision), the
SHA-256 of the data use agreement, the data categories asked for, the de-identification
level (``safe-harbor``: HIPAA 164.514(b)(2)), the k of k-anonymity every export must meet,
and the period. Terms never change; a changed protocol is a new study id.

A registered study does nothing until the validators approve it
(``research.study.approve``), by the same 2f+1 vote that admits organisations, each vote
naming the SHA-256 of the registration (``study_digest``: id, organisation and terms) so
that they approve exactly what they checked with the ethics committee. The reason is the
adversary: an ethics reference on the ledger is a claim, and an organisation alone must not
be able to mint a study. Even an approved study reads nobody's data by itself: only the
patients who consent to that very study (``consent.study``, scoped by study id) are read
and exported, within its categories, its period, and never past a deny.

A study is open from its approval, within its period, while its organisation is in force
(``study_open``). Its organisation, or a researcher that organisation registered
(``study_reader``), reads for it and anchors its exports (``p2pmed.ledger.contracts.research``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass

from p2pmed import codec
from p2pmed.ledger.contracts.identity import ORGANISATION_KINDS, organisation_in_force, organisation_of, person_of
from p2pmed.ledger.contracts.policy import CATEGORIES, PURPOSES_OF
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader
from p2pmed.ledger.votes import quorum_agrees

__all__ = [
    "DEIDENTIFICATION_LEVELS",
    "K_ANONYMITY_MAX",
    "K_ANONYMITY_MIN",
    "RESEARCH_PURPOSE",
    "STUDY_ID_PATTERN",
    "STUDY_SPONSOR_KINDS",
    "TX_TYPES",
    "Study",
    "StudyApprove",
    "StudyRegister",
    "StudyTerms",
    "check_study_id",
    "study",
    "study_digest",
    "study_open",
    "study_reader",
]

RESEARCH_PURPOSE = "HRESCH"
STUDY_SPONSOR_KINDS = frozenset(kind for kind in ORGANISATION_KINDS if RESEARCH_PURPOSE in PURPOSES_OF[kind])
"""The organisations that may read for research are the ones that may sponsor a study."""
STUDY_ID_PATTERN = re.compile(r"[A-Z][A-Z0-9-]{2,39}")
DEIDENTIFICATION_LEVELS = frozenset({"safe-harbor"})
K_ANONYMITY_MIN = 2
K_ANONYMITY_MAX = 1000
ETHICS_APPROVAL_LENGTH_MAX = 200
PERIOD_MS_MAX = 20 * 366 * 24 * 3600 * 1000
SHA256_SIZE = 32


@dataclass(frozen=True)
class StudyTerms:
    ethics_approval: str
    """The ethics committee's (IRB's) approval reference, as it issued it."""
    data_use_agreement_sha256: bytes
    categories: tuple[str, ...]
    deidentification: str
    k_anonymity: int
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class StudyRegister:
    study_id: str
    terms: StudyTerms


@dataclass(frozen=True)
class StudyApprove:
    """A validator's vote for the study whose registration has this ``study_digest``."""

    study_id: str
    study_sha256: bytes


@dataclass(frozen=True)
class Study:
    study_id: str
    organisation: bytes
    terms: StudyTerms
    registered_height: int
    approved_height: int | None


def _study_key(study_id: str) -> str:
    return f"study/{study_id}"


def _vote_key(study_id: str, validator: bytes) -> str:
    return f"study-vote/{study_id}/{validator.hex()}"


def check_study_id(study_id: str) -> None:
    if not STUDY_ID_PATTERN.fullmatch(study_id):
        raise TxRejected(
            RejectReason.INVALID, "a study id is 3..40 capital letters, digits and hyphens, starting with a letter"
        )


def study(state: StateReader, study_id: str) -> Study | None:
    """The study with this id, approved or not, if registered."""
    return StateOverlay(state).get(Study, _study_key(study_id)) if STUDY_ID_PATTERN.fullmatch(study_id) else None


def study_digest(found: Study) -> bytes:
    """What the validators approve: the study's id, organisation and terms."""
    return hashlib.sha256(codec.encode((found.study_id, found.organisation, found.terms))).digest()


def study_open(state: StateReader, study_id: str, now_ms: int) -> Study | None:
    """The study if it may take consents, reads and exports at ``now_ms``: approved, within its
    period, and its organisation in force."""
    found = study(state, study_id)
    if found is None or found.approved_height is None:
        return None
    if not found.terms.start_ms <= now_ms < found.terms.end_ms:
        return None
    return found if organisation_in_force(state, found.organisation) is not None else None


def study_reader(state: StateReader, key: bytes, found: Study) -> bytes | None:
    """The party id of whoever signs with ``key`` if they act for ``found``'s organisation: the
    organisation itself, or a researcher it registered."""
    organisation = organisation_of(state, key)
    if organisation is not None:
        return organisation.id if organisation.id == found.organisation else None
    staff = person_of(state, key)
    if staff is not None and staff.role == "researcher" and staff.organisation == found.organisation:
        return staff.id
    return None


def _check_terms(context: TxContext, terms: StudyTerms) -> None:
    if not 0 < len(terms.ethics_approval) <= ETHICS_APPROVAL_LENGTH_MAX or not terms.ethics_approval.isprintable():
        raise TxRejected(
            RejectReason.INVALID,
            f"the ethics approval reference must be 1..{ETHICS_APPROVAL_LENGTH_MAX} printable characters",
        )
    if len(terms.data_use_agreement_sha256) != SHA256_SIZE:
        raise TxRejected(RejectReason.INVALID, "the data use agreement's SHA-256 must be 32 bytes")
    categories = terms.categories
    if not categories or len(set(categories)) != len(categories) or not set(categories) <= CATEGORIES:
        raise TxRejected(
            RejectReason.INVALID,
            f"name 1..{len(CATEGORIES)} distinct data categories of: {', '.join(sorted(CATEGORIES))}",
        )
    if terms.deidentification not in DEIDENTIFICATION_LEVELS:
        raise TxRejected(
            RejectReason.INVALID,
            f"de-identification level {terms.deidentification[:40]!r} is not one of:"
            f" {', '.join(sorted(DEIDENTIFICATION_LEVELS))}",
        )
    if not K_ANONYMITY_MIN <= terms.k_anonymity <= K_ANONYMITY_MAX:
        raise TxRejected(RejectReason.INVALID, f"k-anonymity k must be {K_ANONYMITY_MIN}..{K_ANONYMITY_MAX}")
    if not terms.start_ms < terms.end_ms <= terms.start_ms + PERIOD_MS_MAX or terms.end_ms <= context.time_ms:
        raise TxRejected(
            RejectReason.INVALID, "the period must end after it starts, within 20 years, and after this block's time"
        )


def apply_register(state: StateOverlay, context: TxContext, register: StudyRegister) -> None:
    sponsor = organisation_of(state, context.sender)
    if sponsor is None or sponsor.kind not in STUDY_SPONSOR_KINDS:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"a study is registered by an organisation in force that reads for research"
            f" ({', '.join(sorted(STUDY_SPONSOR_KINDS))}), signing with its own key",
        )
    check_study_id(register.study_id)
    _check_terms(context, register.terms)
    if study(state, register.study_id) is not None:
        raise TxRejected(RejectReason.DUPLICATE, "a study with this id is registered; a new protocol takes a new id")
    state.put(_study_key(register.study_id), Study(register.study_id, sponsor.id, register.terms, context.height, None))


def apply_approve(state: StateOverlay, context: TxContext, approve: StudyApprove) -> None:
    if context.sender not in context.validators:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "only a validator votes to approve a study")
    found = study(state, approve.study_id)
    if found is None:
        raise TxRejected(RejectReason.INVALID, "no study has this id")
    if found.approved_height is not None:
        raise TxRejected(RejectReason.INVALID, "this study is already approved")
    if approve.study_sha256 != study_digest(found):
        raise TxRejected(
            RejectReason.INVALID, "the study's SHA-256 does not match its registration: approve what was registered"
        )
    if not quorum_agrees(
        state, context.validators, context.sender, lambda validator: _vote_key(found.study_id, validator), True
    ):
        return
    state.put(_study_key(found.study_id), dataclasses.replace(found, approved_height=context.height))


TX_TYPES = (
    TxType("research.study.register", StudyRegister, apply_register),
    TxType("research.study.approve", StudyApprove, apply_approve),
)
