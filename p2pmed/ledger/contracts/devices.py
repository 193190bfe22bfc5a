"""Medical devices: a registry of device keys, and batches of readings anchored on the ledger.

A device is named by its UDI as GS1 issues it: the GTIN-14 of its model (the UDI's device
identifier) and its serial (AI 21), checked as the supply rules check packs. The
organisation that operates it registers it (``device.register``) with the device's own
Ed25519 key, which signs for it and for nothing else: a device key is no person's and no
organisation's, so it reads no record and registers nobody. A ``gateway`` is registered
the same way; it submits batches for any device of its organisation (a ward hub, a
home-monitoring bridge). A registration may bind the device to one patient (a home blood
pressure cuff): every batch it measures, or a gateway bound so submits, is then for that
patient only. The operating organisation revokes a device (``device.revoke``); a revoked
UDI may be registered again, by any organisation and with a key never used before, and
keeps its batch numbers.

Readings travel in batches (``device.batch``), signed by the device or by a gateway of the
same organisation. The readings themselves are a record: encrypted by the client,
shared with the custodians, read only as the patient's consent decides
(``records``), written in the name of the operating organisation, which needs a care
relationship with the patient and a kind that writes the category, as for any record it
writes. The ledger holds, besides the record's anchor, one batch anchor: the device, the
batch number (1, 2, ... per device, so a batch submitted twice or out of order is
refused), how many readings and the root of an RFC 9162 Merkle tree over them
(``p2pmed.merkle_log``; each reading salted, so the root and a proof of one reading tell
nothing about the others). A reader of the record proves one reading to anyone holding
the batch anchor, or its state proof (``state.proof`` of ``batch_key``).

A device cannot flood the ledger: each UDI sends at most ``BATCH_BURST`` batches at once,
then one per ``BATCH_INTERVAL_MS`` of block time (the generic cell rate algorithm: one
number per device, the earliest block time its next batch is due, ``next_batch_ms``).
It counts against the measuring device whoever submits, so a gateway multiplies nothing;
and all the batches of one organisation's devices count against its own, wider rate
(``ORGANISATION_BATCH_BURST``, ``ORGANISATION_BATCH_INTERVAL_MS``), so an organisation that
registers devices without end floods no more than that.
Block time, not any clock, decides, so every node decides the same. Nodes ask the same
question (``rate_problem``) before taking a batch in, so a device over its rate does not
fill blocks with refused batches either.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from p2pmed.ledger.contracts.identity import (
    Organisation,
    check_fresh_key,
    mark_key_used,
    organisation_in_force,
    organisation_of,
    person,
)
from p2pmed.ledger.contracts.policy import CATEGORIES_WRITTEN_BY
from p2pmed.ledger.contracts.records import RecordAdd, anchor_record
from p2pmed.ledger.contracts.supply._codes import code_problem, gtin_problem
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = [
    "BATCH_BURST",
    "BATCH_INTERVAL_MS",
    "ORGANISATION_BATCH_BURST",
    "ORGANISATION_BATCH_INTERVAL_MS",
    "READINGS_PER_BATCH_MAX",
    "ROLES",
    "TX_TYPES",
    "BatchAnchor",
    "Device",
    "DeviceBatch",
    "DeviceRegister",
    "DeviceRevoke",
    "batch_anchor",
    "batch_key",
    "device",
    "device_of",
    "rate_problem",
    "udi_problem",
    "udi_text",
]

ROLES = frozenset({"device", "gateway"})
BATCH_INTERVAL_MS = 60_000
BATCH_BURST = 5
"""A device that was offline catches up with a few batches at once; beyond that, one a minute."""
ORGANISATION_BATCH_INTERVAL_MS = 50
ORGANISATION_BATCH_BURST = 1200
"""All the devices of one organisation: 20 batches a second (1,200 devices at one a minute),
1,200 at once: an organisation that registers devices without end floods no more than that."""
READINGS_PER_BATCH_MAX = 1000
ROOT_SIZE = 32


@dataclass(frozen=True)
class DeviceRegister:
    gtin: str
    serial: str
    key: bytes
    role: str = "device"
    patient: bytes = b""
    """The one patient whose readings it measures or submits; empty: any in the organisation's care."""


@dataclass(frozen=True)
class DeviceRevoke:
    gtin: str
    serial: str


@dataclass(frozen=True)
class DeviceBatch:
    gtin: str
    serial: str
    sequence: int
    readings: int
    readings_root: bytes
    record: RecordAdd
    """The anchor of the encrypted batch, a record of the patient's (``records.RecordAdd``)."""


@dataclass(frozen=True)
class Device:
    gtin: str
    serial: str
    key: bytes
    role: str
    organisation: bytes
    patient: bytes
    registered_ms: int
    revoked_ms: int | None
    batches: int
    next_batch_ms: int
    """The block time from which the next batch is on time; up to ``BATCH_BURST - 1``
    intervals earlier, it is still within the burst."""


