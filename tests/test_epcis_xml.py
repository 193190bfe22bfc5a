"""EPCIS 1.2 XML import: the same transactions as the JSON import, and untrusted XML refused
before it costs anything (no DTD, so no entity expansion; size, depth and encoding bounded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from health_world import GTIN, MAKER, InProcessClient
from p2pmed.cli.main import cli
from p2pmed.crypto import save_signing_key
from p2pmed.interop import epcis, epcis_xml
from p2pmed.interop.epcis import EpcisError, import_epcis
from p2pmed.interop.epcis_xml import import_epcis_xml
from test_epcis import PARTIES, PHARMACY_GLN, commissioning, document, packing, received_at_the_pharmacy, without

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
OPEN = (
    '<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:1" xmlns:cbvmda="urn:epcglobal:cbv:mda"'
    ' schemaVersion="1.2" creationDate="2026-03-01T10:00:00Z"><EPCISBody><EventList>'
)
CLOSE = "</EventList></EPCISBody></epcis:EPCISDocument>"
TIME = "<eventTime>2026-03-01T09:30:00.000+01:00</eventTime><eventTimeZoneOffset>+01:00</eventTimeZoneOffset>"
EPCS = "<epcList><epc>urn:epc:id:sgtin:0614141.107346.2017</epc><epc>https://id.gs1.org/01/10614141073464/21/2018</epc></epcList>"
READ_POINT = "<readPoint><id>urn:epc:id:sgln:0614141.00777.0</id></readPoint>"
COMMISSIONING = (
    f"<ObjectEvent>{TIME}{EPCS}<action>ADD</action><bizStep>urn:epcglobal:cbv:bizstep:commissioning</bizStep>"
    f"<disposition>urn:epcglobal:cbv:disp:active</disposition>{READ_POINT}<extension><ilmd>"
    "<cbvmda:lotNumber>LOT-42</cbvmda:lotNumber><cbvmda:itemExpirationDate>2031-12-31</cbvmda:itemExpirationDate>"
    "</ilmd></extension></ObjectEvent>"
)
SHIPPING = (
    f"<ObjectEvent>{TIME}{EPCS}<action>OBSERVE</action><bizStep>urn:epcglobal:cbv:bizstep:shipping</bizStep>"
    f'{READ_POINT}<bizTransactionList><bizTransaction type="urn:epcglobal:cbv:btt:po">urn:x:po:1</bizTransaction>'
    "</bizTransactionList></ObjectEvent>"
)
RECEIVING = (
    f"<ObjectEvent>{TIME}{EPCS}<action>OBSERVE</action><bizStep>receiving</bizStep>"
    f"<bizLocation><id>{PHARMACY_GLN}</id></bizLocation></ObjectEvent>"
)
PACKING = (
    f"<AggregationEvent>{TIME}<parentID>urn:epc:id:sscc:0614141.0000000001</parentID><childEPCs>"
    "<epc>urn:epc:id:sgtin:0614141.107346.2017</epc><epc>https://id.gs1.org/01/10614141073464/21/2018</epc>"
    "<epc>urn:epc:id:sscc:0614141.1234567890</epc></childEPCs><action>ADD</action><bizStep>packing</bizStep>"
    "</AggregationEvent>"
)
TRANSFORMING = (
    f"<extension><TransformationEvent>{TIME}<inputEPCList><epc>urn:epc:id:sgtin:0614141.107346.2017</epc>"
    "</inputEPCList><outputEPCList><epc>urn:epc:id:sgtin:0614141.107346.9</epc></outputEPCList>"
    "<bizStep>repackaging</bizStep></TransformationEvent></extension>"
)


def xml(*events: str) -> bytes:
    return (HEAD + OPEN + "".join(events) + CLOSE).encode()


def bodies(txs: list[epcis.SupplyTx]) -> list[tuple[str, object, int | None]]:
    return [(tx.tx_type, tx.body, tx.shipment_from) for tx in txs]


def test_an_xml_document_imports_to_the_transactions_of_its_json_twin() -> None:
    ordered = {**without(commissioning(), "readPoint")}
    twin = document(
        ordered,
        {
            **without(commissioning(), "ilmd"),
            "action": "OBSERVE",
            "bizStep": "shipping",
            "bizTransactionList": [{"type": "po", "bizTransaction": "urn:x:po:1"}],
        },
        received_at_the_pharmacy(),
        packing(),
    )
    from_json = import_epcis(json.dumps(twin), PARTIES)
    from_xml = import_epcis_xml(xml(COMMISSIONING, SHIPPING, RECEIVING, PACKING), PARTIES)
    assert [tx.tx_type for tx in from_xml] == ["supply.commission", "supply.ship", "supply.receive", "supply.aggregate"]
    assert bodies(from_xml) == bodies(from_json)
    assert from_xml[1].body.destination == PARTIES[PHARMACY_GLN], "the receiver from the receiving event's location"
    assert [tx.event for tx in from_xml][:2] == ["EventList/ObjectEvent[0]", "EventList/ObjectEvent[1]"]


def test_an_event_in_an_extension_is_kept_with_its_user_fields() -> None:
    extended = TRANSFORMING.replace(
        "</TransformationEvent>", '<x:note xmlns:x="urn:x">ok</x:note></TransformationEvent>'
    )
    (tx,) = import_epcis_xml(xml(extended))
    assert (tx.tx_type, tx.body.event_type, tx.body.biz_step) == (
        "supply.epcis.record",
        "TransformationEvent",
        "repackaging",
    )
    assert json.loads(tx.body.event_json)["{urn:x}note"] == "ok"
    assert len(tx.body.packs) == 2


def test_a_query_document_is_read_too() -> None:
    query = (
        HEAD + '<epcisq:EPCISQueryDocument xmlns:epcisq="urn:epcglobal:epcis-query:xsd:1"'
        ' xmlns:cbvmda="urn:epcglobal:cbv:mda"><EPCISBody>'
        "<epcisq:QueryResults><queryName>SimpleEventQuery</queryName><resultsBody><EventList>"
        + COMMISSIONING
        + "</EventList></resultsBody></epcisq:QueryResults></EPCISBody></epcisq:EPCISQueryDocument>"
    )
    assert [tx.tx_type for tx in import_epcis_xml(query.encode())] == ["supply.commission"]


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>'
    '<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:1"><EPCISBody><EventList/></EPCISBody>'
    "<x>&lol2;</x></epcis:EPCISDocument>"
)
EXTERNAL = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        (BILLION_LAUGHS.encode(), "/", "a document type declaration is refused"),
        (EXTERNAL.encode(), "/", "a document type declaration is refused"),
        (b"<x>&undeclared;</x>", "/", "not well-formed XML"),
        (b"<x><y></x>", "/", "not well-formed XML"),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?><x/>', "/", "only UTF-8 is read"),
        (b"<x>\xff</x>", "/", "not UTF-8"),
        (b"<x/>", "/", "expected an epcis:EPCISDocument"),
        (xml("<QuantityEvent/>"), "EventList/QuantityEvent[0]", "is not an EPCIS event"),
        (
            xml(
                COMMISSIONING.replace(
                    "</ObjectEvent>", "<baseExtension><errorDeclaration/></baseExtension></ObjectEvent>"
                )
            ),
            "EventList/ObjectEvent[0].errorDeclaration",
            "never rewrites its history",
        ),
        (xml(COMMISSIONING.replace("2017", "20 17")), "EventList/ObjectEvent[0].epcList[0]", "GS1 set 82"),
        (
            xml(f"<ObjectEvent>{'<a>' * 70}{'</a>' * 70}</ObjectEvent>"),
            "EventList/ObjectEvent[0]",
            "nest deeper than 64",
        ),
    ],
)
def test_bad_xml_is_refused_naming_where(data: bytes, path: str, fragment: str) -> None:
    with pytest.raises(EpcisError) as caught:
        import_epcis_xml(data)
    assert caught.value.key.startswith(path) and fragment in caught.value.reason, (
        caught.value.key,
        caught.value.reason,
    )


def test_the_size_is_checked_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(epcis_xml, "DOCUMENT_SIZE_MAX", 100)
    with pytest.raises(EpcisError) as caught:
        import_epcis_xml(xml(COMMISSIONING))
    assert "too big" in caught.value.reason


def test_the_cli_imports_an_xml_file(client: InProcessClient, home: Path, directory: Path) -> None:
    maker = directory / "maker.pem"
    save_signing_key(maker, MAKER)
    events = COMMISSIONING.replace("0614141.107346", "9501101.015300").replace(
        "https://id.gs1.org/01/10614141073464", f"https://id.gs1.org/01/{GTIN}"
    )
    path = directory / "events.xml"
    path.write_bytes(xml(events.replace("LOT-42", "LOT9")))
    result = CliRunner().invoke(cli, ["supply", "import-epcis", "--home", str(home), str(path), "--key", str(maker)])
    assert result.exit_code == 0, result.output
    trace = json.loads(CliRunner().invoke(cli, ["supply", "trace", "--home", str(home), GTIN, "2018", "--json"]).output)
    assert trace["pack"]["lot"] == "LOT9"
