"""The demo's supply-chain scene, after the manufacturer's first packs: a pallet shipped as one
unit, a suspect product found and quarantined, and a diversion flag raised and reviewed.

Flags are raised on complete weeks of the signals. Before the first supply event, the demo's
validators vote its chain a week of ``SIGNAL_WEEK_MS`` (``vote_signal_week``; production keeps
7 days), so 12c waits for one to close, and a validator raises a real flag that every node
recomputes. It runs on the demo's live network through one node's RPC socket, every transaction
signed by the party that acts and waited for (``p2pmed.client.records.submit``): about fifteen
blocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from p2pmed.client.records import submit
from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts.supply import (
    FlagRaise,
    FlagReview,
    FlagSubject,
    PackRef,
    SignalClock,
    SupplyAggregate,
    SupplyCommission,
    SupplyReceive,
    SupplyShip,
    SupplyVerify,
    SuspectQuarantine,
    gs1_check_digit,
)
from p2pmed.rpc.client import RpcClient

__all__ = ["SIGNAL_WEEK_MS", "supply_scene", "vote_signal_week"]

LOT, EXPIRY = "LOT-8", "2031-12-31"
SIGNAL_WEEK_MS = 2_000
"""Short enough that 12c waits at most 2 s for its week to close; long enough that the shipment
and the receipt declaring its packs missing (two blocks) fall in the 4 weeks the transit-loss
rule reads."""


def vote_signal_week(node: RpcClient, validators: list[SigningKey]) -> None:
    """2f+1 ``validators`` set the demo chain's signal week, before anything is counted in weeks."""
    for validator in validators:
        submit(node, validator, "supply.signals.clock", SignalClock(SIGNAL_WEEK_MS))


def _sscc(company_prefix: str, serial_reference: int) -> str:
    digits = f"0{company_prefix}{serial_reference:0{16 - len(company_prefix)}d}"
    return digits + gs1_check_digit(digits)


def supply_scene(
    node: RpcClient,
    manufacturer: SigningKey,
    gtin: str,
    distributor: SigningKey,
    pharmacy: SigningKey,
    overseers: tuple[tuple[str, SigningKey], tuple[str, SigningKey]],
    out: Callable[[str], None],
) -> None:
    """Print lines 12a-12d of the demo; ``gtin`` carries the manufacturer's company prefix. The
    first of ``overseers`` (named validators, neither the distributor) raises the flag, the
    second reviews it."""
    packs = tuple(PackRef(gtin, f"PAL{serial:03d}") for serial in range(12))
    case, pallet = _sscc(gtin[1:8], 1), _sscc(gtin[1:8], 2)
    submit(node, manufacturer, "supply.commission", SupplyCommission(gtin, LOT, EXPIRY, tuple(p.serial for p in packs)))
    submit(node, manufacturer, "supply.aggregate", SupplyAggregate(case, packs[:6], ()))
    submit(node, manufacturer, "supply.aggregate", SupplyAggregate(pallet, (), (case,)))
    loose = packs[6:]
    shipped = submit(node, manufacturer, "supply.ship", SupplyShip(distributor.public_key, loose, (pallet,)))
    shipment = bytes.fromhex(shipped["tx_id"])
    submit(node, distributor, "supply.receive", SupplyReceive(shipment, loose, (), (pallet,)))
    inside = node.call("supply.container", sscc=pallet)
    ship = next(
        e for e in node.call("supply.trace", gtin=gtin, serial=packs[0].serial)["events"] if e["kind"] == "ship"
    )
    out(
        f"12a. the manufacturer packs 6 packs into case (00){case} and the case onto pallet (00){pallet}, and ships"
        f" the pallet as one unit with 6 loose packs; the distributor receives it: the pallet holds"
        f" {len(inside['packs'])} packs, each moved with it ({ship['detail']})"
    )

    suspect = loose[0]
    submit(node, distributor, "supply.verify", SupplyVerify(gtin, suspect.serial, LOT, "2032-06-30"))
    scanned = node.call("supply.alerts", start=node.call("supply.alerts")["count"] - 1)["alerts"][0]
    case_id = submit(node, distributor, "supply.suspect.quarantine", SuspectQuarantine((suspect,), "expiry misprinted"))
    verdict = node.call("supply.verify", gtin=gtin, serial=suspect.serial)
    out(
        f"12b. the distributor scans pack {suspect.serial}: its printed expiry is not the one commissioned, a"
        f" {scanned['kind']} alert; it quarantines the pack (case {case_id['tx_id'][:16]}…), and a scan now says:"
        f" {verdict['status']}"
    )

    onward = loose[1:]
    sent = submit(node, distributor, "supply.ship", SupplyShip(pharmacy.public_key, onward))
    submit(node, pharmacy, "supply.receive", SupplyReceive(bytes.fromhex(sent["tx_id"]), (), onward))
    missing = node.call("supply.alerts", start=node.call("supply.alerts")["count"] - len(onward))["alerts"]
    flag = _raise_transit_loss(node, gtin, onward[0], overseers[0][1])
    evidence = flag["evidence"]
    out(
        f"12c. the distributor ships the other {len(onward)} loose packs to the pharmacy, which reports all of them"
        f" missing on arrival ({len(missing)} {missing[0]['kind']} alerts); the chain's {SIGNAL_WEEK_MS // 1000}-s"
        f" signal week closes, the {overseers[0][0]}'s validator scans and raises a {flag['subject']['rule']} flag"
        f" against the distributor (block {flag['raised']['height']}), and every node recomputed its evidence:"
        f" {evidence['summary']} (incidents: {', '.join(tx[:16] + '…' for tx in evidence['incidents'])})"
    )
    submit(node, overseers[1][1], "supply.flag.review", FlagReview(bytes.fromhex(flag["id"])))
    reviewed = node.call("supply.flag", flag=flag["id"])
    out(
        f"12d. the {overseers[1][0]}'s validator takes flag {flag['id'][:16]}… under review: it is"
        f" {reviewed['status']} (raised at block {reviewed['raised']['height']}, reviewed at block"
        f" {reviewed['reviewed']['height']}); a regulator or validator closes it with a finding"
    )


def _raise_transit_loss(node: RpcClient, gtin: str, lost: PackRef, validator: SigningKey) -> dict[str, Any]:
    """Wait for the week the packs were declared missing in to close, then raise the flag a
    validator's scan finds then (``supply.flag_candidates`` at that time); returns it as committed."""
    declared_ms = node.call("supply.trace", gtin=gtin, serial=lost.serial)["events"][-1]["time_ms"]
    closes_ms = (declared_ms // SIGNAL_WEEK_MS + 1) * SIGNAL_WEEK_MS
    # The nodes date blocks by this host's clock, so the raise's block is dated after the week closed.
    time.sleep(max(closes_ms - time.time() * 1000, 0) / 1000)
    candidates = node.call("supply.flag_candidates", at_ms=closes_ms)["candidates"]
    subject = next(c["subject"] for c in candidates if c["subject"]["rule"] == "transit-loss")
    body = FlagRaise(FlagSubject(subject["rule"], bytes.fromhex(subject["site"]), subject["product"], subject["week"]))
    raised = submit(node, validator, "supply.flag.raise", body)
    return dict(node.call("supply.flag", flag=raised["tx_id"]))