@dataclass(frozen=True)
class BatchAnchor:
    gtin: str
    serial: str
    sequence: int
    readings: int
    readings_root: bytes
    record_id: bytes
    submitter: bytes
    time_ms: int
    height: int
    tx_id: bytes


@dataclass(frozen=True)
class _DeviceRef:
    gtin: str
    serial: str


def udi_text(gtin: str, serial: str) -> str:
    """The UDI as GS1's human-readable interpretation prints it."""
    return f"(01){gtin}(21){serial}"


def udi_problem(gtin: str, serial: str) -> str | None:
    """What is wrong with a device's GTIN or serial, or None."""
    return gtin_problem(gtin) or code_problem(serial, "serial")


def _device_key(gtin: str, serial: str) -> str:
    return f"device/{gtin}/{serial.encode().hex()}"  # hex: a serial may hold "/"


def _signer_key(key: bytes) -> str:
    return f"device-key/{key.hex()}"


def batch_key(gtin: str, serial: str, sequence: int) -> str:
    """The state key of a batch's anchor: what ``state.proof`` proves."""
    return f"device-batch/{gtin}/{serial.encode().hex()}/{sequence:012d}"


def device(state: StateReader, gtin: str, serial: str) -> Device | None:
    """The device with this UDI, in force or revoked, if ever registered."""
    return StateOverlay(state).get(Device, _device_key(gtin, serial))


def device_of(state: StateReader, key: bytes) -> Device | None:
    """The device in force (not revoked, its organisation in force) whose key is ``key``."""
    ref = StateOverlay(state).get(_DeviceRef, _signer_key(key))
    found = None if ref is None else device(state, ref.gtin, ref.serial)
    if found is None or found.key != key or found.revoked_ms is not None:
        return None
    return found if organisation_in_force(state, found.organisation) is not None else None


def batch_anchor(state: StateReader, gtin: str, serial: str, sequence: int) -> BatchAnchor | None:
    return StateOverlay(state).get(BatchAnchor, batch_key(gtin, serial, sequence))


def _check_udi(gtin: str, serial: str) -> None:
    problem = udi_problem(gtin, serial)
    if problem is not None:
        raise TxRejected(RejectReason.INVALID, problem)


def _operator(state: StateReader, context: TxContext) -> Organisation:
    found = organisation_of(state, context.sender)
    if found is None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "devices are registered and revoked by an organisation in force")
    return found


def apply_register(state: StateOverlay, context: TxContext, register: DeviceRegister) -> None:
    operator = _operator(state, context)
    if not CATEGORIES_WRITTEN_BY.get(operator.kind):
        raise TxRejected(
            RejectReason.NOT_AUTHORISED, f"a {operator.kind} writes no health data, so it operates no device"
        )
    _check_udi(register.gtin, register.serial)
    if register.role not in ROLES:
        raise TxRejected(RejectReason.INVALID, f"the role is one of {', '.join(sorted(ROLES))}, not {register.role!r}")
    if register.patient:
        bound = person(state, register.patient)
        if bound is None or not bound.active or bound.role != "patient":
            raise TxRejected(RejectReason.INVALID, "no patient in force has this person id")
    existing = device(state, register.gtin, register.serial)
    if existing is not None and existing.revoked_ms is None:
        raise TxRejected(
            RejectReason.DUPLICATE,
            f"device {udi_text(register.gtin, register.serial)} is registered, by {existing.organisation.hex()[:16]}:"
            " it revokes it first",
        )
    check_fresh_key(state, context, register.key, "the device key")
    registered = Device(
        register.gtin,
        register.serial,
        register.key,
        register.role,
        operator.id,
        register.patient,
        context.time_ms,
        None,
        0 if existing is None else existing.batches,
        0 if existing is None else existing.next_batch_ms,
    )
    state.put(_device_key(register.gtin, register.serial), registered)
    state.put(_signer_key(register.key), _DeviceRef(register.gtin, register.serial))
    mark_key_used(state, register.key)


def apply_revoke(state: StateOverlay, context: TxContext, revoke: DeviceRevoke) -> None:
    operator = _operator(state, context)
    _check_udi(revoke.gtin, revoke.serial)
    found = device(state, revoke.gtin, revoke.serial)
    if found is None or found.revoked_ms is not None:
        raise TxRejected(RejectReason.INVALID, f"no device in force is {udi_text(revoke.gtin, revoke.serial)}")
    if found.organisation != operator.id:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "only the organisation that operates a device revokes it")
    state.put(_device_key(revoke.gtin, revoke.serial), dataclasses.replace(found, revoked_ms=context.time_ms))


def _check_submitter(state: StateReader, context: TxContext, measured: Device) -> Device:
    """The device or gateway in force that signed a batch of ``measured``'s readings."""
    if context.sender == measured.key:
        return measured
    gateway = device_of(state, context.sender)
    if gateway is None or gateway.role != "gateway" or gateway.organisation != measured.organisation:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            "a batch is signed by its device or by a gateway in force of the organisation that operates it",
        )
    return gateway


