"""Clinical-trial rules: registration, amendments frozen at first enrolment, research
consent and enrolment, results anchored and flagged for outcome switching."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_harness import LedgerHarness, key, person_rotation
from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts import trials
from p2pmed.ledger.contracts.identity import OrgRevoke
from p2pmed.ledger.contracts.trials import (
    ENDPOINT_LENGTH_MAX,
    PRIMARY_ENDPOINTS_MAX,
    SECONDARY_ENDPOINTS_MAX,
    Protocol,
    TrialAmend,
    TrialConsent,
    TrialEnroll,
    TrialRegister,
    TrialResults,
    TrialWithdraw,
    enrolment,
    flagged_trials,
    normalise_endpoint,
    participant_reference,
    research_consent,
    trial,
    verify_dataset,
)
from p2pmed.ledger.errors import RejectReason

SPONSOR, HOSPITAL, PHARMACY = key("sponsor"), key("hospital"), key("pharmacy")
PATIENT, OTHER_PATIENT = key("patient"), key("other-patient")
CLINICIAN, RESEARCHER, PHARMACIST = key("clinician"), key("researcher"), key("pharmacist")

TRIAL_ID = "NCT01234567"
MORTALITY, STAY, ICU = "all-cause mortality at 28 days", "length of hospital stay", "icu admission"
DATASET, OTHER_DATASET = hashlib.sha256(b"results v1").digest(), hashlib.sha256(b"results v2").digest()


def sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def protocol(
    primary: tuple[str, ...] = (MORTALITY,),
    secondary: tuple[str, ...] = (STAY,),
    document: str = "protocol v1",
    planned: int | None = 200,
) -> Protocol:
    return Protocol(sha(document), primary, secondary, planned)


def results(
    primary: tuple[str, ...] = (MORTALITY,), secondary: tuple[str, ...] = (STAY,), dataset: bytes = DATASET
) -> TrialResults:
    return TrialResults(TRIAL_ID, dataset, primary, secondary)


def new_ledger() -> LedgerHarness:
    ledger = LedgerHarness(validators=4)
    ledger.admit_organisation(SPONSOR, "sponsor")
    return ledger


@pytest.fixture
def ledger() -> LedgerHarness:
    ledger = new_ledger()
    ledger.admit_organisation(HOSPITAL, "hospital")
    ledger.admit_organisation(PHARMACY, "pharmacy")
    for person, role in [
        (PATIENT, "patient"),
        (OTHER_PATIENT, "patient"),
        (CLINICIAN, "clinician"),
        (RESEARCHER, "researcher"),
        (PHARMACIST, "pharmacist"),
    ]:
        ledger.register_person(HOSPITAL, person, role)
    return ledger


@pytest.fixture
def registered(ledger: LedgerHarness) -> LedgerHarness:
    ledger.ok(SPONSOR, "trial.register", TrialRegister(TRIAL_ID, protocol()))
    return ledger


def enrol(ledger: LedgerHarness, patient: SigningKey = PATIENT, enroller: SigningKey = CLINICIAN) -> None:
    ledger.ok(patient, "trial.consent", TrialConsent(TRIAL_ID))
    ledger.ok(enroller, "trial.enroll", TrialEnroll(TRIAL_ID, patient.public_key))


def registered_trial(ledger: LedgerHarness, trial_id: str = TRIAL_ID) -> trials.Trial:
    found = trial(ledger.state, trial_id)
    assert found is not None
    return found


# -- trial.register ----------------------------------------------------------------------


def test_a_sponsor_registers_a_trial_with_its_declared_endpoints(ledger: LedgerHarness) -> None:
    ledger.ok(SPONSOR, "trial.register", TrialRegister(TRIAL_ID, protocol()))
    found = registered_trial(ledger)
    assert found.sponsor == SPONSOR.public_key and found.protocol == protocol()
    assert [version.height for version in found.versions] == [ledger.height]
    assert (found.enrolled, found.first_enrolment_height, found.closed, found.flagged) == (0, None, False, False)


def test_a_hospital_may_sponsor_a_trial_other_organisations_and_people_may_not(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "trial.register", TrialRegister("ISRCTN12345678", protocol(planned=None)))
    assert registered_trial(ledger, "ISRCTN12345678").sponsor == HOSPITAL.public_key
    for signer in (PHARMACY, RESEARCHER, key("stranger")):
        detail = ledger.refused(
            signer, "trial.register", TrialRegister(TRIAL_ID, protocol()), RejectReason.NOT_AUTHORISED
        )
        assert "of kind hospital or sponsor registers trials" in detail
    assert trial(ledger.state, TRIAL_ID) is None


def test_a_trial_id_is_registered_once(registered: LedgerHarness) -> None:
    again = TrialRegister(TRIAL_ID, protocol(document="another protocol"))
    assert "already registered" in registered.refused(SPONSOR, "trial.register", again, RejectReason.DUPLICATE)


@pytest.mark.parametrize(
    ("trial_id", "bad", "fragment"),
    [
        ("nct01234567", protocol(), "not registry-style"),
        ("NC", protocol(), "not registry-style"),
        ("NCT/1234", protocol(), "not registry-style"),
        ("N" * 41, protocol(), "not registry-style"),
        (TRIAL_ID, Protocol(b"\x00" * 31, (MORTALITY,), (), None), "32-byte SHA-256"),
        (TRIAL_ID, protocol(primary=()), "give 1..10 primary endpoints, not 0"),
        (TRIAL_ID, protocol(primary=tuple(f"e{n}" for n in range(11))), "give 1..10 primary"),
        (TRIAL_ID, protocol(secondary=tuple(f"e{n}" for n in range(31))), "give 0..30 secondary"),
        (TRIAL_ID, protocol(primary=(MORTALITY, MORTALITY)), f"primary endpoint {MORTALITY!r} is listed twice"),
        (TRIAL_ID, protocol(secondary=(STAY, STAY)), "listed twice"),
        (TRIAL_ID, protocol(secondary=(MORTALITY,)), "both primary and secondary"),
        (TRIAL_ID, protocol(primary=("All-cause mortality",)), "not in normal form"),
        (TRIAL_ID, protocol(primary=("two  spaces",)), "not in normal form"),
        (TRIAL_ID, protocol(primary=(" leading space",)), "not in normal form"),
        (TRIAL_ID, protocol(primary=("dose in µg",)), "lower-case ASCII"),
        (TRIAL_ID, protocol(primary=("",)), "not in normal form"),
        (TRIAL_ID, protocol(primary=("x" * (ENDPOINT_LENGTH_MAX + 1),)), "not in normal form"),
        (TRIAL_ID, protocol(planned=0), "planned enrolment must be 1..10000000"),
    ],
)
def test_a_malformed_registration_is_refused(
    ledger: LedgerHarness, trial_id: str, bad: Protocol, fragment: str
) -> None:
    assert fragment in ledger.refused(SPONSOR, "trial.register", TrialRegister(trial_id, bad), RejectReason.INVALID)
    assert trial(ledger.state, trial_id) is None


def test_normalise_endpoint_gives_the_form_the_rules_accept() -> None:
    assert normalise_endpoint("  All-cause  Mortality\tat 28 days ") == MORTALITY


# -- trial.amend -------------------------------------------------------------------------


def test_before_enrolment_the_sponsor_amends_endpoints_and_every_version_is_kept(registered: LedgerHarness) -> None:
    amended = protocol(primary=(MORTALITY, ICU), secondary=(STAY,), document="protocol v2")
    registered.ok(SPONSOR, "trial.amend", TrialAmend(TRIAL_ID, amended))
    found = registered_trial(registered)
    assert [version.protocol for version in found.versions] == [protocol(), amended]
    assert found.versions[1].height == registered.height and found.protocol == amended


def test_an_amendment_must_come_from_the_sponsor_name_a_trial_and_change_something(registered: LedgerHarness) -> None:
    amend = TrialAmend(TRIAL_ID, protocol(document="protocol v2"))
    assert "only the sponsor" in registered.refused(HOSPITAL, "trial.amend", amend, RejectReason.NOT_AUTHORISED)
    unknown = TrialAmend("NCT99999999", protocol())
    assert "no trial 'NCT99999999'" in registered.refused(SPONSOR, "trial.amend", unknown, RejectReason.INVALID)
    same = TrialAmend(TRIAL_ID, protocol())
    assert "changes nothing" in registered.refused(SPONSOR, "trial.amend", same, RejectReason.INVALID)
    malformed = TrialAmend(TRIAL_ID, protocol(primary=()))
    assert "primary endpoints" in registered.refused(SPONSOR, "trial.amend", malformed, RejectReason.INVALID)
    assert len(registered_trial(registered).versions) == 1


def test_after_the_first_enrolment_endpoints_are_frozen_but_the_document_may_be_amended(
    registered: LedgerHarness,
) -> None:
    enrol(registered)
    switch = TrialAmend(TRIAL_ID, protocol(primary=(ICU,), secondary=(STAY, MORTALITY), document="protocol v2"))
    detail = registered.refused(SPONSOR, "trial.amend", switch, RejectReason.INVALID)
    assert "frozen since the first enrolment" in detail and "outcome switching" in detail
    document_only = TrialAmend(TRIAL_ID, protocol(document="protocol v2", planned=250))
    registered.ok(SPONSOR, "trial.amend", document_only)
    found = registered_trial(registered)
    assert len(found.versions) == 2 and found.versions[1].height > found.first_enrolment_height  # type: ignore[operator]


def test_a_trial_with_results_is_no_longer_amended(registered: LedgerHarness) -> None:
    registered.ok(SPONSOR, "trial.results", results())
    amend = TrialAmend(TRIAL_ID, protocol(document="protocol v2"))
    assert "closed: no more amendments" in registered.refused(SPONSOR, "trial.amend", amend, RejectReason.INVALID)


# -- trial.consent / trial.withdraw ---------------------------------------------------------


def test_a_patient_gives_and_withdraws_research_consent(registered: LedgerHarness) -> None:
    registered.ok(PATIENT, "trial.consent", TrialConsent(TRIAL_ID))
    consent = research_consent(registered.state, TRIAL_ID, PATIENT.public_key)
    assert consent is not None and consent.participant == participant_reference(TRIAL_ID, PATIENT.public_key)
    assert research_consent(registered.state, TRIAL_ID, OTHER_PATIENT.public_key) is None
    registered.ok(PATIENT, "trial.withdraw", TrialWithdraw(TRIAL_ID))
    assert research_consent(registered.state, TRIAL_ID, PATIENT.public_key) is None


def test_research_consent_is_refused_to_non_patients_unknown_trials_and_twice(registered: LedgerHarness) -> None:
    for signer in (CLINICIAN, HOSPITAL):
        detail = registered.refused(signer, "trial.consent", TrialConsent(TRIAL_ID), RejectReason.NOT_AUTHORISED)
        assert "only a patient in force" in detail
    assert "no trial 'NCT00000000'" in registered.refused(
        PATIENT, "trial.consent", TrialConsent("NCT00000000"), RejectReason.INVALID
    )
    registered.ok(PATIENT, "trial.consent", TrialConsent(TRIAL_ID))
    assert "already in force" in registered.refused(
        PATIENT, "trial.consent", TrialConsent(TRIAL_ID), RejectReason.DUPLICATE
    )


def test_no_consent_is_given_to_a_closed_trial(registered: LedgerHarness) -> None:
    registered.ok(SPONSOR, "trial.results", results())
    assert "closed" in registered.refused(PATIENT, "trial.consent", TrialConsent(TRIAL_ID), RejectReason.INVALID)


def test_a_withdrawal_needs_a_consent_in_force_and_the_patient(registered: LedgerHarness) -> None:
    assert "no research consent" in registered.refused(
        PATIENT, "trial.withdraw", TrialWithdraw(TRIAL_ID), RejectReason.INVALID
    )
    registered.ok(PATIENT, "trial.consent", TrialConsent(TRIAL_ID))
    detail = registered.refused(CLINICIAN, "trial.withdraw", TrialWithdraw(TRIAL_ID), RejectReason.NOT_AUTHORISED)
    assert "only a patient" in detail


def test_research_consent_follows_the_person_through_a_key_rotation(registered: LedgerHarness) -> None:
    registered.ok(PATIENT, "trial.consent", TrialConsent(TRIAL_ID))
    rotated = key("patient-rotated")
    registered.ok(PATIENT, "identity.person.rotate", person_rotation(PATIENT, rotated))
    assert "only a patient" in registered.refused(
        PATIENT, "trial.withdraw", TrialWithdraw(TRIAL_ID), RejectReason.NOT_AUTHORISED
    )
    registered.ok(rotated, "trial.withdraw", TrialWithdraw(TRIAL_ID))
    assert research_consent(registered.state, TRIAL_ID, PATIENT.public_key) is None


# -- trial.enroll ---------------------------------------------------------------------------


def test_a_clinician_enrols_a_consenting_patient_under_a_pseudonym(registered: LedgerHarness) -> None:
    enrol(registered)
    found = registered_trial(registered)
    assert (found.enrolled, found.first_enrolment_height) == (1, registered.height)
    record = enrolment(registered.state, TRIAL_ID, PATIENT.public_key)
    assert record is not None and record.enrolled_by == CLINICIAN.public_key and record.withdrawn_ms is None
    assert (
        record.participant
        == participant_reference(TRIAL_ID, PATIENT.public_key)
        != participant_reference("NCT7654321", PATIENT.public_key)
    )
    trial_state = {name: value for name, value in registered.state.data.items() if name.startswith("trial")}
    assert not any(
        PATIENT.public_key.hex() in name or PATIENT.public_key in value for name, value in trial_state.items()
    )


def test_the_sponsor_and_a_researcher_enrol_too_and_the_first_enrolment_height_stays(registered: LedgerHarness) -> None:
    enrol(registered, PATIENT, SPONSOR)
    first_height = registered.height
    enrol(registered, OTHER_PATIENT, RESEARCHER)
    found = registered_trial(registered)
    assert (found.enrolled, found.first_enrolment_height) == (2, first_height)


def test_enrolment_is_refused_without_consent_and_after_withdrawal(registered: LedgerHarness) -> None:
    enroll = TrialEnroll(TRIAL_ID, PATIENT.public_key)
    assert "no research consent" in registered.refused(CLINICIAN, "trial.enroll", enroll, RejectReason.NOT_AUTHORISED)
    registered.ok(PATIENT, "trial.consent", TrialConsent(TRIAL_ID))
    registered.ok(PATIENT, "trial.withdraw", TrialWithdraw(TRIAL_ID))
    detail = registered.refused(CLINICIAN, "trial.enroll", enroll, RejectReason.NOT_AUTHORISED)
    assert "never given, or withdrawn" in detail and "trial.consent first" in detail
    assert registered_trial(registered).enrolled == 0


def test_only_the_sponsor_or_staff_of_an_organisation_in_force_enrol(registered: LedgerHarness) -> None:
    registered.ok(PATIENT, "trial.consent", TrialConsent(TRIAL_ID))
    enroll = TrialEnroll(TRIAL_ID, PATIENT.public_key)
    for signer in (PHARMACIST, PATIENT, HOSPITAL, PHARMACY, key("stranger")):
        detail = registered.refused(signer, "trial.enroll", enroll, RejectReason.NOT_AUTHORISED)
        assert "only the trial's sponsor, or a clinician or researcher" in detail


def test_enrolment_is_refused_for_unknown_trials_people_and_non_patients(registered: LedgerHarness) -> None:
    unknown_trial = TrialEnroll("NCT00000000", PATIENT.public_key)
    assert "no trial" in registered.refused(CLINICIAN, "trial.enroll", unknown_trial, RejectReason.INVALID)
    stranger = TrialEnroll(TRIAL_ID, key("stranger").public_key)
    assert "no person in force" in registered.refused(CLINICIAN, "trial.enroll", stranger, RejectReason.INVALID)
    researcher = TrialEnroll(TRIAL_ID, RESEARCHER.public_key)
    assert "this person is a researcher" in registered.refused(
        CLINICIAN, "trial.enroll", researcher, RejectReason.INVALID
    )


def test_a_patient_is_enrolled_once_even_after_withdrawing_and_consenting_again(registered: LedgerHarness) -> None:
    enrol(registered)
    enroll = TrialEnroll(TRIAL_ID, PATIENT.public_key)
    assert "already enrolled" in registered.refused(RESEARCHER, "trial.enroll", enroll, RejectReason.DUPLICATE)
    registered.ok(PATIENT, "trial.withdraw", TrialWithdraw(TRIAL_ID))
    record = enrolment(registered.state, TRIAL_ID, PATIENT.public_key)
    assert record is not None and record.withdrawn_ms == registered.time_ms
    registered.ok(PATIENT, "trial.consent", TrialConsent(TRIAL_ID))
    assert "already enrolled" in registered.refused(CLINICIAN, "trial.enroll", enroll, RejectReason.DUPLICATE)
    registered.ok(PATIENT, "trial.withdraw", TrialWithdraw(TRIAL_ID))
    found = registered_trial(registered)
    assert (found.enrolled, found.withdrawn) == (1, 1), "a second withdrawal is not counted again"


def test_a_closed_trial_enrols_nobody(registered: LedgerHarness) -> None:
    registered.ok(PATIENT, "trial.consent", TrialConsent(TRIAL_ID))
    registered.ok(SPONSOR, "trial.results", results())
    enroll = TrialEnroll(TRIAL_ID, PATIENT.public_key)
    assert "closed: no more enrolment" in registered.refused(CLINICIAN, "trial.enroll", enroll, RejectReason.INVALID)
    registered.ok(PATIENT, "trial.withdraw", TrialWithdraw(TRIAL_ID))  # withdrawing stays possible


# -- trial.results ---------------------------------------------------------------------------


def test_honest_results_are_anchored_without_a_flag_and_close_the_trial(registered: LedgerHarness) -> None:
    enrol(registered)
    registered.ok(SPONSOR, "trial.results", results(primary=(MORTALITY,), secondary=(STAY,)))
    found = registered_trial(registered)
    assert found.closed and not found.flagged
    (result,) = found.results
    assert (result.dataset_sha256, result.outcome_switching, result.protocol_version) == (DATASET, None, 1)
    assert flagged_trials(registered.state) == ()


def test_results_that_switch_a_primary_endpoint_are_anchored_with_the_differences_named(
    registered: LedgerHarness,
) -> None:
    registered.ok(SPONSOR, "trial.results", results(primary=(STAY, ICU), secondary=()))
    (result,) = registered_trial(registered).results
    switching = result.outcome_switching
    assert switching is not None and result.dataset_sha256 == DATASET
    assert (switching.primary_unreported, switching.primary_added, switching.promoted) == (
        (MORTALITY,),
        (ICU,),
        (STAY,),
    )
    assert (switching.demoted, switching.secondary_unreported, switching.secondary_added) == ((), (), ())
    assert f"registered primary endpoint {MORTALITY!r} not reported" in switching.summary
    assert f"endpoint {ICU!r} reported as primary but never registered" in switching.summary
    assert f"secondary endpoint {STAY!r} promoted to primary" in switching.summary
    assert flagged_trials(registered.state) == (TRIAL_ID,)


def test_a_demoted_primary_is_flagged(registered: LedgerHarness) -> None:
    registered.ok(SPONSOR, "trial.results", results(primary=(STAY,), secondary=(MORTALITY,)))
    switching = registered_trial(registered).results[0].outcome_switching
    assert switching is not None and (switching.promoted, switching.demoted) == ((STAY,), (MORTALITY,))
    assert f"primary endpoint {MORTALITY!r} demoted to secondary" in switching.summary


def test_results_are_checked_against_the_amended_protocol(registered: LedgerHarness) -> None:
    registered.ok(
        SPONSOR, "trial.amend", TrialAmend(TRIAL_ID, protocol(primary=(ICU,), secondary=(), document="protocol v2"))
    )
    registered.ok(SPONSOR, "trial.results", results(primary=(ICU,), secondary=()))
    (result,) = registered_trial(registered).results
    assert result.outcome_switching is None and result.protocol_version == 2


def test_verify_dataset_matches_the_anchored_hash_and_not_another(registered: LedgerHarness) -> None:
    assert verify_dataset(registered.state, TRIAL_ID, DATASET) == trials.DatasetVerification(
        TRIAL_ID, DATASET, False, None, None
    )
    registered.ok(SPONSOR, "trial.results", results())
    registered.ok(SPONSOR, "trial.results", results(dataset=OTHER_DATASET))
    first, second = registered_trial(registered).results
    assert verify_dataset(registered.state, TRIAL_ID, DATASET) == trials.DatasetVerification(
        TRIAL_ID, DATASET, True, 1, first
    )
    assert verify_dataset(registered.state, TRIAL_ID, OTHER_DATASET) == trials.DatasetVerification(
        TRIAL_ID, OTHER_DATASET, True, 2, second
    )
    tampered = verify_dataset(registered.state, TRIAL_ID, sha("results v1, edited"))
    assert tampered is not None and not tampered.matches and tampered.result is None
    assert verify_dataset(registered.state, "NCT00000000", DATASET) is None


def test_results_come_from_the_sponsor_with_a_new_well_formed_data_set(registered: LedgerHarness) -> None:
    assert "only the sponsor" in registered.refused(HOSPITAL, "trial.results", results(), RejectReason.NOT_AUTHORISED)
    unknown = TrialResults("NCT00000000", DATASET, (MORTALITY,), ())
    assert "no trial" in registered.refused(SPONSOR, "trial.results", unknown, RejectReason.INVALID)
    short = results(dataset=DATASET[:16])
    assert "data set hash must be a 32-byte" in registered.refused(
        SPONSOR, "trial.results", short, RejectReason.INVALID
    )
    overlapping = results(primary=(MORTALITY,), secondary=(MORTALITY,))
    assert "both primary and secondary" in registered.refused(
        SPONSOR, "trial.results", overlapping, RejectReason.INVALID
    )
    unnormalised = results(primary=("Mortality",))
    assert "not in normal form" in registered.refused(SPONSOR, "trial.results", unnormalised, RejectReason.INVALID)
    assert not registered_trial(registered).closed
    registered.ok(SPONSOR, "trial.results", results())
    detail = registered.refused(SPONSOR, "trial.results", results(primary=(ICU,)), RejectReason.DUPLICATE)
    assert "already anchored as result 1" in detail


def test_results_reporting_no_primary_endpoint_are_anchored_and_flagged(registered: LedgerHarness) -> None:
    registered.ok(SPONSOR, "trial.results", results(primary=(), secondary=(STAY,)))
    switching = registered_trial(registered).results[0].outcome_switching
    assert switching is not None and switching.primary_unreported == (MORTALITY,)


def test_a_revoked_sponsor_no_longer_anchors_results(registered: LedgerHarness) -> None:
    for validator in registered.validators[:3]:
        registered.ok(validator, "identity.org.revoke", OrgRevoke(SPONSOR.public_key))
    assert "while in force" in registered.refused(SPONSOR, "trial.results", results(), RejectReason.NOT_AUTHORISED)


def test_flagged_trials_lists_each_flagged_trial_once_most_recent_first(ledger: LedgerHarness) -> None:
    for trial_id in ("NCT00000001", "NCT00000002", "NCT00000003"):
        ledger.ok(SPONSOR, "trial.register", TrialRegister(trial_id, protocol()))
    ledger.ok(SPONSOR, "trial.results", TrialResults("NCT00000001", DATASET, (ICU,), (STAY,)))
    ledger.ok(SPONSOR, "trial.results", TrialResults("NCT00000002", DATASET, (MORTALITY,), (STAY,)))
    ledger.ok(SPONSOR, "trial.results", TrialResults("NCT00000003", DATASET, (STAY,), ()))
    ledger.ok(SPONSOR, "trial.results", TrialResults("NCT00000001", OTHER_DATASET, (ICU,), ()))
    assert flagged_trials(ledger.state) == ("NCT00000003", "NCT00000001")
    assert flagged_trials(ledger.state, limit=1) == ("NCT00000003",)
    with pytest.raises(ValueError, match="limit must be"):
        flagged_trials(ledger.state, limit=0)


def test_the_largest_trial_the_rules_allow_is_kept_and_the_limits_are_refused(ledger: LedgerHarness) -> None:
    def endpoints(prefix: str, count: int) -> tuple[str, ...]:
        return tuple(f"{prefix} {n:03d} ".ljust(ENDPOINT_LENGTH_MAX, "x") for n in range(count))

    primary, secondary = endpoints("primary", PRIMARY_ENDPOINTS_MAX), endpoints("secondary", SECONDARY_ENDPOINTS_MAX)
    ledger.ok(SPONSOR, "trial.register", TrialRegister(TRIAL_ID, protocol(primary, secondary, "v1")))
    for version in range(2, trials.PROTOCOL_VERSIONS_MAX + 1):
        ledger.ok(SPONSOR, "trial.amend", TrialAmend(TRIAL_ID, protocol(primary, secondary, f"v{version}")))
    too_many_versions = TrialAmend(TRIAL_ID, protocol(primary, secondary, "one more"))
    assert "the most kept" in ledger.refused(SPONSOR, "trial.amend", too_many_versions, RejectReason.INVALID)
    new_primary, new_secondary = (
        endpoints("new primary", PRIMARY_ENDPOINTS_MAX),
        endpoints("new secondary", SECONDARY_ENDPOINTS_MAX),
    )
    for number in range(trials.RESULTS_MAX):
        ledger.ok(SPONSOR, "trial.results", TrialResults(TRIAL_ID, sha(f"data {number}"), new_primary, new_secondary))
    one_more = TrialResults(TRIAL_ID, sha("one more"), new_primary, new_secondary)
    assert "the most kept" in ledger.refused(SPONSOR, "trial.results", one_more, RejectReason.INVALID)
    found = registered_trial(ledger)
    assert len(found.versions) == trials.PROTOCOL_VERSIONS_MAX and len(found.results) == trials.RESULTS_MAX


# -- property --------------------------------------------------------------------------------

POOL = tuple(f"endpoint {name}" for name in "abcdefgh")


@st.composite
def split_endpoints(draw: st.DrawFn, primary_min: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Disjoint primary and secondary lists drawn from ``POOL``."""
    primary = draw(st.lists(st.sampled_from(POOL), min_size=primary_min, max_size=4, unique=True))
    rest = [endpoint for endpoint in POOL if endpoint not in primary]
    secondary = draw(st.lists(st.sampled_from(rest), max_size=4, unique=True))
    return tuple(primary), tuple(secondary)


