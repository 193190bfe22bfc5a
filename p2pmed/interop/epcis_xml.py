"""EPCIS 1.2 XML import: the same supply transactions as the EPCIS 2.0 JSON import.

An EPCIS 1.2 document (``epcis:EPCISDocument``, events in ``EPCISBody/EventList``) or query
document (``EPCISBody/epcisq:QueryResults/resultsBody/EventList``) is read into the shape of
the JSON binding, then imported by ``p2pmed.interop.epcis.import_events``: one set of rules
for both. The reading is structural, as the 1.2 schema lays events out:

- each event element (``ObjectEvent``, ``AggregationEvent``, ``TransactionEvent``, and
  ``TransformationEvent`` or ``AssociationEvent`` inside ``extension``) gives ``type``;
- ``extension`` and ``baseExtension`` wrappers are flattened into the event (1.2 put 1.1's
  and 1.2's additions there: ``eventID``, ``errorDeclaration``, ``sourceList``, ``ilmd``...);
- lists (``epcList``, ``childEPCs``, ``inputEPCList``, ``bizTransactionList``,
  ``sourceList``, ``destinationList``, the quantity lists) become arrays; a business
  transaction, source or destination keeps its ``type`` attribute;
- ``readPoint`` and ``bizLocation`` become ``{"id": ...}``; ``ilmd`` children become members
  named ``cbvmda:lotNumber`` (the CBV master-data namespace) or ``{namespace}name``;
- any other element becomes a member holding its text, or an object of its children.

The input is untrusted. It is at most ``DOCUMENT_SIZE_MAX`` bytes of UTF-8 (an XML
declaration naming another encoding is refused) with no document type declaration, so no
entity can be declared, let alone expanded (the billion-laughs and external-entity attacks
need one); elements nest at most ``DEPTH_MAX`` deep and a document holds at most
``EVENTS_MAX`` events. Errors are ``EpcisError`` with the path of the bad element, as
``EventList/ObjectEvent[2].epcList[0]``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from typing import Any

from p2pmed.interop.epcis import (
    DEPTH_MAX,
    DOCUMENT_SIZE_MAX,
    EVENTS_MAX,
    EpcisError,
    ShipmentLookup,
    SupplyTx,
    import_events,
)

__all__ = ["import_epcis_xml", "is_xml"]

CBV_MASTER_DATA = "urn:epcglobal:cbv:mda"
_EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent")
_LISTS = {
    "epcList": "epc",
    "childEPCs": "epc",
    "inputEPCList": "epc",
    "outputEPCList": "epc",
    "bizTransactionList": "bizTransaction",
    "sourceList": "source",
    "destinationList": "destination",
    "quantityList": "quantityElement",
    "childQuantityList": "quantityElement",
    "inputQuantityList": "quantityElement",
    "outputQuantityList": "quantityElement",
    "sensorElementList": "sensorElement",
}
_TYPED = {"bizTransaction", "source", "destination"}
_WRAPPERS = {"extension", "baseExtension"}
_DECLARATION = re.compile(r"<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


def is_xml(data: bytes) -> bool:
    """Whether a document is XML (starts with ``<`` after any byte-order mark and white space)."""
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _member(tag: str) -> str:
    """A member's name: the element's, ``cbvmda:name`` in the CBV master-data namespace, ``{namespace}name``
    in another (a user extension)."""
    if not tag.startswith("{"):
        return tag
    namespace, name = tag[1:].split("}", 1)
    return f"cbvmda:{name}" if namespace == CBV_MASTER_DATA else tag


def _text(element: ElementTree.Element) -> str:
    return (element.text or "").strip()


def _value(element: ElementTree.Element, path: str, depth: int) -> Any:
    """An element as the JSON binding has it: text, or an object of its children (wrappers flattened)."""
    if depth > DEPTH_MAX:
        raise EpcisError(path, f"elements nest deeper than {DEPTH_MAX}")
    children = list(element)
    if not children:
        return _text(element)
    result: dict[str, Any] = {}
    for child in children:
        _add(result, child, f"{path}.{_local(child.tag)}", depth + 1)
    return result


def _add(result: dict[str, Any], child: ElementTree.Element, path: str, depth: int) -> None:
    name = _local(child.tag)
    if name in _WRAPPERS:
        for inner in child:
            _add(result, inner, f"{path}.{_local(inner.tag)}", depth + 1)
        return
    if name in _LISTS:
        items = []
        for index, item in enumerate(child):
            where = f"{path}[{index}]"
            if _local(item.tag) in _TYPED:
                items.append({"type": item.get("type", ""), _local(item.tag): _text(item)})
            else:
                items.append(_value(item, where, depth + 1))
        result[name] = items
    elif name in ("readPoint", "bizLocation"):
        location = child.find("id")
        result[name] = {"id": "" if location is None else _text(location)}
    elif name == "ilmd":
        result[name] = {_member(item.tag): _value(item, f"{path}.{_local(item.tag)}", depth + 1) for item in child}
    else:
        result[_member(child.tag)] = _value(child, path, depth)


def _event_list(root: ElementTree.Element) -> tuple[ElementTree.Element, str]:
    body = next((child for child in root if _local(child.tag) == "EPCISBody"), None)
    if _local(root.tag) not in ("EPCISDocument", "EPCISQueryDocument") or body is None:
        raise EpcisError("/", "expected an epcis:EPCISDocument or EPCISQueryDocument holding an EPCISBody")
    if _local(root.tag) == "EPCISQueryDocument":
        results = next((child for child in body if _local(child.tag) == "QueryResults"), None)
        found = None if results is None else results.find("resultsBody/EventList")
    else:
        found = next((child for child in body if _local(child.tag) == "EventList"), None)
    if found is None:
        raise EpcisError("EPCISBody", "no EventList")
    return found, "EventList"


def _events(root: ElementTree.Element) -> list[tuple[Any, str]]:
    event_list, path = _event_list(root)
    elements = []
    for child in event_list:
        if _local(child.tag) == "extension":
            elements += list(child)
        else:
            elements.append(child)
    if len(elements) > EVENTS_MAX:
        raise EpcisError(path, f"{len(elements)} events, limit {EVENTS_MAX}")
    events: list[tuple[Any, str]] = []
    for index, element in enumerate(elements):
        kind = _local(element.tag)
        where = f"{path}/{kind}[{index}]"
        if kind not in _EVENT_TYPES:
            raise EpcisError(where, f"{kind[:40]!r} is not an EPCIS event: {', '.join(_EVENT_TYPES)}")
        event = _value(element, where, 1)
        events.append(({"type": kind, **(event if isinstance(event, dict) else {})}, where))
    return events


def _parse(data: bytes) -> ElementTree.Element:
    if len(data) > DOCUMENT_SIZE_MAX:
        raise EpcisError("/", f"too big: {len(data)} bytes, limit {DOCUMENT_SIZE_MAX}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise EpcisError("/", f"not UTF-8 (byte {error.start})") from None
    declared = _DECLARATION.match(text)
    if declared is not None and declared[1].lower() not in ("utf-8", "us-ascii", "ascii"):
        raise EpcisError("/", f"encoding {declared[1][:20]!r}: only UTF-8 is read")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise EpcisError("/", "a document type declaration is refused: EPCIS needs none, and entities are an attack")
    try:
        return ElementTree.XML(text, parser=ElementTree.XMLParser(encoding="utf-8"))
    except ElementTree.ParseError as error:
        raise EpcisError("/", f"not well-formed XML: {error}") from None


def import_epcis_xml(
    data: bytes, parties: Mapping[str, bytes] | None = None, shipment_of: ShipmentLookup | None = None
) -> list[SupplyTx]:
    """The supply transactions an EPCIS 1.2 XML document stands for, as ``import_epcis`` makes them."""
    return import_events(_events(_parse(data)), parties, shipment_of)
