"""Clinical-trial integrity: register before enrolment, enrol with consent, and
check the results against the endpoints declared up front.

Modelled on trial registries (ClinicalTrials.gov, EU CTIS) and on the COMPare
project's checks for outcome switching.

A sponsor registers a trial (``trial.register``) before anyone is enrolled: a
registry-style id (``NCT01234567``, ``ISRCTN12345678``: 3..40 capital letters,
digits and hyphens), the SHA-256 of the protocol document, the pre-declared
primary and secondary endpoints and, optionally, the planned enrolment (an
estimate, never enforced). The sponsor is the organisation in force that signs
the registration, of kind ``sponsor`` (industry) or ``hospital``
(investigator-initiated trials, where the hospital is the legal sponsor); the
trial keeps the sponsor's organisation id, so the sponsor keeps it across a key
rotation. Enrolments keep the enroller's party id likewise.
Endpoints are short strings in a normal form (lower-case ASCII, single spaces;
``normalise_endpoint`` does the case and spaces) so that results are compared
with the registration by exact string equality.

The sponsor may amend the protocol (``trial.amend``, a whole new ``Protocol``);
every version is kept with the height that ordered it. The endpoints may change
until the first enrolment; from then on they are frozen and an amendment that
changes them is refused. An amendment of the protocol document or the planned
enrolment alone is still accepted after enrolment, as real trials need, and sits
in the trial's history for anyone to see.

A patient gives (``trial.consent``) or withdraws (``trial.withdraw``) research
consent to one trial, signing with their own current key; it is held under
their person id, so it survives key rotation. The sponsor, or a clinician or
researcher of an organisation in force, enrols (``trial.enroll``) a patient who
holds that consent at that block. Consents and enrolments are stored under a
per-trial pseudonym of the person id (``participant_reference``), never the id
itself. That keeps person ids out of the trial's state; it does not hide
participation from someone who already knows a person id, and the consent and
enrol transactions themselves name the person. Withdrawing after enrolment
marks the enrolment withdrawn and keeps it: data collected before withdrawal
stays with the trial, as ICH E6 allows.

The sponsor anchors results (``trial.results``): the SHA-256 of the result data
set and the endpoints reported. Results are always anchored. When the reported
endpoints differ from the current protocol's, the result carries an
``OutcomeSwitching`` record that names each difference (a registered endpoint
unreported, an unregistered one reported, a secondary promoted to primary, a
primary demoted) and says it in a sentence, and the trial joins the list that
``flagged_trials`` reads. The first results close the trial to consent,
enrolment and amendment; later results (a final or corrected data set) are
anchored and checked the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import string
from dataclasses import dataclass

from p2pmed.ledger.contracts.identity import organisation_of, person, person_of
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = [
    "ENDPOINT_LENGTH_MAX",
    "PRIMARY_ENDPOINTS_MAX",
    "SECONDARY_ENDPOINTS_MAX",
    "SPONSOR_KINDS",
    "TX_TYPES",
    "DatasetVerification",
    "Enrolment",
    "OutcomeSwitching",
    "Protocol",
    "ProtocolVersion",
    "ResearchConsent",
    "Trial",
    "TrialAmend",
    "TrialConsent",
    "TrialEnroll",
    "TrialRegister",
    "TrialResult",
    "TrialResults",
    "TrialWithdraw",
    "enrolment",
    "flagged_trials",
    "normalise_endpoint",
    "outcome_switching",
    "participant_reference",
    "research_consent",
    "trial",
    "verify_dataset",
]

SPONSOR_KINDS = frozenset({"sponsor", "hospital"})
ENROLLER_ROLES = frozenset({"clinician", "researcher"})
TRIAL_ID_PATTERN = re.compile(r"[A-Z][A-Z0-9-]{2,39}")
ENDPOINT_PUNCTUATION = " %'()+,-./:;<=>"
ENDPOINT_CHARACTERS = frozenset(string.ascii_lowercase + string.digits + ENDPOINT_PUNCTUATION)
ENDPOINT_LENGTH_MAX = 160
PRIMARY_ENDPOINTS_MAX = 10
SECONDARY_ENDPOINTS_MAX = 30
PLANNED_ENROLMENT_MAX = 10_000_000
PROTOCOL_VERSIONS_MAX = 16
RESULTS_MAX = 8
FLAGGED_QUERY_MAX = 1_000
SHA256_SIZE = 32


# -- transaction bodies -------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """What a registration declares; ``trial.amend`` replaces it whole."""

    sha256: bytes
    primary_endpoints: tuple[str, ...]
    secondary_endpoints: tuple[str, ...]
    planned_enrolment: int | None


@dataclass(frozen=True)
class TrialRegister:
    trial_id: str
    protocol: Protocol


@dataclass(frozen=True)
class TrialAmend:
    trial_id: str
    protocol: Protocol


@dataclass(frozen=True)
class TrialConsent:
    trial_id: str


@dataclass(frozen=True)
class TrialWithdraw:
    trial_id: str


@dataclass(frozen=True)
class TrialEnroll:
    trial_id: str
    person: bytes
    """The patient's person id (the key they were registered with)."""


