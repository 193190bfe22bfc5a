"""Saleable returns (DSCSA section 582(c)(4)(D) and (d)(4)(D)): a returned pack is verified
before it is sold again.

A pack received by an organisation that held it before (a pharmacy's unsold stock back at
its wholesaler, a pack back at its manufacturer) is a return. Its receiver may decommission
or quarantine it, but ships or dispenses it again only after verifying its product
identifier against the ledger: a ``supply.verify`` scan, by the receiver while it holds the
pack, of the four elements printed on it (GTIN, serial, lot, expiry) whose verdict is
genuine. A copied serial (a lot or expiry other than commissioned) fails that scan and
raises its alert, so the pack stays unsellable.

Who held a pack is one key per organisation and pack, written when it is commissioned or
received: at most one per shipment, which ``SHIPMENTS_PER_PACK_MAX`` bounds.
"""

from __future__ import annotations

from p2pmed.ledger.contracts.supply._codes import pack_name
from p2pmed.ledger.contracts.supply._model import GENUINE, PackRef, Verdict
from p2pmed.ledger.contracts.supply._store import pack_path
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = ["note_holder", "note_receipt", "pending_return", "refuse_unverified_return", "settle_return"]


def _held_key(ref: PackRef, organisation: bytes) -> str:
    return f"supply/held/{pack_path(ref)}/{organisation.hex()}"


def _return_key(ref: PackRef) -> str:
    return f"supply/return/{pack_path(ref)}"


def note_holder(state: StateOverlay, ref: PackRef, organisation: bytes) -> None:
    state.put(_held_key(ref, organisation), True)


def note_receipt(state: StateOverlay, context: TxContext, receiver: bytes, ref: PackRef) -> None:
    """Record that ``receiver`` got the pack; if it held it before, the pack is a return to verify."""
    if state.state_get(_held_key(ref, receiver)) is not None:
        state.put(_return_key(ref), context.tx_id)
    else:
        note_holder(state, ref, receiver)


def pending_return(state: StateReader, ref: PackRef) -> bytes | None:
    """The receipt that made the pack a return not verified since, if any."""
    return StateOverlay(state).get(bytes, _return_key(ref))


def refuse_unverified_return(state: StateOverlay, ref: PackRef, action: str) -> None:
    receipt = pending_return(state, ref)
    if receipt is not None:
        raise TxRejected(
            RejectReason.INVALID,
            f"{pack_name(ref)} was returned (receipt {receipt.hex()[:16]}): verify it before you {action} it again"
            " (supply.verify with the lot and expiry printed on it)",
        )


def settle_return(state: StateOverlay, ref: PackRef, scanner: bytes, verdict: Verdict) -> None:
    """A scan by the holder whose four elements all match settles the pack's return."""
    if verdict.status == GENUINE and verdict.pack is not None and verdict.pack.holder == scanner:
        state.delete(_return_key(ref))
