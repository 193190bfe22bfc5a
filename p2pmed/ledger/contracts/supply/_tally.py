"""Weekly counts per site and product, kept by the custody rules as packs move: what the
diversion signals read instead of the events themselves.

Each pack event adds one to a field of two ``Tally`` records, the product's and the site's
``*`` (every product), of the ledger-time week it happens in (``_week``: the chain's signal
week, 7 days unless its validators voted another before the first tally): a constant cost per pack,
paid by the transaction that moves it, so no flood of events makes the signals dearer.
``still_held`` lives on the week a pack was received and is taken back when the pack
leaves the site (dispensed, shipped on or back, decommissioned), so a week's tally says
how many of its receipts are still on the shelf. Missing packs count against the
shipper, in the week the receiver declared them.

``peers`` lists, per product (or ``*``) and organisation kind, the sites that have a tally
for it (at most ``PEERS_MAX``, in the order they first appeared): the peer group a
site's counts are compared with. The product's schedule (a controlled substance) is set by
its maker with ``supply.product.schedule`` and read here too. A site's first tally puts it on
the ``*`` list of its kind, and lists only grow: whether anything was ever counted is a
lookup per organisation kind (``counted_any``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from p2pmed.ledger.contracts.identity import ORGANISATION_KINDS, organisation
from p2pmed.ledger.contracts.supply import thresholds
from p2pmed.ledger.contracts.supply._model import Pack, PackEvent, PackRef
from p2pmed.ledger.contracts.supply._store import event_key
from p2pmed.ledger.contracts.supply._week import signal_week_ms
from p2pmed.ledger.rules import TxContext
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = [
    "ALL_PRODUCTS",
    "Field",
    "Tally",
    "TallyBatch",
    "count_leave",
    "count_missing",
    "count_receive",
    "counted_any",
    "peers",
    "schedule_key",
    "schedule_of",
    "tally",
    "tally_key",
]

ALL_PRODUCTS = "*"
Field = Literal["received", "dispensed", "shipped", "decommissioned", "stolen_lost", "missing"]


@dataclass(frozen=True)
class Tally:
    received: int = 0
    dispensed: int = 0
    shipped: int = 0
    decommissioned: int = 0
    stolen_lost: int = 0
    """Of ``decommissioned``: as stolen or lost."""
    missing: int = 0
    """Packs this site shipped that their receiver declared missing."""
    still_held: int = 0
    """Packs received this week that the site still holds."""
    incidents: tuple[bytes, ...] = ()
    """The first transactions of the week that reported packs stolen, lost or missing."""


def tally_key(site: bytes, product: str, week: int) -> str:
    return f"supply/tally/{site.hex()}/{product}/{week:06d}"


def peers_key(product: str, kind: str) -> str:
    return f"supply/peers/{product}/{kind}"


def schedule_key(gtin: str) -> str:
    return f"supply/schedule/{gtin}"


def tally(state: StateReader, site: bytes, product: str, week: int) -> Tally:
    return StateOverlay(state).get(Tally, tally_key(site, product, week)) or Tally()


@dataclass(frozen=True)
class _Peers:
    sites: tuple[bytes, ...]


def peers(state: StateReader, product: str, kind: str) -> tuple[bytes, ...]:
    found = StateOverlay(state).get(_Peers, peers_key(product, kind))
    return () if found is None else found.sites


def counted_any(state: StateReader) -> bool:
    """Whether any supply event was ever counted in a tally (module docstring)."""
    return any(peers(state, ALL_PRODUCTS, kind) for kind in sorted(ORGANISATION_KINDS))


def schedule_of(state: StateReader, gtin: str) -> str | None:
    """The controlled-substance schedule its maker declared for ``gtin``, if any."""
    return StateOverlay(state).get(str, schedule_key(gtin))


def _join_peers(state: StateOverlay, site: bytes, product: str) -> None:
    found = organisation(state, site)
    assert found is not None, "only organisations move packs"
    listed = peers(state, product, found.kind)
    if site not in listed and len(listed) < thresholds.PEERS_MAX:
        state.put(peers_key(product, found.kind), _Peers((*listed, site)))


@dataclass
class _Change:
    counts: dict[str, int]
    held: int
    incidents: list[bytes]


class TallyBatch:
    """The counts one transaction adds, written once per tally when it ends (``flush``): a
    transaction of a thousand packs of one product reads and writes its tallies once, not a
    thousand times."""

    def __init__(self, state: StateReader) -> None:
        self._week_ms = signal_week_ms(state)
        self._changes: dict[tuple[bytes, str, int], _Change] = {}

    def add(self, site: bytes, gtin: str, time_ms: int, fields: tuple[Field, ...], held: int, incident: bytes) -> None:
        """Count a pack event of ledger time ``time_ms`` in the tallies of its week."""
        week = time_ms // self._week_ms
        for product in (gtin, ALL_PRODUCTS):
            change = self._changes.setdefault((site, product, week), _Change({}, 0, []))
            for name in fields:
                change.counts[name] = change.counts.get(name, 0) + 1
            change.held += held
            if incident and incident not in change.incidents:
                change.incidents.append(incident)

    def flush(self, state: StateOverlay) -> None:
        for (site, product, week), change in sorted(self._changes.items()):
            key = tally_key(site, product, week)
            found = state.get(Tally, key)
            if found is None:
                _join_peers(state, site, product)
                found = Tally()
            counts = {name: getattr(found, name) + added for name, added in change.counts.items()}
            incidents = (*found.incidents, *(tx for tx in change.incidents if tx not in found.incidents))
            changed = replace(
                found,
                still_held=found.still_held + change.held,
                incidents=incidents[: thresholds.EVIDENCE_INCIDENTS_MAX],
                **counts,
            )
            assert changed.still_held >= 0, "a pack leaves a site at most once per receipt"
            state.put(key, changed)
        self._changes.clear()


def count_receive(batch: TallyBatch, context: TxContext, receiver: bytes, ref: PackRef) -> None:
    batch.add(receiver, ref.gtin, context.time_ms, ("received",), 1, b"")


def count_missing(batch: TallyBatch, context: TxContext, source: bytes, ref: PackRef) -> None:
    batch.add(source, ref.gtin, context.time_ms, ("missing",), 0, context.tx_id)


def count_leave(
    state: StateOverlay, batch: TallyBatch, context: TxContext, holder: bytes, found: Pack, *fields: Field
) -> None:
    """``found`` (as it was before this event) leaves ``holder``; if the holder received it,
    the week it was received holds one pack fewer. A pack stolen or lost names the
    transaction as an incident."""
    ref = PackRef(found.gtin, found.serial)
    came = state.get(PackEvent, event_key(ref, found.status_event))
    assert came is not None, "a pack's status event is in its history"
    if came.kind == "receive" and came.organisation == holder:
        batch.add(holder, ref.gtin, came.time_ms, (), -1, b"")
    incident = context.tx_id if "stolen_lost" in fields else b""
    batch.add(holder, ref.gtin, context.time_ms, fields, 0, incident)