@dataclass(frozen=True)
class TrialResults:
    trial_id: str
    dataset_sha256: bytes
    primary_endpoints: tuple[str, ...]
    secondary_endpoints: tuple[str, ...]


# -- what the ledger keeps ------------------------------------------------------------


@dataclass(frozen=True)
class ProtocolVersion:
    protocol: Protocol
    height: int
    time_ms: int
    tx_id: bytes


@dataclass(frozen=True)
class OutcomeSwitching:
    """How reported endpoints differ from the registered ones: each list sorted, no endpoint in two lists."""

    primary_unreported: tuple[str, ...]
    primary_added: tuple[str, ...]
    promoted: tuple[str, ...]
    demoted: tuple[str, ...]
    secondary_unreported: tuple[str, ...]
    secondary_added: tuple[str, ...]
    summary: str


@dataclass(frozen=True)
class TrialResult:
    dataset_sha256: bytes
    primary_endpoints: tuple[str, ...]
    secondary_endpoints: tuple[str, ...]
    protocol_version: int
    """Which protocol version (1 = the registration) the endpoints were checked against."""
    height: int
    time_ms: int
    tx_id: bytes
    outcome_switching: OutcomeSwitching | None


@dataclass(frozen=True)
class Trial:
    trial_id: str
    sponsor: bytes
    versions: tuple[ProtocolVersion, ...]
    first_enrolment_height: int | None
    enrolled: int
    withdrawn: int
    """Enrolled participants who later withdrew their consent (they stay counted in ``enrolled``)."""
    results: tuple[TrialResult, ...]

    @property
    def protocol(self) -> Protocol:
        return self.versions[-1].protocol

    @property
    def closed(self) -> bool:
        return bool(self.results)

    @property
    def flagged(self) -> bool:
        return any(result.outcome_switching is not None for result in self.results)


@dataclass(frozen=True)
class ResearchConsent:
    participant: bytes
    given_height: int
    given_ms: int
    tx_id: bytes


@dataclass(frozen=True)
class Enrolment:
    participant: bytes
    enrolled_by: bytes
    height: int
    time_ms: int
    tx_id: bytes
    withdrawn_ms: int | None


@dataclass(frozen=True)
class DatasetVerification:
    trial_id: str
    sha256: bytes
    matches: bool
    result_number: int | None
    """1-based position of the matching result among the trial's anchored results."""
    result: TrialResult | None


@dataclass(frozen=True)
class _FlaggedLink:
    previous: str | None


# -- state keys -------------------------------------------------------------------------

_FLAGGED_LATEST_KEY = "trial-flagged/latest"


def _trial_key(trial_id: str) -> str:
    return f"trial/{trial_id}"


def _consent_key(trial_id: str, participant: bytes) -> str:
    return f"trial-consent/{trial_id}/{participant.hex()}"


def _enrolment_key(trial_id: str, participant: bytes) -> str:
    return f"trial-enrolment/{trial_id}/{participant.hex()}"


def _flagged_link_key(trial_id: str) -> str:
    return f"trial-flagged/before/{trial_id}"


# -- queries ------------------------------------------------------------------------------


