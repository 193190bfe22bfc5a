"""EPCIS 2.0 JSON import: GS1 supply-chain events as p2pmed supply transactions.

The input is an ``EPCISDocument`` (events in ``epcisBody.eventList``), an
``EPCISQueryDocument`` (``epcisBody.queryResults.resultsBody.eventList``) or a
single event, in the JSON / JSON-LD binding of EPCIS 2.0. It is untrusted: at
most ``DOCUMENT_SIZE_MAX`` bytes, ``EVENTS_MAX`` events, ``EPCS_PER_EVENT_MAX``
EPCs an event; every field the import reads is checked, and the first bad one
raises ``EpcisError`` naming its JSON path (``$.epcisBody.eventList[2].epcList[0]``)
and what was expected. Fields the ledger has no use for are ignored.

The rules act on ``ObjectEvent``s of the business steps below, which list serialised
packs (shipping and receiving events also whole containers, by SSCC, as GS1's own shipping
example does), and on ``AggregationEvent``s that add or delete (``supply.aggregate`` and
``supply.disaggregate``). Every other event of the five EPCIS 2.0 types (an ObjectEvent
of another step or none, an AggregationEvent that observes, a TransactionEvent, a
TransformationEvent, an AssociationEvent) is kept whole as a ``supply.epcis.record``,
listing the packs and containers it names anywhere. The acted-on events' ``epcList`` holds
SGTIN EPC URIs (``urn:epc:id:sgtin:<company prefix>.<indicator + item ref>.<serial>``,
whose GTIN-14 gets its check digit computed) or GS1 Digital Link URIs
(``https://id.gs1.org/01/<gtin>/21/<serial>``, any host). ``bizStep`` may be
bare (``shipping``), a CBV URN or a CBV web URI; it and ``action`` choose the
transaction (``_STEPS``):

    bizStep                        action             transaction
    commissioning                  ADD                supply.commission, lot and expiry from ilmd
                                                      cbvmda:lotNumber and cbvmda:itemExpirationDate
    shipping                       OBSERVE            supply.ship to the receiver (below)
    receiving                      OBSERVE            supply.receive of the document's own shipment of
                                                      the packs, else of the one they are in transit
                                                      in on the ledger, found by ``shipment_of``
    dispensing                     OBSERVE or DELETE  supply.dispense
    decommissioning, destroying    DELETE             supply.decommission, reason from disposition

``destinationList`` is optional in EPCIS (GS1's own shipping example has none), so the
receiver is the organisation ``parties`` maps (id -> organisation id) a destination's party
or location to; else the one a ``bizTransactionList`` entry (the order, the despatch advice)
is mapped to; else whoever receives every shipped pack later in the same document, by the
receiving event's ``bizLocation`` (or ``readPoint``). None known is an error at the event.
A document may ship packs and receive them: the receipt's shipment id is the ``supply.ship``
transaction's id, known only once it is signed, so the receipt comes back with
``shipment_from`` naming that transaction (``SupplyTx.with_shipment`` fills it in).

The temperatures of a shipping or receiving event's ``sensorElementList`` (each Temperature
report's value, minValue and maxValue, in CEL, FAH or KEL, at most ``SENSOR_READINGS_MAX``)
become a ``supply.sensor.report`` of its shipment, after the shipment or receipt; other
sensors are skipped.

An event becomes as many transactions as the ledger's limits need: one commission
per GTIN and 1000 serials, one shipment per 1000 packs. A shipment is received
once, so the receiving events of a document that reach one shipment become one
receipt. EPCIS has no way to say a pack did not arrive, so imported receipts list
no missing packs. Error declarations (corrections of earlier events) are refused,
neither acted on nor kept: the ledger never rewrites its history, and a kept declaration
would read as a correction that never happened. Event times are checked and returned, but
the ledger times a transaction by its block.
"""

from __future__ import annotations

import datetime
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from p2pmed import strict_json
from p2pmed.input_error import KeyedInputError
from p2pmed.ledger.contracts.supply import (
    EVENT_JSON_SIZE_MAX,
    EVENT_TYPES,
    PACKS_PER_TX_MAX,
    TEMPERATURE_CENTI_C_MAX,
    TEMPERATURE_CENTI_C_MIN,
    ContainerEvent,
    EpcisRecord,
    PackRef,
    SensorReading,
    SensorReport,
    SupplyAggregate,
    SupplyCommission,
    SupplyDecommission,
    SupplyDisaggregate,
    SupplyDispense,
    SupplyReceive,
    SupplyShip,
    biz_step_problem,
    code_problem,
    expiry_problem,
    gs1_check_digit,
    gtin_problem,
    sscc_problem,
)

__all__ = [
    "DEPTH_MAX",
    "DOCUMENT_SIZE_MAX",
    "EPCIS_CONTEXT",
    "EPCS_PER_EVENT_MAX",
    "EVENTS_MAX",
    "P2PMED_NAMESPACE",
    "EpcisError",
    "ShipmentLookup",
    "SupplyTx",
    "epc_time",
    "export_aggregations",
    "import_epcis",
    "import_events",
    "organisation_uri",
    "pack_uri",
    "parse_epc",
    "parse_sscc",
    "sscc_uri",
]

