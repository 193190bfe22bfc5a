"""Cold chain: a product's declared storage temperatures, and the readings taken during its shipments.

- ``supply.product.storage``: the holder of a GTIN's company prefix (its brand owner) declares
  the temperatures its packs are kept between (a vaccine: 2..8 °C). It may declare again; a
  report is judged by the range in force when it is recorded.
- ``supply.sensor.report``: the shipper or the receiver of a shipment records temperature
  readings taken during it (EPCIS 2.0 ``sensorElementList``: a data logger in the truck), at
  most ``READINGS_PER_REPORT_MAX`` per report and ``REPORTS_PER_SHIPMENT_MAX`` per shipment.
  For every product in the shipment (loose packs and those in its containers) whose storage
  range is declared, readings outside it raise one ``cold-chain-breach`` alert, naming the
  first pack of that product, the number of readings outside and the worst one. The ledger
  attests who reported what and when; the logger's honesty is the reporter's word.

Temperatures are integers in hundredths of a degree Celsius, so that every node compares
them alike; times are the reporter's (the logger's clock), checked only for range.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmed.ledger.contracts.supply._codes import gtin_problem, require, short
from p2pmed.ledger.contracts.supply._containers import contents
from p2pmed.ledger.contracts.supply._model import Container, PackRef, Shipment
from p2pmed.ledger.contracts.supply._prefixes import prefix_of
from p2pmed.ledger.contracts.supply._store import add_alert, container_key, require_organisation, shipment_key
from p2pmed.ledger.contracts.supply.limits import SHIPMENT_ID_SIZE
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = [
    "COLD_CHAIN_BREACH",
    "COLD_CHAIN_TX_TYPES",
    "READINGS_PER_REPORT_MAX",
    "REPORTS_PER_SHIPMENT_MAX",
    "TEMPERATURE_CENTI_C_MAX",
    "TEMPERATURE_CENTI_C_MIN",
    "KeptReport",
    "ProductStorage",
    "SensorReading",
    "SensorReport",
    "sensor_reports",
    "storage_of",
]

COLD_CHAIN_BREACH = "cold-chain-breach"
READINGS_PER_REPORT_MAX = 256
REPORTS_PER_SHIPMENT_MAX = 16
TEMPERATURE_CENTI_C_MIN = -27_315
TEMPERATURE_CENTI_C_MAX = 100_000


@dataclass(frozen=True)
class ProductStorage:
    """Keep ``gtin``'s packs between ``temperature_min_centi_c`` and ``temperature_max_centi_c``."""

    gtin: str
    temperature_min_centi_c: int
    temperature_max_centi_c: int


@dataclass(frozen=True)
class SensorReading:
    time_ms: int
    temperature_centi_c: int


@dataclass(frozen=True)
class SensorReport:
    """Readings taken during ``shipment`` (its ``supply.ship`` transaction's id)."""

    shipment: bytes
    readings: tuple[SensorReading, ...]


@dataclass(frozen=True)
class KeptReport:
    organisation: bytes
    height: int
    tx_id: bytes
    readings: tuple[SensorReading, ...]


def _storage_key(gtin: str) -> str:
    return f"supply/storage/{gtin}"


def _reports_key(shipment: bytes) -> str:
    return f"supply/sensor/{shipment.hex()}"


def _report_key(shipment: bytes, index: int) -> str:
    return f"supply/sensor/{shipment.hex()}/{index:02d}"


def storage_of(state: StateReader, gtin: str) -> ProductStorage | None:
    return StateOverlay(state).get(ProductStorage, _storage_key(gtin))


def sensor_reports(state: StateReader, shipment: bytes) -> list[KeptReport]:
    view = StateOverlay(state)
    count = view.get(int, _reports_key(shipment)) or 0
    found = [view.get(KeptReport, _report_key(shipment, index)) for index in range(count)]
    return [report for report in found if report is not None]


def _celsius(centi_c: int) -> str:
    return f"{centi_c / 100:.2f} °C"


def _check_temperature(centi_c: int, what: str) -> None:
    if not TEMPERATURE_CENTI_C_MIN <= centi_c <= TEMPERATURE_CENTI_C_MAX:
        raise TxRejected(RejectReason.INVALID, f"{what} {centi_c} is not a temperature in hundredths of °C")