@settings(max_examples=60, deadline=None)
@given(
    registered_lists=split_endpoints(primary_min=1),
    reported_lists=split_endpoints(primary_min=0),
    honest=st.booleans(),
    data=st.data(),
)
def test_the_flag_is_raised_exactly_when_the_reported_sets_differ_from_the_registered_ones(
    registered_lists: tuple[tuple[str, ...], tuple[str, ...]],
    reported_lists: tuple[tuple[str, ...], tuple[str, ...]],
    honest: bool,
    data: st.DataObject,
) -> None:
    registered_primary, registered_secondary = registered_lists
    if honest:  # the same sets, maybe in another order
        reported_lists = (
            data.draw(st.permutations(registered_primary)),
            data.draw(st.permutations(registered_secondary)),
        )
    reported_primary, reported_secondary = reported_lists
    ledger = new_ledger()
    ledger.ok(SPONSOR, "trial.register", TrialRegister(TRIAL_ID, protocol(registered_primary, registered_secondary)))
    ledger.ok(
        SPONSOR, "trial.results", TrialResults(TRIAL_ID, DATASET, tuple(reported_primary), tuple(reported_secondary))
    )
    switching = registered_trial(ledger).results[0].outcome_switching
    differ = set(reported_primary) != set(registered_primary) or set(reported_secondary) != set(registered_secondary)
    assert (switching is not None) == differ
    if switching is not None:
        # The differences say exactly how to get from the registered sets to the reported ones.
        rebuilt_primary = (set(registered_primary) - set(switching.primary_unreported) - set(switching.demoted)) | set(
            switching.promoted + switching.primary_added
        )
        rebuilt_secondary = (
            set(registered_secondary) - set(switching.secondary_unreported) - set(switching.promoted)
        ) | set(switching.demoted + switching.secondary_added)
        assert (rebuilt_primary, rebuilt_secondary) == (set(reported_primary), set(reported_secondary))
        assert flagged_trials(ledger.state) == (TRIAL_ID,)
