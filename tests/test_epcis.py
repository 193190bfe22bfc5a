"""EPCIS 2.0 JSON import: documents and single events become supply transaction
bodies that the ledger accepts; each kind of bad input gets an EpcisError naming
its JSON path."""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_harness import LedgerHarness, key
from p2pmed.interop import epcis
from p2pmed.interop.epcis import EpcisError, import_epcis, parse_epc
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.supply import (
    PackRef,
    SupplyAggregate,
    SupplyCommission,
    SupplyDecommission,
    SupplyDisaggregate,
    SupplyDispense,
    SupplyReceive,
    SupplyShip,
    gs1_check_digit,
)
from p2pmed.ledger.errors import RejectReason
from strategies import mutated

MAKER, PHARMACY, DISTRIBUTOR = key("maker"), key("pharmacy"), key("distributor")
GTIN = "10614141073464"
SGTIN_2017 = "urn:epc:id:sgtin:0614141.107346.2017"
LINK_2018 = "https://id.gs1.org/01/10614141073464/21/2018"
PACKS = (PackRef(GTIN, "2017"), PackRef(GTIN, "2018"))
PHARMACY_GLN = "urn:epc:id:sgln:0614141.00002.0"
DISTRIBUTOR_GLN = "urn:epc:id:sgln:0614141.00003.0"
PARTIES = {PHARMACY_GLN: PHARMACY.public_key, DISTRIBUTOR_GLN: DISTRIBUTOR.public_key}
TIME = "2026-03-01T09:30:00.000+01:00"
CASE = "106141412345678908"
CASE_URI = "urn:epc:id:sscc:0614141.1234567890"
CASE_LINK = f"https://id.gs1.org/00/{CASE}"
PALLET = "006141410000000012"
PALLET_URI = "urn:epc:id:sscc:0614141.0000000001"
TIME_MS = 1_772_353_800_000