def apply_storage(state: StateOverlay, context: TxContext, storage: ProductStorage) -> None:
    maker = require_organisation(state, context, "declares a product's storage", frozenset({"manufacturer"}))
    require(gtin_problem(storage.gtin))
    found = prefix_of(state, storage.gtin)
    if found is None or found[1] != maker:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED, f"only the holder of GTIN {storage.gtin}'s company prefix declares its storage"
        )
    _check_temperature(storage.temperature_min_centi_c, "the lowest")
    _check_temperature(storage.temperature_max_centi_c, "the highest")
    if storage.temperature_min_centi_c >= storage.temperature_max_centi_c:
        raise TxRejected(RejectReason.INVALID, "the lowest storage temperature must be below the highest")
    state.put(_storage_key(storage.gtin), storage)


def _shipped_packs(state: StateOverlay, sent: Shipment) -> list[PackRef]:
    packs = list(sent.packs)
    for sscc in sent.containers:
        top = state.get(Container, container_key(sscc))
        assert top is not None, "a shipment lists containers that were packed"
        packs += contents(state, top)[0]
    return packs


def _breach(readings: tuple[SensorReading, ...], storage: ProductStorage) -> tuple[int, SensorReading] | None:
    """How many readings are outside the range, and the one furthest outside; None if none is."""
    low, high = storage.temperature_min_centi_c, storage.temperature_max_centi_c
    outside = [reading for reading in readings if not low <= reading.temperature_centi_c <= high]
    if not outside:
        return None

    def excess(reading: SensorReading) -> int:
        return max(low - reading.temperature_centi_c, reading.temperature_centi_c - high)

    return len(outside), max(outside, key=excess)


def apply_report(state: StateOverlay, context: TxContext, report: SensorReport) -> None:
    reporter = require_organisation(state, context, "reports sensor readings")
    if len(report.shipment) != SHIPMENT_ID_SIZE:
        raise TxRejected(RejectReason.INVALID, f"a shipment id is {SHIPMENT_ID_SIZE} bytes")
    sent = state.get(Shipment, shipment_key(report.shipment))
    if sent is None:
        raise TxRejected(RejectReason.INVALID, f"no shipment has id {report.shipment.hex()}")
    if reporter not in (sent.source, sent.destination):
        raise TxRejected(RejectReason.NOT_AUTHORISED, "only a shipment's shipper or receiver reports its readings")
    if not 0 < len(report.readings) <= READINGS_PER_REPORT_MAX:
        raise TxRejected(RejectReason.INVALID, f"give 1..{READINGS_PER_REPORT_MAX} readings")
    for reading in report.readings:
        _check_temperature(reading.temperature_centi_c, "a reading")
        if reading.time_ms < 0:
            raise TxRejected(RejectReason.INVALID, "a reading's time is at or after 1970")
    count = state.get(int, _reports_key(sent.id)) or 0
    if count >= REPORTS_PER_SHIPMENT_MAX:
        raise TxRejected(RejectReason.INVALID, f"shipment {sent.id.hex()} has {count} reports, the most it keeps")
    state.put(_report_key(sent.id, count), KeptReport(reporter, context.height, context.tx_id, report.readings))
    state.put(_reports_key(sent.id), count + 1)
    first_of: dict[str, PackRef] = {}
    for ref in _shipped_packs(state, sent):
        first_of.setdefault(ref.gtin, ref)
    for gtin, ref in first_of.items():
        storage = storage_of(state, gtin)
        breach = None if storage is None else _breach(report.readings, storage)
        if storage is None or breach is None:
            continue
        outside, worst = breach
        detail = (
            f"shipment {sent.id.hex()[:16]} from {short(sent.source)}: {outside} of {len(report.readings)} readings"
            f" outside {_celsius(storage.temperature_min_centi_c)}..{_celsius(storage.temperature_max_centi_c)},"
            f" worst {_celsius(worst.temperature_centi_c)}"
        )
        add_alert(state, context, reporter, COLD_CHAIN_BREACH, ref, detail)


COLD_CHAIN_TX_TYPES = (
    TxType("supply.product.storage", ProductStorage, apply_storage),
    TxType("supply.sensor.report", SensorReport, apply_report),
)