DOCUMENT_SIZE_MAX = 8 << 20
DEPTH_MAX = 64
EVENTS_MAX = 10_000
EPCS_PER_EVENT_MAX = 10_000
EPC_LENGTH_MAX = 256
DESTINATIONS_MAX = 16

ShipmentLookup = Callable[[PackRef | str], bytes | None]
"""The id of the shipment a pack (or a container, by SSCC) is in transit in on the ledger, if any."""


class EpcisError(KeyedInputError):
    """A document the import refuses; ``key`` is the JSON path of the bad value."""


@dataclass(frozen=True)
class SupplyTx:
    """A transaction body to sign, and the event it came from."""

    tx_type: str
    body: Any
    event: str
    """The event's JSON path."""
    event_time_ms: int
    shipment_from: int | None = None
    """For a receipt (or a sensor report) of a shipment shipped in the same document, the index
    (in the import's list) of that ``supply.ship``: its transaction id, known once it is signed,
    is the shipment id to put in ``body`` (``with_shipment``), which holds an empty one until then."""

    def with_shipment(self, shipment: bytes) -> SupplyTx:
        assert self.shipment_from is not None and isinstance(self.body, SupplyReceive | SensorReport)
        return replace(self, body=replace(self.body, shipment=shipment), shipment_from=None)


@dataclass(frozen=True)
class _Lookups:
    parties: Mapping[str, bytes]
    shipment_of: ShipmentLookup | None
    receivers: Mapping[PackRef | str, bytes]
    """Who receives each pack in a receiving event of the document, by its bizLocation or readPoint."""
    shipped: dict[PackRef | str, int]
    """The import's ``supply.ship`` each pack shipped earlier in the document is in, not yet received."""


@dataclass(frozen=True)
class _InDocument:
    """A body naming the document's own shipment ``ship_index`` (see ``SupplyTx.shipment_from``);
    ``_PREVIOUS``: the shipment made just before it."""

    ship_index: int
    body: SupplyReceive | SensorReport


_PREVIOUS = -1


_Bodies = list[tuple[str, Any]]
_Items = tuple[PackRef | str, ...]
"""The serialised packs an ObjectEvent lists, and for shipping and receiving its containers (SSCCs)."""
_Builder = Callable[[dict[str, Any], str, _Items, _Lookups], _Bodies]


def _packs(items: _Items) -> tuple[PackRef, ...]:
    packs = tuple(item for item in items if isinstance(item, PackRef))
    assert len(packs) == len(items), "only shipping and receiving events list containers"
    return packs


def _split(items: _Items) -> tuple[tuple[PackRef, ...], tuple[str, ...]]:
    return tuple(item for item in items if isinstance(item, PackRef)), tuple(
        item for item in items if isinstance(item, str)
    )


# -- reading JSON -------------------------------------------------------------------


def _load(data: bytes | str) -> Any:
    if len(data) > DOCUMENT_SIZE_MAX:
        unit = "characters" if isinstance(data, str) else "bytes"
        raise EpcisError("$", f"too big: {len(data)} {unit}, limit {DOCUMENT_SIZE_MAX}")
    try:
        return strict_json.loads(data, DEPTH_MAX)
    except strict_json.JsonProblem as problem:
        raise EpcisError("$", str(problem)) from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EpcisError(path, f"expected a JSON object, got {_kind(value)}")
    return value


def _field(obj: dict[str, Any], name: str, path: str, expected: str) -> Any:
    if name not in obj:
        raise EpcisError(f"{path}.{name}", f"missing; expected {expected}")
    return obj[name]


def _text(obj: dict[str, Any], name: str, path: str, expected: str) -> str:
    value = _field(obj, name, path, expected)
    if not isinstance(value, str):
        raise EpcisError(f"{path}.{name}", f"expected {expected}, got {_kind(value)}")
    return value


def _array(obj: dict[str, Any], name: str, path: str, expected: str, size_max: int) -> list[Any]:
    value = _field(obj, name, path, expected)
    if not isinstance(value, list):
        raise EpcisError(f"{path}.{name}", f"expected {expected}, got {_kind(value)}")
    if len(value) > size_max:
        raise EpcisError(f"{path}.{name}", f"{len(value)} items, limit {size_max}")
    return value


def _events(root: Any) -> list[tuple[Any, str]]:
    """The events to import, each with its JSON path."""
    document = _object(root, "$")
    kind = _text(document, "type", "$", "EPCISDocument, EPCISQueryDocument or an event type")
    if kind not in ("EPCISDocument", "EPCISQueryDocument"):
        return [(document, "$")]
    path = "$.epcisBody"
    body = _object(_field(document, "epcisBody", "$", "an object holding the events"), path)
    if kind == "EPCISQueryDocument":
        for name in ("queryResults", "resultsBody"):
            body = _object(_field(body, name, path, "an object holding the events"), f"{path}.{name}")
            path = f"{path}.{name}"
    events = _array(body, "eventList", path, "an array of events", EVENTS_MAX)
    return [(event, f"{path}.eventList[{index}]") for index, event in enumerate(events)]


# -- identifiers and values ------------------------------------------------------------------