def normalise_endpoint(text: str) -> str:
    """``text`` in lower case with single spaces: the form endpoints are declared and reported in."""
    return " ".join(text.split()).lower()


def participant_reference(trial_id: str, person_id: bytes) -> bytes:
    """The pseudonym of a person in one trial: a different one in every trial."""
    return hashlib.sha256(b"p2pmed/trial-participant\x00" + trial_id.encode() + b"\x00" + person_id).digest()


def trial(state: StateReader, trial_id: str) -> Trial | None:
    """The trial with this id (registration, amendments, enrolment counts, results), if registered."""
    return StateOverlay(state).get(Trial, _trial_key(trial_id))


def research_consent(state: StateReader, trial_id: str, person_id: bytes) -> ResearchConsent | None:
    """The research consent in force that this person gave to this trial, if any."""
    return StateOverlay(state).get(ResearchConsent, _consent_key(trial_id, participant_reference(trial_id, person_id)))


def enrolment(state: StateReader, trial_id: str, person_id: bytes) -> Enrolment | None:
    """This person's enrolment in this trial, withdrawn or not, if they were ever enrolled."""
    return StateOverlay(state).get(Enrolment, _enrolment_key(trial_id, participant_reference(trial_id, person_id)))


def verify_dataset(state: StateReader, trial_id: str, sha256: bytes) -> DatasetVerification | None:
    """Whether ``sha256`` is the hash of a result data set anchored for the trial; None for an unknown trial."""
    found = trial(state, trial_id)
    if found is None:
        return None
    for number, result in enumerate(found.results, start=1):
        if result.dataset_sha256 == sha256:
            return DatasetVerification(trial_id, sha256, True, number, result)
    return DatasetVerification(trial_id, sha256, False, None, None)


def flagged_trials(state: StateReader, limit: int = 100) -> tuple[str, ...]:
    """Ids of trials with a result flagged for outcome switching, most recently flagged first."""
    if not 0 < limit <= FLAGGED_QUERY_MAX:
        raise ValueError(f"limit must be 1..{FLAGGED_QUERY_MAX}")
    view = StateOverlay(state)
    found: list[str] = []
    trial_id = view.get(str, _FLAGGED_LATEST_KEY)
    while trial_id is not None and len(found) < limit:
        found.append(trial_id)
        link = view.get(_FlaggedLink, _flagged_link_key(trial_id))
        assert link is not None, f"flagged trial {trial_id} has no link in the index"
        trial_id = link.previous
    return tuple(found)


_SWITCH_PHRASES = (
    ("primary_unreported", "registered primary {} not reported"),
    ("primary_added", "{} reported as primary but never registered"),
    ("promoted", "secondary {} promoted to primary"),
    ("demoted", "primary {} demoted to secondary"),
    ("secondary_unreported", "registered secondary {} not reported"),
    ("secondary_added", "{} reported as secondary but never registered"),
)


def outcome_switching(
    registered: Protocol, primary: tuple[str, ...], secondary: tuple[str, ...]
) -> OutcomeSwitching | None:
    """How reported endpoints differ from ``registered``'s, or None when the primary and secondary sets are the same."""
    registered_primary, registered_secondary = set(registered.primary_endpoints), set(registered.secondary_endpoints)
    reported_primary, reported_secondary = set(primary), set(secondary)
    declared, reported = registered_primary | registered_secondary, reported_primary | reported_secondary
    differences = {
        "primary_unreported": tuple(sorted(registered_primary - reported)),
        "primary_added": tuple(sorted(reported_primary - declared)),
        "promoted": tuple(sorted(registered_secondary & reported_primary)),
        "demoted": tuple(sorted(registered_primary & reported_secondary)),
        "secondary_unreported": tuple(sorted(registered_secondary - reported)),
        "secondary_added": tuple(sorted(reported_secondary - declared)),
    }
    if not any(differences.values()):
        return None
    parts = [
        phrase.format(_endpoints_phrase(differences[name])) for name, phrase in _SWITCH_PHRASES if differences[name]
    ]
    summary = "Outcome switching: " + "; ".join(parts) + "."
    return OutcomeSwitching(**differences, summary=summary)


