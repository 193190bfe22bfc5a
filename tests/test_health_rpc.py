"""The healthcare read methods against a real store: blocks made by the rule harness are
appended to a SQLite ``Store``, and each handler is called as the RPC server calls it
(params bound and checked first). One happy path and one bad input per method."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.auditevent import AuditEvent
from fhir.resources.consent import Consent

from health_world import (
    DATASET,
    DOCTOR,
    FAR_MS,
    GTIN,
    HOSPITAL,
    LAB,
    MAKER,
    NURSE,
    PATIENT,
    PHARMACY,
    RECORD_ID,
    SPONSOR,
    TRIAL,
    D,
    P,
    StoreHarness,
    build_world,
    fake_node,
)
from p2pmed.crypto import SEAL_OVERHEAD, padme
from p2pmed.ledger.contracts.consent import ConsentDeny, ConsentGrant
from p2pmed.ledger.contracts.identity import OrgRevoke, PersonRevoke
from p2pmed.node.api.health import health_methods
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreHarness]:
    harness = StoreHarness(tmp_path_factory.mktemp("store") / "store.db")
    build_world(harness)
    yield harness
    harness.store.close()


@pytest.fixture(scope="module")
def methods(ledger: StoreHarness) -> dict[str, Method]:
    return health_methods(fake_node(ledger.store))


async def call(methods: dict[str, Method], name: str, **params: Any) -> Any:
    method = methods[name]
    return await method.handler(method.bind(name, params))


async def refused(methods: dict[str, Method], name: str, code: ErrorCode, fragment: str, **params: Any) -> None:
    with pytest.raises(RpcError) as raised:
        await call(methods, name, **params)
    assert raised.value.code == code, raised.value.message
    assert fragment in raised.value.message


# -- accounts and identity -------------------------------------------------------------------------


async def test_account_nonce_counts_committed_transactions(methods: dict[str, Method]) -> None:
    assert await call(methods, "account.nonce", sender=P.hex()) == {
        "committed": 4,
        "next": 4,
    }  # two grants, a delegation, a trial consent
    await refused(methods, "account.nonce", ErrorCode.INVALID_PARAMS, '"sender"', sender="xyz")


async def test_identity_organisation_answers_for_organisations_in_force(methods: dict[str, Method]) -> None:
    found = await call(methods, "identity.organisation", key=LAB.public_key.hex())
    assert (found["key"], found["kind"], found["active"]) == (LAB.public_key.hex(), "laboratory", True)
    assert found["encryption_key"]["kem"] == "x25519"
    await refused(methods, "identity.organisation", ErrorCode.NOT_FOUND, "no organisation", key=P.hex())
    await refused(methods, "identity.organisation", ErrorCode.INVALID_PARAMS, "64 hex digits, got 4", key="abcd")


async def test_identity_person_is_found_by_id(methods: dict[str, Method]) -> None:
    found = await call(methods, "identity.person", id_or_key=D.hex())
    assert (found["id"], found["role"], found["organisation"], found["active"]) == (
        D.hex(),
        "clinician",
        HOSPITAL.public_key.hex(),
        True,
    )
    await refused(methods, "identity.person", ErrorCode.NOT_FOUND, "no person", id_or_key=LAB.public_key.hex())
    await refused(methods, "identity.person", ErrorCode.INVALID_PARAMS, '"id_or_key"', id_or_key="00")


# -- consent -------------------------------------------------------------------------------------------


async def test_consent_get_uses_the_ledger_time_not_the_node_clock(methods: dict[str, Method]) -> None:
    found = await call(methods, "consent.get", patient=P.hex(), grantee=D.hex(), category="imaging")
    assert (found["purpose"], found["granted_by"], found["expires_ms"]) == ("TREAT", P.hex(), FAR_MS)
    assert (
        await call(methods, "consent.get", patient=P.hex(), grantee=LAB.public_key.hex(), category="laboratory") is None
    )
    await refused(
        methods,
        "consent.get",
        ErrorCode.INVALID_PARAMS,
        'missing parameter "category"',
        patient=P.hex(),
        grantee=D.hex(),
    )


async def test_a_consent_to_a_revoked_party_is_not_shown_in_force(tmp_path: Path) -> None:
    harness = StoreHarness(tmp_path / "store.db")
    harness.admit_organisation(HOSPITAL, "hospital")
    harness.admit_organisation(LAB, "laboratory")
    harness.register_person(HOSPITAL, PATIENT, "patient")
    harness.register_person(HOSPITAL, DOCTOR, "clinician")
    for grantee in (D, LAB.public_key):
        harness.ok(PATIENT, "consent.grant", ConsentGrant(P, grantee, ("laboratory",), ("TREAT",), FAR_MS))
    harness.ok(HOSPITAL, "identity.person.revoke", PersonRevoke(D))
    for validator in harness.validators[:3]:  # 2f+1 of four
        harness.ok(validator, "identity.org.revoke", OrgRevoke(LAB.public_key))
    methods = health_methods(fake_node(harness.store))
    assert (await call(methods, "consent.list", patient=P.hex()))["consents"] == []
    for grantee in (D, LAB.public_key):
        assert await call(methods, "consent.get", patient=P.hex(), grantee=grantee.hex(), category="laboratory") is None
    harness.store.close()


async def test_consent_list_shows_consents_in_force_and_delegates(
    methods: dict[str, Method], ledger: StoreHarness
) -> None:
    listed = await call(methods, "consent.list", patient=P.hex())
    assert listed["time_ms"] == ledger.time_ms
    assert [(c["grantee"], c["category"]) for c in listed["consents"]] == [
        (D.hex(), "imaging"),
        (D.hex(), "laboratory"),
    ]
    assert listed["truncated"] is False  # the lab's consent expired at block time, so it is not listed
    assert [d["delegate"] for d in listed["delegates"]] == [HOSPITAL.public_key.hex()]
    assert (await call(methods, "consent.list", patient=P.hex(), limit=1))["truncated"] is True
    await refused(
        methods, "consent.list", ErrorCode.INVALID_PARAMS, '"limit" must be 1..1000', patient=P.hex(), limit=0
    )
    await refused(methods, "consent.list", ErrorCode.INVALID_PARAMS, '"patient"', patient="ab")


async def test_consent_list_as_fhir_gives_valid_r5_consents(methods: dict[str, Method]) -> None:
    listed = await call(methods, "consent.list", patient=P.hex(), format="fhir")
    consents = [Consent.model_validate(resource) for resource in listed["consents"]]
    assert [consent.decision for consent in consents] == ["deny", "deny"]  # nothing by default, but the provision
    assert listed["denies"] == []
    await refused(methods, "consent.list", ErrorCode.INVALID_PARAMS, "entries, fhir", patient=P.hex(), format="xml")


async def test_denies_are_listed_and_consent_get_answers_null_for_what_they_cover(tmp_path: Path) -> None:
    ledger = StoreHarness(tmp_path / "store.db")
    build_world(ledger)
    ledger.ok(PATIENT, "consent.deny", ConsentDeny(P, D, ("imaging",), ("TREAT", "HRESCH"), FAR_MS))
    methods = health_methods(fake_node(ledger.store))
    assert await call(methods, "consent.get", patient=P.hex(), grantee=D.hex(), category="imaging") is None
    assert await call(methods, "consent.get", patient=P.hex(), grantee=D.hex(), category="laboratory") is not None
    listed = await call(methods, "consent.list", patient=P.hex())
    assert [(d["grantee"], d["category"], d["purpose"]) for d in listed["denies"]] == [
        (D.hex(), "imaging", "HRESCH"),
        (D.hex(), "imaging", "TREAT"),
    ]
    assert len(listed["consents"]) == 2, "the consents a deny overrides are still listed: they hold once it is lifted"
    assert (await call(methods, "consent.list", patient=P.hex(), limit=2))["truncated"] is False
    assert (await call(methods, "consent.list", patient=P.hex(), limit=1))["truncated"] is True
    fhir = await call(methods, "consent.list", patient=P.hex(), format="fhir")
    denies = [Consent.model_validate(resource) for resource in fhir["denies"]]
    assert [(each.decision, each.provision[0].actor[0].reference.identifier.value) for each in denies] == [
        ("permit", D.hex()),
        ("permit", D.hex()),
    ]
    ledger.store.close()


# -- records and audit -----------------------------------------------------------------------------------


async def test_record_get_returns_the_anchor(methods: dict[str, Method]) -> None:
    found = await call(methods, "record.get", record_id=RECORD_ID.hex())
    assert (found["patient"], found["category"], found["writer"], found["size"], found["erased"]) == (
        P.hex(),
        "laboratory",
        D.hex(),
        padme(1) + SEAL_OVERHEAD,
        False,
    )
    assert found["threshold"] == 2 and len(found["share_sha256"]) == len(found["custodians"]) == 3
    assert found["ciphertext_sha256"] == hashlib.sha256(b"ciphertext" + RECORD_ID).hexdigest()
    await refused(methods, "record.get", ErrorCode.NOT_FOUND, "no record", record_id=DATASET.hex())
    await refused(methods, "record.get", ErrorCode.INVALID_PARAMS, '"record_id"', record_id="")


async def test_audit_query_by_patient_record_and_time(methods: dict[str, Method], ledger: StoreHarness) -> None:
    by_patient = await call(methods, "audit.query", by="patient", subject=P.hex())
    kinds = [entry["kind"] for entry in by_patient["entries"]]
    assert kinds == ["consent-grant", "consent-grant", "consent-delegate", "record-write", "record-read", "break-glass"]
    by_record = await call(methods, "audit.query", by="record", subject=RECORD_ID.hex(), limit=2)
    assert [entry["kind"] for entry in by_record["entries"]] == ["record-write", "record-read"]
    last = by_patient["entries"][-1]["time_ms"]
    window = await call(methods, "audit.query", by="patient", subject=P.hex(), since_ms=last, until_ms=last + 1)
    [detail] = [entry["detail"] for entry in window["entries"]]
    assert detail.startswith("reason sha256 "), "a break-glass reason is sealed, only its hash is on the ledger"


async def test_audit_query_as_fhir_marks_the_break_glass_read(methods: dict[str, Method]) -> None:
    answer = await call(methods, "audit.query", by="actor", subject=NURSE.public_key.hex(), format="fhir")
    [event] = [AuditEvent.model_validate(resource) for resource in answer["entries"]]
    codes = {coding.code for concept in event.authorization for coding in concept.coding}
    assert codes == {"BTG", "ETREAT"} and event.severity == "warning"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"by": "tx", "subject": P.hex()}, '"by" must be one of patient, actor, record'),
        ({"by": "patient", "subject": P.hex(), "since_ms": 10, "until_ms": 10}, '"until_ms" (10) must be after'),
        ({"by": "patient", "subject": P.hex(), "since_ms": -1}, '"since_ms" must be 0 or more, got -1'),
        ({"by": "patient", "subject": P.hex(), "limit": 1001}, '"limit" must be 1..1000'),
    ],
)
async def test_audit_query_refuses_bad_queries(
    methods: dict[str, Method], params: dict[str, Any], fragment: str
) -> None:
    await refused(methods, "audit.query", ErrorCode.INVALID_PARAMS, fragment, **params)


# -- trials ------------------------------------------------------------------------------------------------


async def test_trial_get_shows_the_derived_state(methods: dict[str, Method]) -> None:
    found = await call(methods, "trial.get", trial_id=TRIAL)
    assert (found["closed"], found["flagged"], found["enrolled"], found["protocol_version"]) == (True, True, 1, 1)
    assert found["protocol"]["primary_endpoints"] == ["hba1c at 12 weeks"]
    assert "promoted to primary" in found["results"][0]["outcome_switching"]["summary"]
    await refused(methods, "trial.get", ErrorCode.NOT_FOUND, "no trial 'NCT99'", trial_id="NCT99")
    await refused(methods, "trial.get", ErrorCode.INVALID_PARAMS, "registry-style", trial_id="nct1")


async def test_trial_verify_matches_anchored_data_sets(methods: dict[str, Method]) -> None:
    assert (await call(methods, "trial.verify", trial_id=TRIAL, sha256=DATASET.hex()))["result_number"] == 1
    assert (await call(methods, "trial.verify", trial_id=TRIAL, sha256=RECORD_ID.hex()))["matches"] is False
    await refused(methods, "trial.verify", ErrorCode.NOT_FOUND, "no trial", trial_id="NCT99", sha256=DATASET.hex())
    await refused(methods, "trial.verify", ErrorCode.INVALID_PARAMS, '"sha256"', trial_id=TRIAL, sha256="00" * 31)


async def test_trial_flagged_lists_switched_trials(methods: dict[str, Method]) -> None:
    [flagged] = (await call(methods, "trial.flagged"))["trials"]
    assert flagged["trial_id"] == TRIAL and flagged["sponsor"] == SPONSOR.public_key.hex()
    assert flagged["switches"][0].startswith("Outcome switching:")
    await refused(methods, "trial.flagged", ErrorCode.INVALID_PARAMS, '"limit"', limit=-5)


# -- supply --------------------------------------------------------------------------------------------------


async def test_supply_trace_gives_the_pack_and_its_history(methods: dict[str, Method]) -> None:
    traced = await call(methods, "supply.trace", gtin=GTIN, serial="S1")
    assert traced["pack"]["holder"] == MAKER.public_key.hex() and [e["kind"] for e in traced["events"]] == [
        "commission"
    ]
    unknown = await call(methods, "supply.trace", gtin=GTIN, serial="FAKE1")
    assert unknown["pack"] is None and [e["detail"] for e in unknown["events"]] == ["unknown-suspect-counterfeit"]
    await refused(
        methods, "supply.trace", ErrorCode.INVALID_PARAMS, "wrong check digit", gtin=GTIN[:-1] + "9", serial="S1"
    )


async def test_supply_verify_judges_at_block_time(methods: dict[str, Method]) -> None:
    genuine = await call(methods, "supply.verify", gtin=GTIN, serial="S2")
    assert (genuine["status"], genuine["dispensable"], genuine["expiry"]) == ("genuine-dispensable", True, "2099-12-31")
    elsewhere = await call(methods, "supply.verify", gtin=GTIN, serial="S2", organisation=PHARMACY.public_key.hex())
    assert elsewhere["status"] == "not-held-here"
    await refused(methods, "supply.verify", ErrorCode.INVALID_PARAMS, "serial", gtin=GTIN, serial="")
    await refused(
        methods, "supply.verify", ErrorCode.INVALID_PARAMS, '"organisation"', gtin=GTIN, serial="S2", organisation="aa"
    )


async def test_supply_alerts_pages_the_alert_log(methods: dict[str, Method]) -> None:
    answer = await call(methods, "supply.alerts")
    assert answer["count"] == 1 and answer["alerts"][0]["kind"] == "unknown-suspect-counterfeit"
    assert (await call(methods, "supply.alerts", start=1))["alerts"] == []
    await refused(methods, "supply.alerts", ErrorCode.INVALID_PARAMS, '"limit" must be 1..1000', limit=5000)


async def test_before_the_first_block_the_ledger_time_is_0_and_nothing_is_in_force(tmp_path: Path) -> None:
    empty = StoreHarness(tmp_path / "empty.db")
    listed = await call(health_methods(fake_node(empty.store)), "consent.list", patient=P.hex())
    assert (listed["time_ms"], listed["consents"], listed["delegates"]) == (0, [], [])
    empty.store.close()
