"""Verification: is a pack genuine and dispensable, and a scan of one recorded on the ledger."""

from __future__ import annotations

from p2pmed.ledger.contracts.supply._codes import (
    check_query,
    code_problem,
    expiry_end_ms,
    expiry_problem,
    gtin_problem,
    require,
    require_query,
    short,
)
from p2pmed.ledger.contracts.supply._model import (
    ALERT_STATUSES,
    DECOMMISSIONED,
    DISPENSED,
    EXPIRED,
    GENUINE,
    IN_TRANSIT,
    MISMATCH,
    MISSING,
    NOT_HELD_HERE,
    QUARANTINED,
    RECALLED,
    UNKNOWN,
    Lot,
    Pack,
    PackEvent,
    PackRef,
    SupplyVerify,
    Verdict,
)
from p2pmed.ledger.contracts.supply._returns import settle_return
from p2pmed.ledger.contracts.supply._store import (
    add_alert,
    event_key,
    lot_of,
    pack_key,
    recall_of,
    record_scan,
    require_organisation,
)
from p2pmed.ledger.contracts.supply._suspects import quarantine_of
from p2pmed.ledger.rules import TxContext
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = ["apply_verify", "verify"]


# -- verify (scan) ----------------------------------------------------------------------------------


def apply_verify(state: StateOverlay, context: TxContext, scan: SupplyVerify) -> None:
    scanner = require_organisation(state, context, "records scans")
    require(gtin_problem(scan.gtin))
    require(code_problem(scan.serial, "serial"))
    require(code_problem(scan.lot, "lot"))
    require(expiry_problem(scan.expiry))
    verdict = verify(state, scan.gtin, scan.serial, context.time_ms, scanner, scan.lot, scan.expiry)
    ref = PackRef(scan.gtin, scan.serial)
    record_scan(state, context, scanner, ref, verdict.status)
    settle_return(state, ref, scanner, verdict)
    if verdict.status in ALERT_STATUSES:
        add_alert(state, context, scanner, verdict.status, ref, verdict.message)


def _judge(state: StateReader, found: Pack, lot: Lot, now_ms: int, organisation: bytes | None) -> tuple[str, str]:
    """The status and the sentence for a commissioned pack, worst news first."""
    last = StateOverlay(state).get(PackEvent, event_key(PackRef(found.gtin, found.serial), found.status_event))
    assert last is not None
    by, at = short(last.organisation), f"at height {last.height}"
    recall = recall_of(state, found)
    if recall is not None:
        return (
            RECALLED,
            f"Recalled by its manufacturer ({recall.reason}): do not dispense; quarantine it and ship it back or "
            "decommission it.",
        )
    case = quarantine_of(state, PackRef(found.gtin, found.serial))
    if case is not None:
        return (
            QUARANTINED,
            f"Quarantined as a suspect product by {short(found.holder)} (case {case.hex()}): do not dispense.",
        )
    if found.status == "dispensed":
        return (
            DISPENSED,
            f"Already dispensed by {by} {at}: another pack with this serial is a suspect counterfeit. Do not dispense.",
        )
    if found.status == "decommissioned":
        return (
            DECOMMISSIONED,
            f"Decommissioned by {by} {at} ({last.detail}): it should not be in circulation. Do not dispense.",
        )
    if found.status == "missing":
        return (
            MISSING,
            f"Reported missing from {last.detail} by {by} {at}: possibly diverted. Do not dispense; report it.",
        )
    if expiry_end_ms(lot.expiry) <= now_ms:
        return EXPIRED, f"Expired on {lot.expiry}: do not dispense; decommission it."
    if found.status == "in-transit":
        assert last.party is not None, "a ship event names its destination"
        return (
            IN_TRANSIT,
            f"In transit to {short(last.party)} in {last.detail}: the destination receives it before it is dispensed.",
        )
    if organisation is not None and organisation != found.holder:
        return (
            NOT_HELD_HERE,
            f"Genuine, but the ledger says {short(found.holder)} holds it, not you: custody is broken. Do not "
            "dispense.",
        )
    return (
        GENUINE,
        f"Genuine: lot {found.lot}, expires {lot.expiry}, held by {short(found.holder)}; it may be dispensed.",
    )


def verify(
    state: StateReader,
    gtin: str,
    serial: str,
    now_ms: int,
    organisation: bytes | None = None,
    lot: str | None = None,
    expiry: str | None = None,
) -> Verdict:
    """Is this pack genuine and dispensable at ``now_ms``, by ``organisation`` if
    given (else by its holder)? With ``lot`` and ``expiry`` (as printed on the pack),
    all four elements must match what was commissioned. ValueError if a code is malformed."""
    ref = check_query(gtin, serial)
    require_query((code_problem(lot, "lot") if lot else None) or (expiry_problem(expiry) if expiry else None))
    found = StateOverlay(state).get(Pack, pack_key(ref))
    if found is None:
        message = (
            f"Suspect counterfeit: no pack with GTIN {gtin} and serial {serial} was ever commissioned. "
            "Do not dispense; quarantine it and report it."
        )
        return Verdict(UNKNOWN, message, gtin, serial, None, None)
    commissioned = lot_of(state, found)
    printed = [("lot", lot, found.lot), ("expiry", expiry, commissioned.expiry)]
    wrong = [f"{name} {given} (commissioned: {actual})" for name, given, actual in printed if given and given != actual]
    if wrong:
        message = (
            f"Suspect product: serial {serial} of GTIN {gtin} is real, but this pack's {', '.join(wrong)} does not"
            " match: a copied serial. Do not dispense; quarantine it and report it."
        )
        return Verdict(MISMATCH, message, gtin, serial, found, commissioned.expiry)
    status, message = _judge(state, found, commissioned, now_ms, organisation)
    return Verdict(status, message, gtin, serial, found, commissioned.expiry)