def _endpoints_phrase(endpoints: tuple[str, ...]) -> str:
    quoted = ", ".join(repr(endpoint) for endpoint in endpoints)
    return f"endpoint {quoted}" if len(endpoints) == 1 else f"endpoints {quoted}"


# -- checks -----------------------------------------------------------------------------------


def _check_trial_id(trial_id: str) -> None:
    if TRIAL_ID_PATTERN.fullmatch(trial_id) is None:
        raise TxRejected(
            RejectReason.INVALID,
            f"trial id {trial_id!r} is not registry-style: 3..40 capital letters, digits and '-', "
            "starting with a letter (e.g. 'NCT01234567')",
        )


def _check_sha256(digest: bytes, what: str) -> None:
    if len(digest) != SHA256_SIZE:
        raise TxRejected(
            RejectReason.INVALID, f"{what} must be a {SHA256_SIZE}-byte SHA-256 digest, got {len(digest)} bytes"
        )


def _check_endpoint(endpoint: str) -> None:
    # The character set is checked first so that normalising stays ASCII-only:
    # Unicode case rules change between Python versions, and every node must agree.
    if not (
        0 < len(endpoint) <= ENDPOINT_LENGTH_MAX
        and set(endpoint) <= ENDPOINT_CHARACTERS
        and normalise_endpoint(endpoint) == endpoint
    ):
        raise TxRejected(
            RejectReason.INVALID,
            f"endpoint {endpoint!r} is not in normal form: 1..{ENDPOINT_LENGTH_MAX} characters of lower-case ASCII "
            "letters, "
            f"digits and {ENDPOINT_PUNCTUATION.strip()!r}, words separated by single spaces",
        )


def _check_endpoint_list(endpoints: tuple[str, ...], kind: str, count_min: int, count_max: int) -> None:
    if not count_min <= len(endpoints) <= count_max:
        raise TxRejected(RejectReason.INVALID, f"give {count_min}..{count_max} {kind} endpoints, not {len(endpoints)}")
    seen: set[str] = set()
    for endpoint in endpoints:
        _check_endpoint(endpoint)
        if endpoint in seen:
            raise TxRejected(RejectReason.INVALID, f"{kind} endpoint {endpoint!r} is listed twice")
        seen.add(endpoint)


def _check_endpoints(primary: tuple[str, ...], secondary: tuple[str, ...], primary_min: int) -> None:
    _check_endpoint_list(primary, "primary", primary_min, PRIMARY_ENDPOINTS_MAX)
    _check_endpoint_list(secondary, "secondary", 0, SECONDARY_ENDPOINTS_MAX)
    both = sorted(set(primary) & set(secondary))
    if both:
        raise TxRejected(
            RejectReason.INVALID, f"endpoint {both[0]!r} is listed as both primary and secondary; list it once"
        )


def _check_protocol(protocol: Protocol) -> None:
    _check_sha256(protocol.sha256, "the protocol hash")
    _check_endpoints(protocol.primary_endpoints, protocol.secondary_endpoints, primary_min=1)
    planned = protocol.planned_enrolment
    if planned is not None and not 0 < planned <= PLANNED_ENROLMENT_MAX:
        raise TxRejected(
            RejectReason.INVALID, f"the planned enrolment must be 1..{PLANNED_ENROLMENT_MAX} participants, or null"
        )


def _same_endpoints(one: Protocol, other: Protocol) -> bool:
    """Order does not matter: a reordered list declares the same endpoints."""
    return set(one.primary_endpoints) == set(other.primary_endpoints) and set(one.secondary_endpoints) == set(
        other.secondary_endpoints
    )


def _registered_trial(state: StateOverlay, trial_id: str) -> Trial:
    found = trial(state, trial_id)
    if found is None:
        raise TxRejected(RejectReason.INVALID, f"no trial {trial_id!r} is registered")
    return found


def _sponsored_trial(state: StateOverlay, context: TxContext, trial_id: str) -> Trial:
    """The trial, if the sender is its sponsor and still in force."""
    found = _registered_trial(state, trial_id)
    sponsor = organisation_of(state, context.sender)
    if sponsor is None or sponsor.id != found.sponsor:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"only the sponsor of trial {trial_id!r}, while in force, amends it or anchors its results",
        )
    return found