def event(step: str, verb: str, epcs: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An ObjectEvent of ``step`` with action ``verb``; ``fields`` add or replace members."""
    return {
        "type": "ObjectEvent",
        "eventTime": TIME,
        "eventTimeZoneOffset": "+01:00",
        "epcList": [SGTIN_2017, LINK_2018] if epcs is None else epcs,
        "action": verb,
        "bizStep": step,
        "readPoint": {"id": "urn:epc:id:sgln:0614141.00777.0"},
        **fields,
    }


def commissioning(**fields: Any) -> dict[str, Any]:
    ilmd = {"cbvmda:lotNumber": "LOT-42", "cbvmda:itemExpirationDate": "2031-12-31"}
    return event("commissioning", "ADD", **{"disposition": "active", "ilmd": ilmd, **fields})


def shipping(epcs: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    destinations = [{"type": "owning_party", "destination": PHARMACY_GLN}]
    return event(
        "shipping", "OBSERVE", epcs, **{"disposition": "in_transit", "destinationList": destinations, **fields}
    )


def packing(**fields: Any) -> dict[str, Any]:
    """An AggregationEvent packing the two packs and a case onto PALLET."""
    return {
        "type": "AggregationEvent",
        "eventTime": TIME,
        "eventTimeZoneOffset": "+01:00",
        "parentID": PALLET_URI,
        "childEPCs": [SGTIN_2017, LINK_2018, CASE_URI],
        "action": "ADD",
        "bizStep": "packing",
        **fields,
    }


def without(fields: dict[str, Any], name: str) -> dict[str, Any]:
    return {field: value for field, value in fields.items() if field != name}


def document(*events: Any) -> dict[str, Any]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-01T10:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def imported(value: Any, **lookups: Any) -> list[tuple[str, Any]]:
    return [(tx.tx_type, tx.body) for tx in import_epcis(json.dumps(value), PARTIES, **lookups)]


def test_a_commissioning_and_shipping_document_becomes_the_expected_bodies() -> None:
    txs = import_epcis(json.dumps(document(commissioning(), shipping())).encode(), PARTIES)
    assert [(tx.tx_type, tx.body, tx.event, tx.event_time_ms) for tx in txs] == [
        (
            "supply.commission",
            SupplyCommission(GTIN, "LOT-42", "2031-12-31", ("2017", "2018")),
            "$.epcisBody.eventList[0]",
            TIME_MS,
        ),
        ("supply.ship", SupplyShip(PHARMACY.public_key, PACKS), "$.epcisBody.eventList[1]", TIME_MS),
    ]


@pytest.mark.parametrize(
    ("uri", "gtin", "serial"),
    [
        (SGTIN_2017, GTIN, "2017"),
        ("urn:epc:id:sgtin:4012345.011111.A%2FB%22%25", "0401234511111" + gs1_check_digit("0401234511111"), 'A/B"%'),
        ("urn:epc:id:sgtin:061414123456.7.X.1", "7061414123456" + gs1_check_digit("7061414123456"), "X.1"),
        (LINK_2018, GTIN, "2018"),
        ("https://id.gs1.org/01/4006381333931/21/S1", "04006381333931", "S1"),
        ("https://brand.example.com/products/01/10614141073464/10/LOT-42/21/S%2F2", GTIN, "S/2"),
    ],
)
def test_sgtin_uris_and_digital_links_name_a_gtin_14_and_a_serial(uri: str, gtin: str, serial: str) -> None:
    assert parse_epc(uri) == PackRef(gtin, serial)


@pytest.mark.parametrize(
    "biz_step", ["shipping", "urn:epcglobal:cbv:bizstep:shipping", "https://ref.gs1.org/cbv/BizStep-shipping"]
)
def test_a_business_step_may_be_bare_a_cbv_urn_or_a_cbv_web_uri(biz_step: str) -> None:
    assert imported(document(shipping(bizStep=biz_step))) == [("supply.ship", SupplyShip(PHARMACY.public_key, PACKS))]


def test_a_single_event_and_a_query_document_are_imported() -> None:
    assert imported(shipping()) == [("supply.ship", SupplyShip(PHARMACY.public_key, PACKS))]
    query = {"type": "EPCISQueryDocument", "epcisBody": {"queryResults": {"resultsBody": {"eventList": [shipping()]}}}}
    assert imported(query) == [("supply.ship", SupplyShip(PHARMACY.public_key, PACKS))]


def test_lot_master_data_may_use_full_cbv_names() -> None:
    ilmd = {"urn:epcglobal:cbv:mda:lotNumber": "L7", "urn:epcglobal:cbv:mda:itemExpirationDate": "2030-06-30"}
    assert imported(commissioning(ilmd=ilmd)) == [
        ("supply.commission", SupplyCommission(GTIN, "L7", "2030-06-30", ("2017", "2018")))
    ]


def test_large_events_are_split_to_the_ledgers_limits_and_commissions_grouped_by_gtin() -> None:
    other = "urn:epc:id:sgtin:4012345.011111.1"
    epcs = [f"urn:epc:id:sgtin:0614141.107346.{number}" for number in range(2500)]
    bodies = [body for _, body in imported(commissioning(epcList=[*epcs[:1], other, *epcs[1:]]))]
    assert [(body.gtin, len(body.serials)) for body in bodies] == [
        (GTIN, 1000),
        (GTIN, 1000),
        (GTIN, 500),
        (parse_epc(other).gtin, 1),
    ]
    assert [len(body.packs) for _, body in imported(shipping(epcs))] == [1000, 1000, 500]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "other"),
        ({"disposition": "urn:epcglobal:cbv:disp:stolen"}, "stolen"),
        ({"disposition": "https://ref.gs1.org/cbv/Disp-damaged"}, "damaged"),
        ({"disposition": "disposed"}, "destroyed"),
        ({"bizStep": "destroying"}, "destroyed"),
    ],
)
def test_a_decommissioning_reason_comes_from_the_disposition(fields: dict[str, Any], reason: str) -> None:
    assert imported(event("decommissioning", "DELETE", **fields)) == [
        ("supply.decommission", SupplyDecommission(PACKS, reason))
    ]


@pytest.mark.parametrize("action", ["OBSERVE", "DELETE"])
def test_a_dispensing_event_observes_or_deletes(action: str) -> None:
    assert imported(event("dispensing", action)) == [("supply.dispense", SupplyDispense(PACKS))]


def test_imported_events_run_on_the_ledger() -> None:
    ledger = LedgerHarness()
    ledger.admit_organisation(MAKER, "manufacturer")
    ledger.grant_prefix(MAKER, "0614141")
    ledger.admit_organisation(PHARMACY, "pharmacy")
    for tx_type, body in imported(document(commissioning(), shipping())):
        ledger.ok(MAKER, tx_type, body)
    shipment_id = supply.shipment_of(ledger.state, PACKS[0])
    at_pharmacy = document(
        event("receiving", "OBSERVE", [SGTIN_2017]),
        event("dispensing", "OBSERVE", [SGTIN_2017]),
        event("receiving", "OBSERVE", [LINK_2018]),
    )
    txs = imported(at_pharmacy, shipment_of=functools.partial(supply.shipment_of, ledger.state))
    assert txs == [
        ("supply.receive", SupplyReceive(shipment_id, PACKS, ())),
        ("supply.dispense", SupplyDispense(PACKS[:1])),
    ], "the receiving events of one shipment make one receipt"
    for tx_type, body in txs:
        ledger.ok(PHARMACY, tx_type, body)
    assert supply.verify(ledger.state, GTIN, "2017", ledger.time_ms).status == "already-dispensed"
    assert (
        supply.verify(ledger.state, GTIN, "2018", ledger.time_ms, PHARMACY.public_key).status == "genuine-dispensable"
    )


# -- shipments without a destinationList, shipped and received in one document ---------------------------

ORDER = "urn:epcglobal:cbv:bt:0614141000003:PO-1152"


def test_a_shipment_without_destinations_goes_to_the_party_its_order_is_mapped_to() -> None:
    ordered = without(shipping(bizTransactionList=[{"type": "po", "bizTransaction": ORDER}]), "destinationList")
    assert import_epcis(json.dumps(ordered), {ORDER: PHARMACY.public_key})[0].body == SupplyShip(
        PHARMACY.public_key, PACKS
    )
    with pytest.raises(EpcisError) as caught:
        import_epcis(json.dumps(ordered), PARTIES)
    assert caught.value.key == "$" and "the receiver is not known" in caught.value.reason


def received_at_the_pharmacy(epcs: list[Any] | None = None) -> dict[str, Any]:
    return event("receiving", "OBSERVE", epcs, bizLocation={"id": PHARMACY_GLN})


def test_a_document_that_ships_and_receives_makes_a_receipt_of_its_own_shipment() -> None:
    shipped = without(shipping(), "destinationList")  # as GS1's own shipping example: no destinationList
    received = document(
        commissioning(), shipped, received_at_the_pharmacy([SGTIN_2017]), received_at_the_pharmacy([LINK_2018])
    )
    txs = import_epcis(json.dumps(received), PARTIES)
    assert [(tx.tx_type, tx.shipment_from) for tx in txs] == [
        ("supply.commission", None),
        ("supply.ship", None),
        ("supply.receive", 1),
    ]
    assert txs[1].body == SupplyShip(PHARMACY.public_key, PACKS), "the receiver is where the packs are received"
    assert txs[2].body == SupplyReceive(b"", PACKS, ()) and txs[2].with_shipment(bytes(32)).body.shipment == bytes(32)


def test_a_shipment_received_only_in_part_in_the_document_has_no_known_receiver() -> None:
    partly = document(without(shipping(), "destinationList"), received_at_the_pharmacy([SGTIN_2017]))
    with pytest.raises(EpcisError) as caught:
        import_epcis(json.dumps(partly), PARTIES)
    assert caught.value.key == "$.epcisBody.eventList[0]" and "receives every pack shipped" in caught.value.reason


def test_a_document_that_ships_and_receives_runs_on_the_ledger_in_one_go() -> None:
    ledger = LedgerHarness()
    ledger.admit_organisation(MAKER, "manufacturer")
    ledger.grant_prefix(MAKER, "0614141")
    ledger.admit_organisation(PHARMACY, "pharmacy")
    story = document(
        commissioning(), shipping(), received_at_the_pharmacy(), event("dispensing", "OBSERVE", [SGTIN_2017])
    )
    tx_ids: list[bytes] = []
    for tx in import_epcis(json.dumps(story), PARTIES):  # no ledger lookup: the receipt's shipment is the document's
        signer = MAKER if tx.tx_type in ("supply.commission", "supply.ship") else PHARMACY
        tx = tx if tx.shipment_from is None else tx.with_shipment(tx_ids[tx.shipment_from])
        result = ledger.run(signer, tx.tx_type, tx.body)
        assert result.ok, result.detail
        tx_ids.append(result.tx_id)
    assert supply.verify(ledger.state, GTIN, "2017", ledger.time_ms).status == "already-dispensed"
    assert supply.pack(ledger.state, GTIN, "2018").holder == PHARMACY.public_key  # type: ignore[union-attr]


# -- events the rules do not act on, kept ---------------------------------------------------------------


def transformation() -> dict[str, Any]:
    return {
        "type": "TransformationEvent",
        "eventTime": TIME,
        "eventTimeZoneOffset": "+01:00",
        "inputEPCList": [SGTIN_2017],
        "outputEPCList": [LINK_2018, CASE_URI, "urn:epc:id:grai:0614141.12345.400"],
        "bizStep": "https://ref.gs1.org/cbv/BizStep-repackaging",
    }


@pytest.mark.parametrize(
    ("value", "kind", "step", "packs", "containers"),
    [
        (transformation(), "TransformationEvent", "repackaging", PACKS, (CASE,)),
        (
            {**shipping(), "type": "TransactionEvent", "bizTransactionList": []},
            "TransactionEvent",
            "shipping",
            PACKS,
            (),
        ),
        (
            {**packing(), "type": "AssociationEvent", "parentID": "urn:epc:id:sgln:0614141.00777.0"},
            "AssociationEvent",
            "packing",
            PACKS,
            (CASE,),
        ),
        (packing(action="OBSERVE"), "AggregationEvent", "packing", PACKS, (CASE, PALLET)),
        (event("inspecting", "OBSERVE"), "ObjectEvent", "inspecting", PACKS, ()),
        (without(event("storing", "OBSERVE"), "bizStep"), "ObjectEvent", "", PACKS, ()),
    ],
)
def test_events_the_rules_do_not_act_on_are_kept_as_records(
    value: dict[str, Any], kind: str, step: str, packs: tuple[PackRef, ...], containers: tuple[str, ...]
) -> None:
    (tx,) = import_epcis(json.dumps(document(value)), PARTIES)
    assert tx.tx_type == "supply.epcis.record"
    assert (tx.body.event_type, tx.body.biz_step, tx.body.event_time_ms) == (kind, step, TIME_MS)
    assert (set(tx.body.packs), set(tx.body.containers)) == (set(packs), set(containers))
    assert json.loads(tx.body.event_json) == value, "the event is kept whole"


def test_kept_events_are_listed_under_the_packs_their_sender_holds_or_made() -> None:
    ledger = LedgerHarness()
    ledger.admit_organisation(MAKER, "manufacturer")
    ledger.grant_prefix(MAKER, "0614141")
    ledger.admit_organisation(PHARMACY, "pharmacy")
    ledger.ok(MAKER, "supply.commission", SupplyCommission(GTIN, "L1", "2031-12-31", ("2017", "2018")))
    (inspected,) = import_epcis(json.dumps(event("inspecting", "OBSERVE")), PARTIES)
    made = ledger.run(MAKER, inspected.tx_type, inspected.body)
    noise = ledger.run(PHARMACY, inspected.tx_type, inspected.body)
    assert made.ok and noise.ok
    records, count = supply.pack_records(ledger.state, GTIN, "2017")
    assert [(record.id, record.organisation) for record in records] == [(made.tx_id, MAKER.public_key)] and count == 1
    kept = supply.epcis_record(ledger.state, noise.tx_id)
    assert kept is not None and kept.record == inspected.body, "a record names packs it is not listed under"
    assert "records EPCIS events" in ledger.refused(
        key("stranger"), inspected.tx_type, inspected.body, RejectReason.NOT_AUTHORISED
    )
    bad = replace(inspected.body, event_type="QuantityEvent")
    assert "is not one of EPCIS 2.0's" in ledger.refused(MAKER, inspected.tx_type, bad, RejectReason.INVALID)
    huge = replace(inspected.body, event_json="x" * 8193)
    assert "over 8192 bytes" in ledger.refused(MAKER, inspected.tx_type, huge, RejectReason.INVALID)


def test_a_packs_list_of_kept_events_is_bounded_and_the_rest_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from p2pmed.ledger.contracts.supply import _records

    monkeypatch.setattr(_records, "RECORDS_PER_PACK_MAX", 2)
    ledger = LedgerHarness()
    ledger.admit_organisation(MAKER, "manufacturer")
    ledger.grant_prefix(MAKER, "0614141")
    ledger.ok(MAKER, "supply.commission", SupplyCommission(GTIN, "L1", "2031-12-31", ("2017",)))
    (inspected,) = import_epcis(json.dumps(event("inspecting", "OBSERVE", [SGTIN_2017])), PARTIES)
    for _ in range(3):
        ledger.ok(MAKER, inspected.tx_type, inspected.body)
    records, count = supply.pack_records(ledger.state, GTIN, "2017")
    assert (len(records), count) == (2, 3)


def test_a_document_packs_ships_and_receives_a_pallet_in_one_go() -> None:
    """As GS1's own shipping example: the shipping event lists the SSCC, without destinationList."""
    ledger = LedgerHarness()
    ledger.admit_organisation(MAKER, "manufacturer")
    ledger.grant_prefix(MAKER, "0614141")
    ledger.admit_organisation(PHARMACY, "pharmacy")
    story = document(
        commissioning(),
        {**packing(), "childEPCs": [SGTIN_2017, LINK_2018]},
        without(shipping([PALLET_URI]), "destinationList"),
        received_at_the_pharmacy([f"https://id.gs1.org/00/{PALLET}"]),
    )
    txs = import_epcis(json.dumps(story), PARTIES)
    assert [tx.body for tx in txs[2:]] == [
        SupplyShip(PHARMACY.public_key, (), (PALLET,)),
        SupplyReceive(b"", (), (), (PALLET,)),
    ]
    tx_ids: list[bytes] = []
    for tx in txs:
        tx = tx if tx.shipment_from is None else tx.with_shipment(tx_ids[tx.shipment_from])
        result = ledger.run(PHARMACY if tx.tx_type == "supply.receive" else MAKER, tx.tx_type, tx.body)
        assert result.ok, result.detail
        tx_ids.append(result.tx_id)
    assert supply.pack(ledger.state, GTIN, "2018").holder == PHARMACY.public_key  # type: ignore[union-attr]


def test_a_container_received_is_found_in_transit_on_the_ledger() -> None:
    in_transit = {PALLET: b"\x05" * 32}
    txs = import_epcis(json.dumps(event("receiving", "OBSERVE", [PALLET_URI])), shipment_of=in_transit.get)
    assert [tx.body for tx in txs] == [SupplyReceive(b"\x05" * 32, (), (), (PALLET,))]


# -- aggregation -------------------------------------------------------------------------------------


def test_an_aggregation_event_packs_serialised_packs_and_containers_into_an_sscc() -> None:
    assert imported(document(packing())) == [
        ("supply.aggregate", SupplyAggregate(PALLET, PACKS, (CASE,))),
    ]
    link = packing(parentID=f"https://id.gs1.org/00/{PALLET}", childEPCs=[CASE_LINK])
    assert imported(link) == [("supply.aggregate", SupplyAggregate(PALLET, (), (CASE,)))]


def test_a_delete_takes_listed_children_out_or_all_of_them() -> None:
    assert imported(packing(action="DELETE", bizStep="unpacking", childEPCs=[LINK_2018])) == [
        ("supply.disaggregate", SupplyDisaggregate(PALLET, PACKS[1:], ())),
    ]
    assert imported(without(packing(action="DELETE"), "childEPCs")) == [
        ("supply.disaggregate", SupplyDisaggregate(PALLET, (), ())),
    ]


def test_a_large_aggregation_is_split_to_the_ledgers_limit() -> None:
    children = [f"urn:epc:id:sgtin:0614141.107346.{index}" for index in range(1500)]
    txs = imported(packing(childEPCs=[*children, CASE_URI]))
    assert [(len(body.packs), body.containers) for _, body in txs] == [(1000, ()), (500, (CASE,))]


def test_an_exported_aggregation_history_imports_to_the_same_transactions() -> None:
    ledger = LedgerHarness()
    ledger.admit_organisation(MAKER, "manufacturer")
    ledger.grant_prefix(MAKER, "0614141")
    ledger.ok(MAKER, "supply.commission", SupplyCommission(GTIN, "L1", "2031-12-31", ("2017", "2018", "A/B%")))
    odd = PackRef(GTIN, "A/B%")
    bodies = [
        ("supply.aggregate", SupplyAggregate(CASE, (PACKS[0], odd), ())),
        ("supply.aggregate", SupplyAggregate(PALLET, PACKS[1:], (CASE,))),
        ("supply.disaggregate", SupplyDisaggregate(PALLET, PACKS[1:], ())),
    ]
    for tx_type, body in bodies:
        ledger.ok(MAKER, tx_type, body)
    history = supply.container_history(ledger.state, PALLET)
    exported = epcis.export_aggregations(PALLET, history, ledger.time_ms)
    events = exported["epcisBody"]["eventList"]
    assert [(event["action"], event["bizStep"], event["parentID"]) for event in events] == [
        ("ADD", "packing", f"https://id.gs1.org/00/{PALLET}"),
        ("DELETE", "unpacking", f"https://id.gs1.org/00/{PALLET}"),
    ]
    assert events[0]["p2pmed:transaction"] == history[0].tx_id.hex()
    assert imported(exported) == bodies[1:]
    case = epcis.export_aggregations(CASE, supply.container_history(ledger.state, CASE), ledger.time_ms)
    assert case["epcisBody"]["eventList"][0]["childEPCs"][1] == "https://id.gs1.org/01/10614141073464/21/A%2FB%25"
    assert imported(case) == bodies[:1]


# -- malformed input ----------------------------------------------------------------------------------

EVENT_0 = "$.epcisBody.eventList[0]"
TWO_DESTINATIONS = [
    {"type": "owning_party", "destination": PHARMACY_GLN},
    {"type": "location", "destination": DISTRIBUTOR_GLN},
]
MALFORMED = [
    ("not json", "{", "$", "not JSON"),
    ("bad UTF-8", b'{"type": "\xff"}', "$", "not UTF-8 text (byte 10)"),
    ("duplicate key", '{"type": "ObjectEvent", "type": "x"}', "$", "the key 'type' appears twice"),
    ("NaN", '{"type": "ObjectEvent", "eventTime": NaN}', "$", "NaN is not a JSON number"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, "$", "nested more than 64 levels deep"),
    ("huge number", "1" * 5000, "$", "not JSON"),
    ("root not an object", [shipping()], "$", "expected a JSON object, got an array"),
    ("no body", {"type": "EPCISDocument"}, "$.epcisBody", "missing; expected an object holding the events"),
    (
        "events not an array",
        {"type": "EPCISDocument", "epcisBody": {"eventList": {}}},
        "$.epcisBody.eventList",
        "expected an array of events",
    ),
    ("event not an object", document("event"), EVENT_0, "expected a JSON object, got a string"),
    ("no type", without(shipping(), "type"), "$.type", "missing"),
    (
        "not an EPCIS event type",
        document({**shipping(), "type": "QuantityEvent"}),
        f"{EVENT_0}.type",
        "'QuantityEvent' is not an EPCIS 2.0 event type",
    ),
    (
        "kept event's EPC not a string",
        {**transformation(), "inputEPCList": [SGTIN_2017, 5]},
        "$.inputEPCList[1]",
        "expected an EPC URI, got a number",
    ),
    (
        "kept event's pack malformed",
        {**transformation(), "outputEPCList": ["urn:epc:id:sgtin:0614141.107346.a b"]},
        "$.outputEPCList[0]",
        "is not GS1 set 82",
    ),
    ("kept event's step unreadable", shipping(bizStep="in side"), "$.bizStep", "is not a CBV word or URI"),
    (
        "kept event too big",
        {**transformation(), "note": "x" * 9000},
        "$",
        "is over 8192 bytes",
    ),
    ("aggregation without parent", without(packing(), "parentID"), "$.parentID", "missing; expected an SSCC EPC URI"),
    ("parent not an SSCC", packing(parentID=SGTIN_2017), "$.parentID", "is not an SSCC EPC URI"),
    ("SSCC URI of 16 digits", packing(parentID="urn:epc:id:sscc:0614141.123456789"), "$.parentID", "make 17 digits"),
    (
        "SSCC link check digit",
        packing(parentID="https://id.gs1.org/00/106141412345678900"),
        "$.parentID",
        "wrong check digit: expected 8",
    ),
    ("no children to add", packing(childEPCs=[]), "$.childEPCs", "empty: an ADD lists"),
    ("children missing on add", without(packing(), "childEPCs"), "$.childEPCs", "missing; expected an array"),
    (
        "child quantities",
        packing(childQuantityList=[{"epcClass": "urn:epc:class:lgtin:0614141.107346.L1", "quantity": 2}]),
        "$.childQuantityList",
        "quantities are not imported",
    ),
    ("child listed twice", packing(childEPCs=[CASE_URI, CASE_LINK]), "$.childEPCs[1]", f"(00){CASE} is listed twice"),
    ("child not a string", packing(childEPCs=[7]), "$.childEPCs[0]", "got a number"),
    (
        "error declaration",
        document({**shipping(), "errorDeclaration": {}}),
        f"{EVENT_0}.errorDeclaration",
        "never rewrites its history",
    ),
    (
        "no event time",
        document(without(shipping(), "eventTime")),
        f"{EVENT_0}.eventTime",
        "missing; expected a date and time",
    ),
    (
        "event time without offset",
        shipping(eventTime="2026-03-01T09:30:00"),
        "$.eventTime",
        "is not a date and time with its offset",
    ),
    ("event time out of range", shipping(eventTime="2026-02-30T09:30:00Z"), "$.eventTime", "is not a date and time"),
    ("event time a number", shipping(eventTime=1772353800000), "$.eventTime", "got a number"),
    ("wrong action for the step", shipping(action="ADD"), "$.action", "a shipping event has action OBSERVE, not 'ADD'"),
    ("no action", without(shipping(), "action"), "$.action", "missing; expected ADD, OBSERVE or DELETE"),
    ("no EPC list", without(shipping(), "epcList"), "$.epcList", "missing; expected an array of EPCs"),
    ("empty EPC list", shipping([]), "$.epcList", "empty: list the serialised packs"),
    ("EPC not a string", shipping([17]), "$.epcList[0]", "got a number"),
    (
        "SSCC dispensed",
        event("dispensing", "OBSERVE", ["urn:epc:id:sscc:0614141.1234567890"]),
        "$.epcList[0]",
        "is not an SGTIN EPC URI",
    ),
    ("container listed twice", shipping([CASE_URI, CASE_LINK]), "$.epcList[1]", f"(00){CASE} is listed twice"),
    ("SGTIN of 12 digits", shipping(["urn:epc:id:sgtin:0614141.10734.1"]), "$.epcList[0]", "make 13 digits"),
    ("SGTIN with a 5-digit prefix", shipping(["urn:epc:id:sgtin:06141.41107346.1"]), "$.epcList[0]", "make 13 digits"),
    (
        "Digital Link check digit",
        shipping(["https://id.gs1.org/01/10614141073465/21/1"]),
        "$.epcList[0]",
        "wrong check digit: expected 4",
    ),
    ("Digital Link with a query", shipping([LINK_2018 + "?17=261231"]), "$.epcList[0]", "is not an SGTIN EPC URI"),
    ("serial with a space", shipping(["urn:epc:id:sgtin:0614141.107346.a b"]), "$.epcList[0]", "is not GS1 set 82"),
    (
        "serial outside set 82",
        shipping(["urn:epc:id:sgtin:0614141.107346.%C3%A9"]),
        "$.epcList[0]",
        "must be 1..20 characters of GS1 set 82",
    ),
    (
        "serial too long",
        shipping(["urn:epc:id:sgtin:0614141.107346." + "9" * 21]),
        "$.epcList[0]",
        "must be 1..20 characters",
    ),
    ("EPC too long", shipping(["urn:epc:id:sgtin:0614141.107346." + "9" * 300]), "$.epcList[0]", "limit 256"),
    (
        "EPC listed twice",
        shipping([SGTIN_2017, LINK_2018, "https://id.gs1.org/01/10614141073464/21/2017"]),
        "$.epcList[2]",
        "(21)2017 is listed twice",
    ),
    (
        "commissioning without ilmd",
        without(commissioning(), "ilmd"),
        "$.ilmd",
        "missing; expected instance/lot master data",
    ),
    (
        "ilmd without a lot",
        commissioning(ilmd={"cbvmda:itemExpirationDate": "2031-12-31"}),
        "$.ilmd.cbvmda:lotNumber",
        "missing",
    ),
    (
        "lot given twice",
        commissioning(ilmd={"cbvmda:lotNumber": "A", "urn:epcglobal:cbv:mda:lotNumber": "A"}),
        "$.ilmd.cbvmda:lotNumber",
        "given twice",
    ),
    (
        "bad lot",
        commissioning(ilmd={"cbvmda:lotNumber": "L 1", "cbvmda:itemExpirationDate": "2031-12-31"}),
        "$.ilmd.cbvmda:lotNumber",
        "lot 'L 1'",
    ),
    (
        "bad expiry",
        commissioning(ilmd={"cbvmda:lotNumber": "L1", "cbvmda:itemExpirationDate": "31.12.2031"}),
        "$.ilmd.cbvmda:itemExpirationDate",
        "YYYY-MM-DD",
    ),
    (
        "expiry not a string",
        commissioning(ilmd={"cbvmda:lotNumber": "L1", "cbvmda:itemExpirationDate": 20311231}),
        "$.ilmd.cbvmda:itemExpirationDate",
        "expected a string",
    ),
    ("shipping without destination", without(shipping(), "destinationList"), "$", "the receiver is not known"),
    (
        "unknown destination",
        shipping(destinationList=[{"type": "owning_party", "destination": "urn:x"}]),
        "$",
        "the receiver is not known",
    ),
    (
        "bizTransaction not an object",
        without(shipping(bizTransactionList=["urn:x"]), "destinationList"),
        "$.bizTransactionList[0]",
        "expected a JSON object",
    ),
    (
        "destination not an object",
        shipping(destinationList=["urn:x"]),
        "$.destinationList[0]",
        "expected a JSON object",
    ),
    (
        "destinations disagree",
        shipping(destinationList=TWO_DESTINATIONS),
        "$.destinationList",
        "names different organisations",
    ),
    ("receiving without a ledger", event("receiving", "OBSERVE"), "$.epcList[0]", "is not shipped earlier in the"),
    (
        "unknown disposition",
        event("decommissioning", "DELETE", disposition="sellable_accessible"),
        "$.disposition",
        "is not a reason to decommission",
    ),
]


@pytest.mark.parametrize(
    ("data", "path", "fragment"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_malformed_input_gets_an_error_naming_its_path(data: Any, path: str, fragment: str) -> None:
    raw = data if isinstance(data, (str, bytes)) else json.dumps(data)
    with pytest.raises(EpcisError) as caught:
        import_epcis(raw, PARTIES)
    assert (caught.value.key, fragment in caught.value.reason) == (path, True), caught.value.reason


def test_parties_in_destinations_may_repeat_the_same_organisation() -> None:
    same = [
        {"type": "owning_party", "destination": PHARMACY_GLN},
        {"type": "location", "destination": "urn:epc:id:sgln:0614141.00002.1"},
    ]
    parties = {**PARTIES, "urn:epc:id:sgln:0614141.00002.1": PHARMACY.public_key}
    assert [tx.body for tx in import_epcis(json.dumps(shipping(destinationList=same)), parties)] == [
        SupplyShip(PHARMACY.public_key, PACKS)
    ]


def test_a_pack_received_but_not_in_transit_is_named() -> None:
    with pytest.raises(EpcisError) as caught:
        import_epcis(json.dumps(document(event("receiving", "OBSERVE"))), shipment_of=lambda pack: None)
    assert (
        caught.value.key == f"{EVENT_0}.epcList[0]"
        and "(21)2017 is not in transit on the ledger" in caught.value.reason
    )


def test_a_pack_received_twice_in_one_document_is_refused() -> None:
    receiving = event("receiving", "OBSERVE", [SGTIN_2017])
    with pytest.raises(EpcisError) as caught:
        import_epcis(json.dumps(document(receiving, receiving)), shipment_of=lambda pack: bytes(32))
    assert caught.value.key == "$.epcisBody.eventList[1]" and "received twice" in caught.value.reason


def test_input_is_size_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(epcis, "DOCUMENT_SIZE_MAX", 100)
    with pytest.raises(EpcisError, match=r"^\$: too big: \d+ bytes, limit 100$"):
        import_epcis(json.dumps(document(shipping())).encode(), PARTIES)
    monkeypatch.setattr(epcis, "EVENTS_MAX", 1)
    monkeypatch.setattr(epcis, "DOCUMENT_SIZE_MAX", 1 << 20)
    with pytest.raises(EpcisError, match=r"^\$\.epcisBody\.eventList: 2 items, limit 1$"):
        import_epcis(json.dumps(document(shipping(), shipping())), PARTIES)
    monkeypatch.setattr(epcis, "EPCS_PER_EVENT_MAX", 1)
    with pytest.raises(EpcisError, match=r"^\$\.epcList: 2 items, limit 1$"):
        import_epcis(json.dumps(shipping()), PARTIES)


# -- fuzz: nothing but EpcisError escapes ------------------------------------------------------------------

VALID = document(
    packing(),
    {**packing(action="DELETE"), "childEPCs": [CASE_LINK]},
    commissioning(),
    shipping(),
    event("receiving", "OBSERVE"),
    event("dispensing", "DELETE", [SGTIN_2017]),
    event("destroying", "DELETE", [LINK_2018], disposition="damaged"),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=16), children, max_size=4),
    max_leaves=12,
)


def members(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every member of a JSON value, itself included."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [path, *(inner for name, child in children for inner in members(child, (*path, name)))]


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """``value`` with the member at ``path`` replaced by ``new`` (removed if ``new`` is ...)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    if rest or new is not ...:
        copy[head] = replaced(value[head], rest, new)
    else:
        del copy[head]
    return copy


def must_import_or_refuse(data: bytes | str) -> None:
    try:
        import_epcis(data, PARTIES, shipment_of=lambda pack: bytes(32))
    except EpcisError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(members(VALID)[1:]), JSON_VALUES | st.just(...))
def test_a_document_with_any_member_replaced_or_removed_imports_or_gets_an_epcis_error(
    path: tuple[Any, ...], new: Any
) -> None:
    must_import_or_refuse(json.dumps(replaced(VALID, path, new)))


@settings(max_examples=300, deadline=None)
@given(mutated(st.just(json.dumps(VALID).encode())))
def test_a_mutated_document_imports_or_gets_an_epcis_error(data: bytes) -> None:
    must_import_or_refuse(data)