_SGTIN = re.compile(r"urn:epc:id:sgtin:([0-9]+)\.([0-9]+)\.(.*)", re.DOTALL)
_DIGITAL_LINK = re.compile(
    r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?(?:/[^/?#]+)*?/01/([0-9]{8}|[0-9]{12,14})(?:/22/[^/?#]+)?(?:/10/[^/?#]+)?/21/([^/?#]+)"
)
# Characters of GS1 set 82 that a URI carries as they are; the rest come %-escaped.
_URI_SERIAL = re.compile(r"(?:[A-Za-z0-9!&'()*+,\-.:;=_]|%[0-9A-Fa-f]{2})+")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_EPC_FORMS = "an SGTIN EPC URI (urn:epc:id:sgtin:0614141.107346.2017) or a GS1 Digital Link URI (https://id.gs1.org/01/10614141073464/21/2017)"


def _serial(encoded: str, path: str) -> str:
    if not _URI_SERIAL.fullmatch(encoded):
        raise EpcisError(path, f'serial {encoded[:40]!r} is not GS1 set 82 with " % & / < > ? %-escaped')
    serial = _PERCENT.sub(lambda match: chr(int(match[1], 16)), encoded)
    problem = code_problem(serial, "serial")
    if problem is not None:
        raise EpcisError(path, problem)
    return serial


def _sgtin(match: re.Match[str], path: str) -> PackRef:
    prefix, item, serial = match.groups()
    if not 6 <= len(prefix) <= 12 or len(prefix) + len(item) != 13:
        raise EpcisError(path, "an SGTIN's company prefix (6..12 digits) and indicator + item reference make 13 digits")
    gtin = item[0] + prefix + item[1:]
    return PackRef(gtin + gs1_check_digit(gtin), _serial(serial, path))


def _digital_link(match: re.Match[str], path: str) -> PackRef:
    gtin = match[1].rjust(14, "0")
    problem = gtin_problem(gtin)
    if problem is not None:
        raise EpcisError(path, problem)
    return PackRef(gtin, _serial(match[2], path))


def parse_epc(uri: str, path: str = "$") -> PackRef:
    """The pack an SGTIN EPC URI or a GS1 Digital Link URI names."""
    if len(uri) > EPC_LENGTH_MAX:
        raise EpcisError(path, f"an EPC of {len(uri)} characters, limit {EPC_LENGTH_MAX}")
    match = _SGTIN.fullmatch(uri)
    if match:
        return _sgtin(match, path)
    match = _DIGITAL_LINK.fullmatch(uri)
    if match:
        return _digital_link(match, path)
    raise EpcisError(path, f"{uri[:60]!r} is not {_EPC_FORMS}")


_SSCC_URN = re.compile(r"urn:epc:id:sscc:([0-9]+)\.([0-9]+)")
_SSCC_LINK = re.compile(r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?(?:/[^/?#]+)*?/00/([0-9]{18})")
_SSCC_FORMS = "an SSCC EPC URI (urn:epc:id:sscc:0614141.1234567890) or a GS1 Digital Link URI (https://id.gs1.org/00/106141412345678908)"


def parse_sscc(uri: str, path: str = "$") -> str | None:
    """The SSCC-18 an SSCC EPC URI or GS1 Digital Link URI names; None if ``uri`` is neither form."""
    if len(uri) > EPC_LENGTH_MAX:
        raise EpcisError(path, f"an EPC of {len(uri)} characters, limit {EPC_LENGTH_MAX}")
    match = _SSCC_URN.fullmatch(uri)
    if match:
        prefix, reference = match.groups()
        if not 6 <= len(prefix) <= 12 or len(prefix) + len(reference) != 17:
            raise EpcisError(path, "an SSCC's company prefix (6..12 digits) and serial reference make 17 digits")
        digits = reference[0] + prefix + reference[1:]
        return digits + gs1_check_digit(digits)
    match = _SSCC_LINK.fullmatch(uri)
    if match:
        problem = sscc_problem(match[1])
        if problem is not None:
            raise EpcisError(path, problem)
        return match[1]
    return None


def _child_epcs(event: dict[str, Any], path: str, required: bool) -> tuple[tuple[PackRef, ...], tuple[str, ...]]:
    """The packs and containers an AggregationEvent's childEPCs name, each once."""
    if "childQuantityList" in event:
        raise EpcisError(f"{path}.childQuantityList", "quantities are not imported: list serialised children")
    if "childEPCs" not in event and not required:
        return (), ()
    children = _array(
        event, "childEPCs", path, f"an array of EPCs, each {_EPC_FORMS} or {_SSCC_FORMS}", EPCS_PER_EVENT_MAX
    )
    if not children and required:
        raise EpcisError(f"{path}.childEPCs", "empty: an ADD lists the packs and containers it packs")
    packs: dict[PackRef, None] = {}
    containers: dict[str, None] = {}
    for index, child in enumerate(children):
        where = f"{path}.childEPCs[{index}]"
        if not isinstance(child, str):
            raise EpcisError(where, f"expected {_EPC_FORMS} or {_SSCC_FORMS}, got {_kind(child)}")
        sscc = parse_sscc(child, where)
        if sscc is None:
            pack = parse_epc(child, where)
            if pack in packs:
                raise EpcisError(where, f"(01){pack.gtin}(21){pack.serial} is listed twice")
            packs[pack] = None
        elif sscc in containers:
            raise EpcisError(where, f"(00){sscc} is listed twice")
        else:
            containers[sscc] = None
    return tuple(packs), tuple(containers)


def _epc_list(event: dict[str, Any], path: str, containers_ok: bool = False) -> _Items:
    """The packs an ObjectEvent lists, each once; with ``containers_ok``, its containers (SSCCs) too."""
    epcs = _array(event, "epcList", path, f"an array of EPCs, each {_EPC_FORMS}", EPCS_PER_EVENT_MAX)
    if not epcs:
        raise EpcisError(f"{path}.epcList", "empty: list the serialised packs (quantityList classes are not imported)")
    items: dict[PackRef | str, None] = {}
    for index, epc in enumerate(epcs):
        where = f"{path}.epcList[{index}]"
        if not isinstance(epc, str):
            raise EpcisError(where, f"expected {_EPC_FORMS}, got {_kind(epc)}")
        item: PackRef | str | None = parse_sscc(epc, where) if containers_ok else None
        item = item or parse_epc(epc, where)
        if item in items:
            name = f"(00){item}" if isinstance(item, str) else f"(01){item.gtin}(21){item.serial}"
            raise EpcisError(where, f"{name} is listed twice")
        items[item] = None
    return tuple(items)


def _event_time_ms(event: dict[str, Any], path: str, name: str = "eventTime") -> int:
    expected = "a date and time with its offset, as 2026-03-01T09:30:00.000+01:00"
    text = _text(event, name, path, expected)
    try:
        if not _DATE_TIME.fullmatch(text):
            raise ValueError
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise EpcisError(f"{path}.{name}", f"{text[:60]!r} is not {expected}") from None
    return (moment - _EPOCH) // datetime.timedelta(milliseconds=1)


def _vocabulary(value: str, prefixes: tuple[str, ...]) -> str:
    """A CBV value without its URN or web URI prefix."""
    for prefix in prefixes:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


# -- one builder per business step ------------------------------------------------------------


def _chunks(items: list[Any] | tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return [tuple(items[start : start + PACKS_PER_TX_MAX]) for start in range(0, len(items), PACKS_PER_TX_MAX)]


def _master_data(ilmd: dict[str, Any], name: str, path: str, check: Callable[[str], str | None]) -> str:
    names = [key for key in (f"cbvmda:{name}", f"urn:epcglobal:cbv:mda:{name}") if key in ilmd]
    if len(names) != 1:
        reason = (
            "missing; a commissioning event gives the lot and the expiry"
            if not names
            else "given twice, prefixed and in full"
        )
        raise EpcisError(f"{path}.cbvmda:{name}", reason)
    value = _text(ilmd, names[0], path, "a string")
    problem = check(value)
    if problem is not None:
        raise EpcisError(f"{path}.{names[0]}", problem)
    return value


def _commission(event: dict[str, Any], path: str, items: _Items, _lookups: _Lookups) -> _Bodies:
    packs = _packs(items)
    ilmd_path = f"{path}.ilmd"
    ilmd = _object(_field(event, "ilmd", path, "instance/lot master data with the lot and the expiry"), ilmd_path)
    lot = _master_data(ilmd, "lotNumber", ilmd_path, lambda value: code_problem(value, "lot"))
    expiry = _master_data(ilmd, "itemExpirationDate", ilmd_path, expiry_problem)
    serials: dict[str, list[str]] = {}
    for pack in packs:
        serials.setdefault(pack.gtin, []).append(pack.serial)
    return [
        ("supply.commission", SupplyCommission(gtin, lot, expiry, chunk))
        for gtin, listed in serials.items()
        for chunk in _chunks(listed)
    ]


def organisation_uri(organisation: bytes) -> str:
    """The URI p2pmed's own EPCIS export names an organisation by."""
    return f"urn:p2pmed:org:{organisation.hex()}"


_ORGANISATION = re.compile(r"urn:p2pmed:org:([0-9a-f]{64})")


def _party(uri: str, parties: Mapping[str, bytes]) -> bytes | None:
    """The organisation an id names: through ``parties``, or itself an ``organisation_uri``."""
    match = _ORGANISATION.fullmatch(uri)
    return parties.get(uri) or (bytes.fromhex(match[1]) if match else None)


def _named_parties(
    event: dict[str, Any], path: str, name: str, field: str, parties: Mapping[str, bytes]
) -> list[bytes]:
    """The organisations the ids in the event's list ``name`` (each an object's ``field``) map to, each once."""
    if name not in event:
        return []
    entries = _array(event, name, path, f"an array of objects with {field}", DESTINATIONS_MAX)
    keys: list[bytes] = []
    for index, entry in enumerate(entries):
        where = f"{path}.{name}[{index}]"
        key = _party(_text(_object(entry, where), field, where, "an id (a URI)"), parties)
        if key is not None and key not in keys:
            keys.append(key)
    if len(keys) > 1:
        raise EpcisError(f"{path}.{name}", "names different organisations: a shipment has one receiver")
    return keys


def _destination(event: dict[str, Any], path: str, packs: _Items, lookups: _Lookups) -> bytes:
    """The receiver: the destinationList's party or location, else the party a bizTransaction (an order, a
    despatch advice) is mapped to, else whoever receives the packs later in the document, by its location."""
    for name, field in (("destinationList", "destination"), ("bizTransactionList", "bizTransaction")):
        keys = _named_parties(event, path, name, field, lookups.parties)
        if keys:
            return keys[0]
    receivers = {lookups.receivers[pack] for pack in packs if pack in lookups.receivers}
    if len(receivers) == 1 and all(pack in lookups.receivers for pack in packs):
        return receivers.pop()
    raise EpcisError(
        path,
        "the receiver is not known: no destinationList entry or bizTransaction maps to an organisation in parties,"
        " and no receiving event in this document, at a location mapped in parties, receives every pack shipped",
    )


def _ship(event: dict[str, Any], path: str, items: _Items, lookups: _Lookups) -> _Bodies:
    destination = _destination(event, path, items, lookups)
    return [("supply.ship", SupplyShip(destination, *_split(chunk))) for chunk in _chunks(items)]


def _receive(event: dict[str, Any], path: str, items: _Items, lookups: _Lookups) -> _Bodies:
    """A receiving event names no shipment: each pack's (or container's) is the document's own shipment of
    it, if an earlier event shipped it, else the one it is in transit in on the ledger (``shipment_of``)."""
    shipments: dict[bytes | int, list[PackRef | str]] = {}
    for index, item in enumerate(items):
        shipment: bytes | int | None = lookups.shipped.pop(item, None)
        if shipment is None and lookups.shipment_of is not None:
            shipment = lookups.shipment_of(item)
        if shipment is None:
            where = "in transit on the ledger" if lookups.shipment_of is not None else "shipped earlier in the document"
            name = f"(00){item}" if isinstance(item, str) else f"(01){item.gtin}(21){item.serial}"
            raise EpcisError(f"{path}.epcList[{index}]", f"{name} is not {where}")
        shipments.setdefault(shipment, []).append(item)
    bodies: _Bodies = []
    for shipment, arrived in shipments.items():
        packs, containers = _split(tuple(arrived))
        if isinstance(shipment, int):
            bodies.append(("supply.receive", _InDocument(shipment, SupplyReceive(b"", packs, (), containers))))
        else:
            bodies.append(("supply.receive", SupplyReceive(shipment, packs, (), containers)))
    return bodies


SENSOR_READINGS_MAX = 256
_TEMPERATURE_TYPES = ("Temperature", "gs1:Temperature", "https://gs1.org/voc/Temperature")
_TO_CENTI_CELSIUS: dict[str, Callable[[float], float]] = {
    "CEL": lambda value: value * 100,
    "FAH": lambda value: (value - 32) * 500 / 9,
    "KEL": lambda value: (value - 273.15) * 100,
}


def _number(report: dict[str, Any], name: str, path: str) -> float | None:
    value = report.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EpcisError(f"{path}.{name}", f"expected a number, got {_kind(value)}")
    return float(value)


def _report_readings(report: dict[str, Any], path: str, time_ms: int) -> list[SensorReading]:
    unit = _text(report, "uom", path, "CEL, FAH or KEL")
    if unit not in _TO_CENTI_CELSIUS:
        raise EpcisError(f"{path}.uom", f"{unit[:20]!r} is not a temperature unit: CEL, FAH or KEL")
    if "time" in report:
        time_ms = _event_time_ms(report, path, "time")
    readings = []
    for name in ("value", "minValue", "maxValue"):
        value = _number(report, name, path)
        if value is not None:
            centi_c = round(_TO_CENTI_CELSIUS[unit](value))
            if not TEMPERATURE_CENTI_C_MIN <= centi_c <= TEMPERATURE_CENTI_C_MAX:
                raise EpcisError(f"{path}.{name}", f"{value} {unit} is not a temperature")
            readings.append(SensorReading(time_ms, centi_c))
    return readings


def _temperatures(event: dict[str, Any], path: str, time_ms: int) -> tuple[SensorReading, ...]:
    """The temperature readings of an event's sensorElementList (value, minValue and maxValue of each
    Temperature report, at the report's time, else its element's, else the event's); other sensors skipped."""
    readings: list[SensorReading] = []
    elements = _array(event, "sensorElementList", path, "an array of sensor elements", DESTINATIONS_MAX)
    for index, value in enumerate(elements):
        where = f"{path}.sensorElementList[{index}]"
        element = _object(value, where)
        element_ms = time_ms
        if "sensorMetadata" in element:
            metadata = _object(element["sensorMetadata"], f"{where}.sensorMetadata")
            if "time" in metadata:
                element_ms = _event_time_ms(metadata, f"{where}.sensorMetadata", "time")
        reports = _array(element, "sensorReport", where, "an array of sensor reports", SENSOR_READINGS_MAX)
        for number, report_value in enumerate(reports):
            report_path = f"{where}.sensorReport[{number}]"
            report = _object(report_value, report_path)
            if report.get("type") in _TEMPERATURE_TYPES:
                readings += _report_readings(report, report_path, element_ms)
    if len(readings) > SENSOR_READINGS_MAX:
        raise EpcisError(
            f"{path}.sensorElementList", f"{len(readings)} temperature readings, limit {SENSOR_READINGS_MAX}"
        )
    return tuple(readings)


def _with_reports(bodies: _Bodies, readings: tuple[SensorReading, ...]) -> _Bodies:
    """Each shipment or receipt followed by a sensor report of its shipment, if there are readings."""
    if not readings:
        return bodies
    reported: _Bodies = []
    for tx_type, body in bodies:
        reported.append((tx_type, body))
        if isinstance(body, SupplyShip):
            reported.append(("supply.sensor.report", _InDocument(_PREVIOUS, SensorReport(b"", readings))))
        elif isinstance(body, _InDocument):
            reported.append(("supply.sensor.report", _InDocument(body.ship_index, SensorReport(b"", readings))))
        else:
            reported.append(("supply.sensor.report", SensorReport(body.shipment, readings)))
    return reported


def _dispense(_event: dict[str, Any], _path: str, items: _Items, _lookups: _Lookups) -> _Bodies:
    return [("supply.dispense", SupplyDispense(chunk)) for chunk in _chunks(_packs(items))]


_DISPOSITION_PREFIXES = ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-")
_DECOMMISSION_REASONS = {
    "damaged": "damaged",
    "destroyed": "destroyed",
    "disposed": "destroyed",
    "expired": "expired",
    "inactive": "other",
    "non_sellable_other": "other",
    "stolen": "stolen",
    "unknown": "lost",
}


def _decommission(default_reason: str) -> _Builder:
    """Decommission for the reason the disposition gives, else ``default_reason``."""

    def build(event: dict[str, Any], path: str, items: _Items, _lookups: _Lookups) -> _Bodies:
        packs = _packs(items)
        reason = default_reason
        if "disposition" in event:
            disposition = _text(event, "disposition", path, "a CBV disposition")
            reason = _DECOMMISSION_REASONS.get(_vocabulary(disposition, _DISPOSITION_PREFIXES), "")
            if not reason:
                known = ", ".join(sorted(_DECOMMISSION_REASONS))
                raise EpcisError(
                    f"{path}.disposition", f"{disposition[:60]!r} is not a reason to decommission; known: {known}"
                )
        return [("supply.decommission", SupplyDecommission(chunk, reason)) for chunk in _chunks(packs)]

    return build


_BIZ_STEP_PREFIXES = ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-")
_STEPS: dict[str, tuple[tuple[str, ...], _Builder]] = {
    "commissioning": (("ADD",), _commission),
    "shipping": (("OBSERVE",), _ship),
    "receiving": (("OBSERVE",), _receive),
    "dispensing": (("OBSERVE", "DELETE"), _dispense),
    "decommissioning": (("DELETE",), _decommission("other")),
    "destroying": (("DELETE",), _decommission("destroyed")),
}


# -- events --------------------------------------------------------------------------------------


def _builder(event: dict[str, Any], path: str) -> _Builder:
    """The builder for the event's business step, once its action fits the step."""
    raw = _text(event, "bizStep", path, "a CBV business step, as shipping")
    step = _vocabulary(raw, _BIZ_STEP_PREFIXES)
    if step not in _STEPS:
        raise EpcisError(f"{path}.bizStep", f"{raw[:60]!r} is not imported; imported: {', '.join(_STEPS)}")
    actions, builder = _STEPS[step]
    action = _text(event, "action", path, "ADD, OBSERVE or DELETE")
    if action not in actions:
        raise EpcisError(f"{path}.action", f"a {step} event has action {' or '.join(actions)}, not {action[:20]!r}")
    return builder


def _aggregation(event: dict[str, Any], path: str) -> _Bodies:
    """ADD packs children into parentID (supply.aggregate), DELETE takes them out (supply.disaggregate; no
    children: all of them), in chunks of the ledger's limit."""
    action = _text(event, "action", path, "ADD or DELETE")
    if action not in ("ADD", "DELETE"):
        raise EpcisError(
            f"{path}.action",
            f"an AggregationEvent is imported with action ADD or DELETE, not {action[:20]!r}: an OBSERVE changes"
            " nothing",
        )
    parent_uri = _text(event, "parentID", path, _SSCC_FORMS)
    parent = parse_sscc(parent_uri, f"{path}.parentID")
    if parent is None:
        raise EpcisError(f"{path}.parentID", f"{parent_uri[:60]!r} is not {_SSCC_FORMS}")
    packs, containers = _child_epcs(event, path, required=action == "ADD")
    children: list[PackRef | str] = [*packs, *containers]
    chunks = _chunks(children) or [()]
    body = SupplyAggregate if action == "ADD" else SupplyDisaggregate
    return [
        (
            f"supply.{'aggregate' if action == 'ADD' else 'disaggregate'}",
            body(
                parent,
                tuple(child for child in chunk if isinstance(child, PackRef)),
                tuple(child for child in chunk if isinstance(child, str)),
            ),
        )
        for chunk in chunks
    ]


def _named_epcs(event: dict[str, Any], path: str) -> tuple[tuple[PackRef, ...], tuple[str, ...]]:
    """The serialised packs and containers an event names anywhere (epcList, parentID, childEPCs,
    inputEPCList, outputEPCList), each once; other identifiers (a returnable asset, a location) are skipped."""
    named: list[tuple[str, str]] = []
    if isinstance(event.get("parentID"), str):
        named.append((event["parentID"], f"{path}.parentID"))
    for name in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
        if name in event:
            epcs = _array(event, name, path, "an array of EPCs", EPCS_PER_EVENT_MAX)
            named += [(epc, f"{path}.{name}[{index}]") for index, epc in enumerate(epcs)]
    packs: dict[PackRef, None] = {}
    containers: dict[str, None] = {}
    for epc, where in named:
        if not isinstance(epc, str):
            raise EpcisError(where, f"expected an EPC URI, got {_kind(epc)}")
        sscc = parse_sscc(epc, where)
        if sscc is not None:
            containers[sscc] = None
        elif _SGTIN.fullmatch(epc) or _DIGITAL_LINK.fullmatch(epc):
            packs[parse_epc(epc, where)] = None
    return tuple(packs), tuple(containers)


def _record(event: dict[str, Any], path: str, kind: str, time_ms: int) -> SupplyTx:
    """An event the rules have no use for, to keep as ``supply.epcis.record``."""
    step = ""
    if "bizStep" in event:
        step = _vocabulary(_text(event, "bizStep", path, "a CBV business step"), _BIZ_STEP_PREFIXES)
        problem = biz_step_problem(step)
        if problem is not None:
            raise EpcisError(f"{path}.bizStep", problem)
    packs, containers = _named_epcs(event, path)
    if len(packs) > PACKS_PER_TX_MAX or len(containers) > PACKS_PER_TX_MAX:
        raise EpcisError(path, f"names over {PACKS_PER_TX_MAX} packs or containers: too many to keep as one record")
    text = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > EVENT_JSON_SIZE_MAX:
        raise EpcisError(
            path, f"an event the rules do not act on is kept whole, and this one is over {EVENT_JSON_SIZE_MAX} bytes"
        )
    return SupplyTx("supply.epcis.record", EpcisRecord(kind, step, time_ms, packs, containers, text), path, time_ms)


def _acted_on(event: dict[str, Any], kind: str) -> bool:
    """Whether the custody rules act on the event: an ObjectEvent of an imported step, an AggregationEvent
    that adds or deletes."""
    if kind == "AggregationEvent":
        return event.get("action") != "OBSERVE"
    step = event.get("bizStep")
    return kind == "ObjectEvent" and isinstance(step, str) and _vocabulary(step, _BIZ_STEP_PREFIXES) in _STEPS


def _convert(value: Any, path: str, lookups: _Lookups) -> list[SupplyTx]:
    event = _object(value, path)
    kind = _text(event, "type", path, f"an EPCIS 2.0 event type ({', '.join(EVENT_TYPES)})")
    if kind not in EVENT_TYPES:
        raise EpcisError(f"{path}.type", f"{kind[:40]!r} is not an EPCIS 2.0 event type: {', '.join(EVENT_TYPES)}")
    if "errorDeclaration" in event:
        raise EpcisError(
            f"{path}.errorDeclaration",
            "corrections of earlier events are not imported: the ledger never rewrites its history",
        )
    time_ms = _event_time_ms(event, path)
    if not _acted_on(event, kind):
        return [_record(event, path, kind, time_ms)]
    if kind == "AggregationEvent":
        return [SupplyTx(tx_type, body, path, time_ms) for tx_type, body in _aggregation(event, path)]
    builder = _builder(event, path)
    items = _epc_list(event, path, containers_ok=builder in (_ship, _receive))
    bodies = builder(event, path, items, lookups)
    if builder in (_ship, _receive) and "sensorElementList" in event:
        bodies = _with_reports(bodies, _temperatures(event, path, time_ms))
    return [
        SupplyTx(tx_type, body.body, path, time_ms, body.ship_index)
        if isinstance(body, _InDocument)
        else SupplyTx(tx_type, body, path, time_ms)
        for tx_type, body in bodies
    ]


def _merge_receipts(txs: list[SupplyTx]) -> list[SupplyTx]:
    """One receipt per shipment, where the first receiving event for it stood."""
    merged: list[SupplyTx] = []
    receipts: dict[bytes | int | None, int] = {}
    moved: dict[int, int] = {}  # a transaction's index before merging -> after
    for index, tx in enumerate(txs):
        moved[index] = len(merged)
        tx = tx if tx.shipment_from is None else replace(tx, shipment_from=moved[tx.shipment_from])
        if not isinstance(tx.body, SupplyReceive):
            merged.append(tx)
            continue
        shipment = tx.body.shipment if tx.shipment_from is None else tx.shipment_from
        if shipment not in receipts:
            receipts[shipment] = len(merged)
            merged.append(tx)
            continue
        earlier = merged[receipts[shipment]]
        already = set(earlier.body.packs)
        for pack in tx.body.packs:
            if pack in already:
                raise EpcisError(tx.event, f"(01){pack.gtin}(21){pack.serial} is received twice in this document")
        for sscc in tx.body.containers:
            if sscc in earlier.body.containers:
                raise EpcisError(tx.event, f"(00){sscc} is received twice in this document")
        both = replace(
            earlier.body,
            packs=earlier.body.packs + tx.body.packs,
            containers=earlier.body.containers + tx.body.containers,
        )
        merged[receipts[shipment]] = replace(earlier, body=both)
    return merged


def _location(event: dict[str, Any], path: str, parties: Mapping[str, bytes]) -> bytes | None:
    """The organisation the event's bizLocation (else readPoint) id maps to in ``parties``."""
    for name in ("bizLocation", "readPoint"):
        if name in event:
            where = f"{path}.{name}"
            key = _party(_text(_object(event[name], where), "id", where, "a location id (an SGLN URI)"), parties)
            if key is not None:
                return key
    return None


def _receivers(events: list[tuple[Any, str]], parties: Mapping[str, bytes]) -> dict[PackRef | str, bytes]:
    """Who receives each pack in the document's receiving events, where their location is mapped in ``parties``."""
    receivers: dict[PackRef | str, bytes] = {}
    for value, path in events:
        event = _object(value, path)
        if event.get("type") != "ObjectEvent" or not isinstance(event.get("bizStep"), str):
            continue
        if _vocabulary(event["bizStep"], _BIZ_STEP_PREFIXES) != "receiving":
            continue
        receiver = _location(event, path, parties)
        if receiver is not None:
            receivers.update(dict.fromkeys(_epc_list(event, path, containers_ok=True), receiver))
    return receivers


def import_epcis(
    data: bytes | str, parties: Mapping[str, bytes] | None = None, shipment_of: ShipmentLookup | None = None
) -> list[SupplyTx]:
    """The supply transactions an EPCIS 2.0 JSON document (or event) stands for, in its order.
    ``parties`` maps ids (of parties, locations, business transactions) to organisation ids;
    ``shipment_of`` finds a received pack's shipment on the ledger, when the document did not ship it."""
    return import_events(_events(_load(data)), parties, shipment_of)


def import_events(
    events: list[tuple[Any, str]], parties: Mapping[str, bytes] | None = None, shipment_of: ShipmentLookup | None = None
) -> list[SupplyTx]:
    """As ``import_epcis``, for events already read into the JSON binding's shape, each with its path
    (the EPCIS 1.2 XML import reads them so)."""
    lookups = _Lookups(parties or {}, shipment_of, _receivers(events, parties or {}), {})
    txs: list[SupplyTx] = []
    for event, path in events:
        for tx in _convert(event, path, lookups):
            if tx.shipment_from == _PREVIOUS:
                tx = replace(tx, shipment_from=len(txs) - 1)
            if isinstance(tx.body, SupplyShip):
                lookups.shipped.update(dict.fromkeys((*tx.body.packs, *tx.body.containers), len(txs)))
            txs.append(tx)
    return _merge_receipts(txs)


# -- export ----------------------------------------------------------------------------------------------

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
P2PMED_NAMESPACE = "urn:p2pmed:epcis:"
_LINK_SERIAL_SAFE = "!&'()*+,-.:;=_"


def sscc_uri(sscc: str) -> str:
    """The GS1 Digital Link URI of an SSCC-18."""
    return f"https://id.gs1.org/00/{sscc}"


def pack_uri(pack: PackRef) -> str:
    # A Digital Link, not an SGTIN URN: a GTIN alone does not say where its company prefix ends.
    return f"https://id.gs1.org/01/{pack.gtin}/21/{urllib.parse.quote(pack.serial, safe=_LINK_SERIAL_SAFE)}"


def epc_time(time_ms: int) -> str:
    moment = _EPOCH + datetime.timedelta(milliseconds=time_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def export_aggregations(sscc: str, events: Sequence[ContainerEvent], created_ms: int) -> dict[str, Any]:
    """An EPCIS 2.0 JSON-LD document of a container's aggregation history: an AggregationEvent
    (ADD, packing) for each aggregation and (DELETE, unpacking) for each disaggregation, in order,
    at ledger time; the organisation and transaction are ``p2pmed:`` extension fields."""
    exported = [
        {
            "type": "AggregationEvent",
            "eventTime": epc_time(event.time_ms),
            "eventTimeZoneOffset": "+00:00",
            "parentID": sscc_uri(sscc),
            "childEPCs": [*map(pack_uri, event.packs), *map(sscc_uri, event.containers)],
            "action": "ADD" if event.kind == "aggregate" else "DELETE",
            "bizStep": "packing" if event.kind == "aggregate" else "unpacking",
            "disposition": "in_progress",
            "p2pmed:organisation": event.organisation.hex(),
            "p2pmed:transaction": event.tx_id.hex(),
            "p2pmed:height": event.height,
        }
        for event in events
        if event.kind in ("aggregate", "disaggregate")
    ]
    return {
        "@context": [EPCIS_CONTEXT, {"p2pmed": P2PMED_NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": epc_time(created_ms),
        "epcisBody": {"eventList": exported},
    }