def _patient_id(state: StateOverlay, context: TxContext) -> bytes:
    sender = person_of(state, context.sender)
    if sender is None or sender.role != "patient":
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            "only a patient in force, signing with their current key, gives or withdraws research consent",
        )
    return sender.id


def _enroller(state: StateOverlay, context: TxContext, found: Trial) -> bytes:
    """The party id of the sender, if it may enrol participants in ``found``."""
    sponsor = organisation_of(state, context.sender)
    if sponsor is not None and sponsor.id == found.sponsor:
        return sponsor.id
    staff = person_of(state, context.sender)
    if staff is not None and staff.role in ENROLLER_ROLES:  # staff are in force only while their organisation is
        return staff.id
    raise TxRejected(
        RejectReason.NOT_AUTHORISED,
        "only the trial's sponsor, or a clinician or researcher of an organisation in force, enrols participants",
    )


def _require_open(found: Trial, doing: str) -> None:
    if found.closed:
        raise TxRejected(
            RejectReason.INVALID, f"trial {found.trial_id!r} has anchored results and is closed: no more {doing}"
        )


# -- rules ---------------------------------------------------------------------------------------


def apply_register(state: StateOverlay, context: TxContext, register: TrialRegister) -> None:
    sponsor = organisation_of(state, context.sender)
    if sponsor is None or sponsor.kind not in SPONSOR_KINDS:
        kinds = " or ".join(sorted(SPONSOR_KINDS))
        raise TxRejected(RejectReason.NOT_AUTHORISED, f"only an organisation in force of kind {kinds} registers trials")
    _check_trial_id(register.trial_id)
    if state.state_get(_trial_key(register.trial_id)) is not None:
        raise TxRejected(
            RejectReason.DUPLICATE, f"trial {register.trial_id!r} is already registered; amend it or choose another id"
        )
    _check_protocol(register.protocol)
    version = ProtocolVersion(register.protocol, context.height, context.time_ms, context.tx_id)
    state.put(_trial_key(register.trial_id), Trial(register.trial_id, sponsor.id, (version,), None, 0, 0, ()))


def apply_amend(state: StateOverlay, context: TxContext, amend: TrialAmend) -> None:
    found = _sponsored_trial(state, context, amend.trial_id)
    _require_open(found, "amendments")
    if len(found.versions) >= PROTOCOL_VERSIONS_MAX:
        detail = f"trial {found.trial_id!r} already has {PROTOCOL_VERSIONS_MAX} protocol versions, the most kept"
        raise TxRejected(RejectReason.INVALID, detail)
    _check_protocol(amend.protocol)
    if amend.protocol == found.protocol:
        raise TxRejected(RejectReason.INVALID, "the amendment changes nothing in the current protocol")
    if found.first_enrolment_height is not None and not _same_endpoints(amend.protocol, found.protocol):
        raise TxRejected(
            RejectReason.INVALID,
            f"the endpoints of trial {found.trial_id!r} are frozen since the first enrolment (height "
            f"{found.first_enrolment_height}): "
            "changing them now would be outcome switching. Amend the protocol document alone, or report the change "
            "with the results, "
            "where it is flagged",
        )
    version = ProtocolVersion(amend.protocol, context.height, context.time_ms, context.tx_id)
    state.put(_trial_key(found.trial_id), dataclasses.replace(found, versions=(*found.versions, version)))


def apply_consent(state: StateOverlay, context: TxContext, consent: TrialConsent) -> None:
    patient_id = _patient_id(state, context)
    found = _registered_trial(state, consent.trial_id)
    _require_open(found, "consent or enrolment")
    participant = participant_reference(found.trial_id, patient_id)
    if state.state_get(_consent_key(found.trial_id, participant)) is not None:
        raise TxRejected(
            RejectReason.DUPLICATE, f"your research consent to trial {found.trial_id!r} is already in force"
        )
    state.put(
        _consent_key(found.trial_id, participant),
        ResearchConsent(participant, context.height, context.time_ms, context.tx_id),
    )