def _after_one_more(next_ms: int, now_ms: int, interval_ms: int, burst: int) -> int | None:
    """The generic cell rate algorithm: ``next_ms`` after one more event at ``now_ms``, or None
    if it is more than ``burst - 1`` intervals early (over the rate)."""
    due_ms = max(next_ms, now_ms)
    return None if due_ms - now_ms > (burst - 1) * interval_ms else due_ms + interval_ms


def _over_rate(what: str, next_ms: int, now_ms: int, interval_ms: int, burst: int) -> TxRejected:
    wait_s = (max(next_ms, now_ms) - now_ms - (burst - 1) * interval_ms + 999) // 1000
    return TxRejected(
        RejectReason.NOT_AUTHORISED,
        f"{what} is over its rate ({burst} batches at once, then one per {interval_ms / 1000:g} s): its next batch"
        f" is due in {wait_s} s of block time",
    )


def _organisation_rate_key(organisation: bytes) -> str:
    return f"device-organisation-rate/{organisation.hex()}"


def _next_batch_times(state: StateReader, measured: Device, now_ms: int) -> tuple[int, int]:
    """The device's and its organisation's next due times after one more batch at ``now_ms``;
    raise ``TxRejected`` for a batch over either rate."""
    device_ms = _after_one_more(measured.next_batch_ms, now_ms, BATCH_INTERVAL_MS, BATCH_BURST)
    if device_ms is None:
        udi = udi_text(measured.gtin, measured.serial)
        raise _over_rate(f"device {udi}", measured.next_batch_ms, now_ms, BATCH_INTERVAL_MS, BATCH_BURST)
    organisation_next_ms = StateOverlay(state).get(int, _organisation_rate_key(measured.organisation)) or 0
    organisation_ms = _after_one_more(
        organisation_next_ms, now_ms, ORGANISATION_BATCH_INTERVAL_MS, ORGANISATION_BATCH_BURST
    )
    if organisation_ms is None:
        what = f"organisation {measured.organisation.hex()[:16]} (its devices together)"
        raise _over_rate(what, organisation_next_ms, now_ms, ORGANISATION_BATCH_INTERVAL_MS, ORGANISATION_BATCH_BURST)
    return device_ms, organisation_ms


def rate_problem(state: StateReader, gtin: str, serial: str, now_ms: int) -> str | None:
    """Why a batch of this device at ``now_ms`` would be over its rate or its organisation's, or
    None. Nodes ask before taking a batch in, so that it fills no block with refused batches."""
    found = device(state, gtin, serial)
    if found is None:
        return None
    try:
        _next_batch_times(state, found, now_ms)
    except TxRejected as refused:
        return refused.detail
    return None


def apply_batch(state: StateOverlay, context: TxContext, batch: DeviceBatch) -> None:
    if not 0 < batch.readings <= READINGS_PER_BATCH_MAX or len(batch.readings_root) != ROOT_SIZE:
        raise TxRejected(
            RejectReason.INVALID,
            f"a batch holds 1..{READINGS_PER_BATCH_MAX} readings and their {ROOT_SIZE}-byte Merkle root",
        )
    _check_udi(batch.gtin, batch.serial)
    udi = udi_text(batch.gtin, batch.serial)
    measured = device(state, batch.gtin, batch.serial)
    if measured is None or measured.revoked_ms is not None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, f"no device in force is {udi}")
    operator = organisation_in_force(state, measured.organisation)
    if operator is None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, f"the organisation that operates {udi} is not in force")
    submitter = _check_submitter(state, context, measured)
    if batch.sequence != measured.batches + 1:
        raise TxRejected(
            RejectReason.INVALID,
            f"device {udi} sent {measured.batches} batches: the next is number {measured.batches + 1}, not"
            f" {batch.sequence} (a batch is anchored once)",
        )
    for bound in (measured, submitter):
        if bound.patient and bound.patient != batch.record.patient:
            raise TxRejected(
                RejectReason.NOT_AUTHORISED,
                f"{udi_text(bound.gtin, bound.serial)} is bound to patient {bound.patient.hex()[:16]}: it sends"
                " nobody else's readings",
            )
    next_batch_ms, organisation_next_ms = _next_batch_times(state, measured, context.time_ms)
    detail = f"device {udi} batch {batch.sequence}, {batch.readings} readings"
    anchor_record(state, context, batch.record, operator.id, operator.kind, operator.id, detail)
    state.put(
        _device_key(batch.gtin, batch.serial),
        dataclasses.replace(measured, batches=batch.sequence, next_batch_ms=next_batch_ms),
    )
    state.put(_organisation_rate_key(operator.id), organisation_next_ms)
    anchor = BatchAnchor(
        batch.gtin,
        batch.serial,
        batch.sequence,
        batch.readings,
        batch.readings_root,
        batch.record.record_id,
        context.sender,
        context.time_ms,
        context.height,
        context.tx_id,
    )
    state.put(batch_key(batch.gtin, batch.serial, batch.sequence), anchor)


TX_TYPES = (
    TxType("device.register", DeviceRegister, apply_register),
    TxType("device.revoke", DeviceRevoke, apply_revoke),
    TxType("device.batch", DeviceBatch, apply_batch),
)