def apply_withdraw(state: StateOverlay, context: TxContext, withdraw: TrialWithdraw) -> None:
    patient_id = _patient_id(state, context)
    found = _registered_trial(state, withdraw.trial_id)
    participant = participant_reference(found.trial_id, patient_id)
    if state.state_get(_consent_key(found.trial_id, participant)) is None:
        raise TxRejected(RejectReason.INVALID, f"you hold no research consent to trial {found.trial_id!r} to withdraw")
    state.delete(_consent_key(found.trial_id, participant))
    enrolled = state.get(Enrolment, _enrolment_key(found.trial_id, participant))
    if enrolled is not None and enrolled.withdrawn_ms is None:
        state.put(
            _enrolment_key(found.trial_id, participant), dataclasses.replace(enrolled, withdrawn_ms=context.time_ms)
        )
        state.put(_trial_key(found.trial_id), dataclasses.replace(found, withdrawn=found.withdrawn + 1))


def apply_enroll(state: StateOverlay, context: TxContext, enroll: TrialEnroll) -> None:
    found = _registered_trial(state, enroll.trial_id)
    enroller = _enroller(state, context, found)
    _require_open(found, "enrolment")
    subject = person(state, enroll.person)
    if subject is None or not subject.active:
        raise TxRejected(RejectReason.INVALID, "no person in force has this id")
    if subject.role != "patient":
        raise TxRejected(RejectReason.INVALID, f"only patients are enrolled; this person is a {subject.role}")
    participant = participant_reference(found.trial_id, subject.id)
    if state.state_get(_enrolment_key(found.trial_id, participant)) is not None:
        raise TxRejected(RejectReason.DUPLICATE, f"this patient is already enrolled in trial {found.trial_id!r}")
    if state.state_get(_consent_key(found.trial_id, participant)) is None:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"this patient holds no research consent to trial {found.trial_id!r} (never given, or withdrawn); "
            "the patient sends trial.consent first",
        )
    record = Enrolment(participant, enroller, context.height, context.time_ms, context.tx_id, None)
    state.put(_enrolment_key(found.trial_id, participant), record)
    first_height = context.height if found.first_enrolment_height is None else found.first_enrolment_height
    state.put(
        _trial_key(found.trial_id),
        dataclasses.replace(found, first_enrolment_height=first_height, enrolled=found.enrolled + 1),
    )


def apply_results(state: StateOverlay, context: TxContext, results: TrialResults) -> None:
    found = _sponsored_trial(state, context, results.trial_id)
    if len(found.results) >= RESULTS_MAX:
        raise TxRejected(
            RejectReason.INVALID, f"trial {found.trial_id!r} already has {RESULTS_MAX} anchored results, the most kept"
        )
    _check_sha256(results.dataset_sha256, "the data set hash")
    # No primary minimum: a report that drops every primary endpoint is still
    # anchored, and flagged.
    _check_endpoints(results.primary_endpoints, results.secondary_endpoints, primary_min=0)
    anchored = verify_dataset(state, found.trial_id, results.dataset_sha256)
    if anchored is not None and anchored.matches:
        detail = f"this data set is already anchored as result {anchored.result_number} of trial {found.trial_id!r}"
        raise TxRejected(RejectReason.DUPLICATE, detail)
    switching = outcome_switching(found.protocol, results.primary_endpoints, results.secondary_endpoints)
    result = TrialResult(
        results.dataset_sha256,
        results.primary_endpoints,
        results.secondary_endpoints,
        len(found.versions),
        context.height,
        context.time_ms,
        context.tx_id,
        switching,
    )
    if switching is not None and not found.flagged:
        state.put(_flagged_link_key(found.trial_id), _FlaggedLink(state.get(str, _FLAGGED_LATEST_KEY)))
        state.put(_FLAGGED_LATEST_KEY, found.trial_id)
    state.put(_trial_key(found.trial_id), dataclasses.replace(found, results=(*found.results, result)))


TX_TYPES = (
    TxType("trial.register", TrialRegister, apply_register),
    TxType("trial.amend", TrialAmend, apply_amend),
    TxType("trial.consent", TrialConsent, apply_consent),
    TxType("trial.withdraw", TrialWithdraw, apply_withdraw),
    TxType("trial.enroll", TrialEnroll, apply_enroll),
    TxType("trial.results", TrialResults, apply_results),
)
