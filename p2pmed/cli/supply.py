"""The ``p2pmed supply`` commands: drug packs, from commissioning to dispensing, EPCIS
import, tracing, verifying and alerts. Signing, reads, output and exit codes as in
``p2pmed.cli.signing``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, HOME_OPTION, JSON_OPTION, emit, fail, node, utc_time
from p2pmed.cli.signing import (
    ID,
    KEY_OPTION,
    TIMEOUT_OPTION,
    NamedParty,
    load_key,
    read,
    read_options,
    refuse_if_rejected,
    short_id,
    submit,
    submit_each,
    submit_signed,
    write_options,
)
from p2pmed.cli.supply_clock import clock
from p2pmed.cli.supply_gs1 import export_epcis, prefix, query, storage, ti_ts
from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts import supply as supply_rules
from p2pmed.rpc.client import RpcClient
from p2pmed.rpc.errors import RpcError

__all__ = ["SUPPLY_COMMANDS"]


# -- parameter types ---------------------------------------------------------------------


class Gs1Code(click.ParamType[str]):
    """A GTIN, lot, serial or expiry, refused here in the ledger's words, before the node is asked."""

    def __init__(self, name: str, problem: Callable[[str], str | None]) -> None:
        self.name, self.problem = name, problem

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        problem = self.problem(value)
        if problem is not None:
            self.fail(problem, param, ctx)
        return str(value)


class PackCode(click.ParamType[supply_rules.PackRef]):
    """A pack as ``GTIN:SERIAL``. A GTIN-14 is digits, so the first colon ends it; a serial may hold colons."""

    name = "GTIN:SERIAL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> supply_rules.PackRef:
        if isinstance(value, supply_rules.PackRef):
            return value
        gtin, _, serial = value.partition(":")
        problem = supply_rules.gtin_problem(gtin) or supply_rules.code_problem(serial, "serial")
        if problem is not None:
            self.fail(f"{value[:80]!r}: {problem}", param, ctx)
        return supply_rules.PackRef(gtin, serial)


GTIN = Gs1Code("GTIN", supply_rules.gtin_problem)
LOT = Gs1Code("LOT", lambda code: supply_rules.code_problem(code, "lot"))
SERIAL = Gs1Code("SERIAL", lambda code: supply_rules.code_problem(code, "serial"))
EXPIRY = Gs1Code("YYYY-MM-DD", supply_rules.expiry_problem)
SSCC = Gs1Code("SSCC", supply_rules.sscc_problem)
PACK = PackCode()
PACKS_OPTION = click.option(
    "--pack", "packs", type=PACK, multiple=True, required=True, help="A pack as GTIN:SERIAL; repeat for several."
)
LOOSE_PACKS_OPTION = click.option(
    "--pack", "packs", type=PACK, multiple=True, help="A loose pack as GTIN:SERIAL; repeat for several."
)
CONTAINERS_OPTION = click.option(
    "--container",
    "containers",
    type=SSCC,
    multiple=True,
    help="A container (case, pallet) by its SSCC-18, with all it holds; repeat for several.",
)


# -- human output -----------------------------------------------------------------------------


def human_trace(result: dict[str, Any]) -> str:
    pack = result["pack"]
    head = (
        f"pack (01){result['gtin']}(21){result['serial']}: never commissioned"
        if pack is None
        else f"pack (01){result['gtin']}(21){result['serial']}: {pack['status']}, lot {pack['lot']}, "
        f"held by {short_id(pack['holder'])}"
    )
    lines = [head]
    for event in result["events"]:
        party = f" ↔ {short_id(event['party'])}" if event["party"] else ""
        lines.append(
            f"  {utc_time(event['time_ms'])} h{event['height']:<7} {event['kind']:<13} by "
            f"{short_id(event['organisation'])}{party}  {event['detail']}"
        )
    return "\n".join(lines)


def human_verdict(result: dict[str, Any]) -> str:
    return f"{'OK' if result['dispensable'] else 'DO NOT DISPENSE'}: {result['status']}\n  {result['message']}"


def human_lot(result: dict[str, Any]) -> str:
    recall = result["recall"]
    state = f"RECALLED ({recall['reason']}) at height {recall['height']}" if recall else "not recalled"
    lines = [f"lot {result['lot']} of GTIN {result['gtin']}, expiry {result['expiry']}, {state}"]
    lines += [f"  {row['count']:>6} {row['status']:<15} held by {short_id(row['holder'])}" for row in result["holders"]]
    more = " (more not listed: raise --limit)" if result["more"] else ""
    lines.append(f"{len(result['packs'])} pack{'' if len(result['packs']) == 1 else 's'}{more}")
    return "\n".join(lines)


def human_alerts(result: dict[str, Any]) -> str:
    lines = [
        f"#{alert['index']} {utc_time(alert['time_ms'])} {alert['kind']}: (01){alert['gtin']}(21){alert['serial']}"
        f" by {short_id(alert['organisation'])}  {alert['detail']}"
        for alert in result["alerts"]
    ]
    lines.append(f"{result['count']} alert{'' if result['count'] == 1 else 's'} in all")
    return "\n".join(lines)


# -- supply ------------------------------------------------------------------------------------------


@click.group()
def supply() -> None:
    """Drug packs: commission, ship, receive, dispense, decommission, recall and scan them (signed
    by the organisation that acts), import EPCIS events, trace a pack, verify one, read the alerts."""


@supply.command("trace")
@read_options
@click.argument("gtin")
@click.argument("serial")
def supply_trace(home: Path, as_json: bool, gtin: str, serial: str) -> None:
    """Show a pack's history, from commissioning to dispensing."""
    read(home, as_json, human_trace, "supply.trace", gtin=gtin, serial=serial)


@supply.command("lot")
@read_options
@click.argument("gtin")
@click.argument("lot")
@click.option("--limit", type=click.IntRange(1, 10_000), default=1000, show_default=True, help="Packs to list at most.")
def supply_lot(home: Path, as_json: bool, gtin: str, lot: str, limit: int) -> None:
    """Show a lot's packs and where they are now: who holds how many, in which state (a recall's reach)."""
    read(home, as_json, human_lot, "supply.lot", gtin=gtin, lot=lot, limit=limit)


@supply.command("verify")
@read_options
@click.argument("gtin")
@click.argument("serial")
@click.option(
    "--at", "organisation", type=ID, default=None, help="The organisation about to dispense it [default: its holder]."
)
@click.option("--lot", default=None, help="The lot printed on the pack (AI 10): must be the one commissioned.")
@click.option("--expiry", default=None, help="The expiry printed on the pack (AI 17), YYYY-MM-DD.")
def supply_verify(
    home: Path, as_json: bool, gtin: str, serial: str, organisation: bytes | None, lot: str | None, expiry: str | None
) -> None:
    """Is the pack genuine and dispensable now? With --lot and --expiry, all four elements of
    its DSCSA product identifier are checked. Exit 1 if not. Nothing is recorded: a scan on
    the ledger is a supply.verify transaction (supply scan)."""
    with node(home) as client:
        result = client.call(
            "supply.verify",
            gtin=gtin,
            serial=serial,
            organisation=organisation.hex() if organisation else None,
            lot=lot,
            expiry=expiry,
        )
    emit(result, as_json, human_verdict)
    if not result["dispensable"]:
        sys.exit(EXIT_FAILURE)


@supply.command("alerts")
@read_options
@click.option("--start", type=click.IntRange(0), default=0, show_default=True, help="The first alert to show.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def supply_alerts(home: Path, as_json: bool, start: int, limit: int) -> None:
    """Show supply alerts (suspect counterfeits, packs missing in transit, ...) in the order raised."""
    read(home, as_json, human_alerts, "supply.alerts", start=start, limit=limit)


@supply.command("commission")
@write_options
@click.option("--gtin", type=GTIN, required=True, help="The GTIN-14 (the first manufacturer to commission it owns it).")
@click.option("--lot", type=LOT, required=True)
@click.option(
    "--expiry",
    type=EXPIRY,
    required=True,
    help="The lot's expiry date: its packs are dispensed through that day (UTC).",
)
@click.option(
    "--serial",
    "serials",
    type=SERIAL,
    multiple=True,
    required=True,
    help="A serial number; repeat for several (at most 1000).",
)
def supply_commission(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    gtin: str,
    lot: str,
    expiry: str,
    serials: tuple[str, ...],
) -> None:
    """Commission serialised packs of one GTIN and lot, signed by the manufacturer, which then holds them."""
    submit(
        home,
        as_json,
        load_key(key_file),
        wait,
        timeout,
        "supply.commission",
        supply_rules.SupplyCommission(gtin, lot, expiry, serials),
    )


@supply.command("ship")
@write_options
@click.option("--to", "destination", type=ID, required=True, help="The receiving organisation's key.")
@LOOSE_PACKS_OPTION
@CONTAINERS_OPTION
def supply_ship(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    destination: bytes,
    packs: tuple[supply_rules.PackRef, ...],
    containers: tuple[str, ...],
) -> None:
    """Ship loose packs and whole containers the signer holds to another organisation. The
    transaction's id is the shipment's id, which the destination gives to supply receive."""
    if not packs and not containers:
        fail("name what to ship: --pack GTIN:SERIAL or --container SSCC (repeatable)", EXIT_BAD_INPUT)
    body = supply_rules.SupplyShip(destination, packs, containers)
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.ship", body)


@supply.command("receive")
@write_options
@click.option("--shipment", type=ID, required=True, help="The shipment's id: its supply.ship transaction's id.")
@click.option("--pack", "packs", type=PACK, multiple=True, help="A pack that arrived, as GTIN:SERIAL; repeat.")
@click.option(
    "--missing",
    type=PACK,
    multiple=True,
    help="A pack of the shipment that did not arrive; repeat. Each raises an alert.",
)
@CONTAINERS_OPTION
@click.option(
    "--missing-container",
    "missing_containers",
    type=SSCC,
    multiple=True,
    help="A container of the shipment that did not arrive; repeat. Each pack in it raises an alert.",
)
def supply_receive(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    shipment: bytes,
    packs: tuple[supply_rules.PackRef, ...],
    missing: tuple[supply_rules.PackRef, ...],
    containers: tuple[str, ...],
    missing_containers: tuple[str, ...],
) -> None:
    """Receive a shipment, signed by its destination, once. Every loose pack and container of
    it is listed, as arrived or missing: a shortfall is declared, never implied."""
    if not (packs or missing or containers or missing_containers):
        fail(
            "list the shipment: --pack or --container for what arrived, --missing or --missing-container for what"
            " did not",
            EXIT_BAD_INPUT,
        )
    body = supply_rules.SupplyReceive(shipment, packs, missing, containers, missing_containers)
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.receive", body)


@supply.command("aggregate")
@write_options
@click.option("--into", "parent", type=SSCC, required=True, help="The container's SSCC-18: opened if new.")
@LOOSE_PACKS_OPTION
@CONTAINERS_OPTION
def supply_aggregate(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    parent: str,
    packs: tuple[supply_rules.PackRef, ...],
    containers: tuple[str, ...],
) -> None:
    """Pack loose packs and containers the signer holds into a container (a case, a pallet).
    A packed pack moves only with its container until it is taken out."""
    if not packs and not containers:
        fail("name what to pack: --pack GTIN:SERIAL or --container SSCC (repeatable)", EXIT_BAD_INPUT)
    body = supply_rules.SupplyAggregate(parent, packs, containers)
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.aggregate", body)


@supply.command("disaggregate")
@write_options
@click.option("--from", "parent", type=SSCC, required=True, help="The container's SSCC-18.")
@LOOSE_PACKS_OPTION
@CONTAINERS_OPTION
@click.option("--all", "everything", is_flag=True, help="Take everything out: the container is then retired.")
def supply_disaggregate(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    parent: str,
    packs: tuple[supply_rules.PackRef, ...],
    containers: tuple[str, ...],
    everything: bool,
) -> None:
    """Take packs and containers out of a container the signer holds; an emptied SSCC is not reused."""
    if everything == bool(packs or containers):
        fail("give either --all or what to take out (--pack, --container)", EXIT_BAD_INPUT)
    body = supply_rules.SupplyDisaggregate(parent, packs, containers)
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.disaggregate", body)


def human_container(result: dict[str, Any]) -> str:
    found = result["container"]
    inside = f", in {found['parent']}" if found["parent"] else ""
    lines = [
        f"container (00){found['sscc']}: {found['status']}, held by {short_id(found['holder'])}{inside};"
        f" {len(result['packs'])} pack{'' if len(result['packs']) == 1 else 's'},"
        f" {len(result['containers'])} container{'' if len(result['containers']) == 1 else 's'} inside"
    ]
    for event in result["history"]:
        party = f" ↔ {short_id(event['party'])}" if event["party"] else ""
        children = len(event["packs"]) + len(event["containers"])
        listed = f"  {children} item{'' if children == 1 else 's'}" if children else ""
        lines.append(
            f"  {utc_time(event['time_ms'])} h{event['height']:<7} {event['kind']:<13} by "
            f"{short_id(event['organisation'])}{party}{listed}"
        )
    return "\n".join(lines)


@supply.command("container")
@read_options
@click.argument("sscc", type=SSCC)
@click.option("--epcis", is_flag=True, help="Print its aggregation history as an EPCIS 2.0 JSON-LD document.")
def supply_container(home: Path, as_json: bool, sscc: str, epcis: bool) -> None:
    """Show a container (by SSCC-18): who holds it, what is in it at every depth, its history."""
    output = "epcis" if epcis else "entries"
    read(home, as_json or epcis, human_container, "supply.container", sscc=sscc, format=output)


@supply.command("dispense")
@write_options
@PACKS_OPTION
def supply_dispense(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, packs: tuple[supply_rules.PackRef, ...]
) -> None:
    """Dispense packs the signer holds (a pharmacy or hospital). The patient is not named:
    who takes what stays at the pharmacy."""
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.dispense", supply_rules.SupplyDispense(packs))


@supply.command("decommission")
@write_options
@PACKS_OPTION
@click.option("--reason", type=click.Choice(sorted(supply_rules.DECOMMISSION_REASONS)), required=True)
def supply_decommission(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    packs: tuple[supply_rules.PackRef, ...],
    reason: str,
) -> None:
    """Take packs the signer holds out of circulation."""
    submit(
        home,
        as_json,
        load_key(key_file),
        wait,
        timeout,
        "supply.decommission",
        supply_rules.SupplyDecommission(packs, reason),
    )


@supply.command("recall")
@write_options
@click.option("--gtin", type=GTIN, required=True)
@click.option("--lot", type=LOT, default=None, help="Recall this whole lot.")
@click.option("--serial", "serials", type=SERIAL, multiple=True, help="Or these serials; repeat.")
@click.option("--reason", required=True, help="Why, in words a pharmacist reads when a recalled pack is scanned.")
def supply_recall(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    gtin: str,
    lot: str | None,
    serials: tuple[str, ...],
    reason: str,
) -> None:
    """Recall a lot or listed serials, signed by the GTIN's manufacturer. Recalled packs are
    never dispensed and ship only back to their manufacturer."""
    if (lot is None) == (not serials):
        fail("give exactly one of --lot LOT and --serial SERIAL (repeatable)", EXIT_BAD_INPUT)
    submit(
        home,
        as_json,
        load_key(key_file),
        wait,
        timeout,
        "supply.recall",
        supply_rules.SupplyRecall(gtin, lot, serials, reason),
    )


@supply.command("scan")
@write_options
@click.argument("pack", type=PACK)
@click.option("--lot", required=True, help="The lot printed on the pack (AI 10).")
@click.option("--expiry", required=True, help="The expiry printed on the pack (AI 17), YYYY-MM-DD.")
def supply_scan(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    pack: supply_rules.PackRef,
    lot: str,
    expiry: str,
) -> None:
    """Record a scan of PACK (GTIN:SERIAL, with the lot and expiry printed on it: the four
    elements of its DSCSA product identifier) on the ledger, with its verdict at the block's
    time: an alarming one (an unknown serial is a suspect counterfeit, a lot or expiry other
    than commissioned a copied serial) raises an alert. To ask without recording, use supply verify."""
    submit(
        home,
        as_json,
        load_key(key_file),
        wait,
        timeout,
        "supply.verify",
        supply_rules.SupplyVerify(pack.gtin, pack.serial, lot, expiry),
    )


def _shipment_on_ledger(client: RpcClient) -> Callable[[supply_rules.PackRef | str], bytes | None]:
    """The EPCIS import's lookup of the shipment a pack (``supply.trace``) or a container (by SSCC,
    ``supply.container``) is in transit in."""

    def shipment_of(item: supply_rules.PackRef | str) -> bytes | None:
        if isinstance(item, str):
            try:
                found = client.call("supply.container", sscc=item)["container"]
            except RpcError:
                return None
        else:
            found = client.call("supply.trace", gtin=item.gtin, serial=item.serial)["pack"]
        return bytes.fromhex(found["shipment"]) if found is not None and found["shipment"] else None

    return shipment_of


@supply.command("import-epcis")
@HOME_OPTION
@JSON_OPTION
@KEY_OPTION
@TIMEOUT_OPTION
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--party",
    "parties",
    type=NamedParty(),
    multiple=True,
    metavar="ID=HEX",
    help="Map an id of a shipping event's destinationList or bizTransactionList, or of a receiving event's"
    " bizLocation or readPoint (a GLN URI, an order's URI), to an organisation id; repeat.",
)
@click.option(
    "--receiver-key",
    "receiver_key_files",
    type=click.Path(path_type=Path, dir_okay=False),
    multiple=True,
    help="The key of an organisation that receives, in this document, a shipment the document ships; repeat.",
)
def supply_import_epcis(
    home: Path,
    as_json: bool,
    key_file: Path,
    timeout: float,
    file: Path,
    parties: tuple[tuple[str, bytes], ...],
    receiver_key_files: tuple[Path, ...],
) -> None:
    """Import an EPCIS 2.0 JSON(-LD) or EPCIS 1.2 XML document of the signer's own events: ObjectEvents (commissioning,
    shipping, receiving, dispensing, decommissioning) and AggregationEvents become custody
    transactions, any other event is kept as a supply.epcis.record; each is one or more
    supply transactions, submitted in order, each waited for. The first refusal stops the
    import, naming its event; the transactions before it stay committed. A receipt of a
    shipment the same document ships is signed by its destination (--receiver-key); any
    other receipt is of the shipment its packs are in transit in on the ledger."""
    from p2pmed.interop.epcis import DOCUMENT_SIZE_MAX, EpcisError, import_epcis
    from p2pmed.interop.epcis_xml import import_epcis_xml, is_xml

    key = load_key(key_file)
    try:
        with file.open("rb") as source:
            data = source.read(DOCUMENT_SIZE_MAX + 1)
    except OSError as error:
        fail(f"{file}: {error.strerror}", EXIT_BAD_INPUT)
    with node(home) as client:
        try:
            read_document = import_epcis_xml if is_xml(data) else import_epcis
            txs = read_document(data, dict(parties), _shipment_on_ledger(client))
        except EpcisError as error:
            fail(f"{file}: {error}", EXIT_BAD_INPUT)
        signers = _signers(client, key, [load_key(path) for path in receiver_key_files], txs)
        results: list[dict[str, Any]] = []
        for tx, signer in zip(txs, signers, strict=True):
            if tx.shipment_from is not None:
                tx = tx.with_shipment(bytes.fromhex(results[tx.shipment_from]["tx_id"]))
            result = submit_signed(client, signer, tx.tx_type, tx.body, True, timeout, where=tx.event)
            refuse_if_rejected(result, tx.tx_type, where=tx.event)
            results.append({"event": tx.event, **result})
            if not as_json:
                click.echo(f"{tx.event}  {tx.tx_type} {result['tx_id']} committed at height {result['height']}")
    emit(results, as_json, lambda done: f"{len(done)} transaction{'' if len(done) == 1 else 's'} from {file} committed")


def _signers(client: RpcClient, key: SigningKey, receiver_keys: list[SigningKey], txs: list[Any]) -> list[SigningKey]:
    """Who signs each imported transaction: ``key`` (a shipment's sensor report too: its shipper may
    sign it), but the receipts of the document's own shipments,
    which their destinations sign. Exits 2 before anything is submitted if a destination's key is missing."""
    by_organisation: dict[bytes, SigningKey] = {}
    for receiver in receiver_keys:
        try:
            found = client.call("identity.organisation", key=receiver.public_key.hex())
        except RpcError:
            fail(f"--receiver-key {receiver.public_key.hex()[:16]}… is no organisation's key", EXIT_BAD_INPUT)
        by_organisation[bytes.fromhex(found["id"])] = receiver
    signers = []
    for tx in txs:
        if tx.shipment_from is None or tx.tx_type != "supply.receive":
            signers.append(key)
            continue
        destination = txs[tx.shipment_from].body.destination
        if destination not in by_organisation:
            fail(
                f"{tx.event}: receives the document's shipment to {destination.hex()[:16]}…: give its key with"
                " --receiver-key",
                EXIT_BAD_INPUT,
            )
        signers.append(by_organisation[destination])
    return signers


@supply.group("suspect")
def suspect() -> None:
    """Suspect products: quarantine packs, investigate, clear them or find them illegitimate,
    and record the notice to FDA and trading partners (due within 24 hours)."""


CASE_ARGUMENT = click.argument("case", type=ID)


def human_case(case: dict[str, Any]) -> str:
    due = (
        f", {case['overdue']} OVERDUE"
        if case["overdue"]
        else (f", next due {utc_time(case['due_ms'])}" if case["due_ms"] else "")
    )
    head = (
        f"case {case['id']}: {case['status']}{due}, {len(case['packs'])} pack{'' if len(case['packs']) == 1 else 's'}"
    )
    lines = [
        head,
        f"  quarantined {utc_time(case['quarantined']['time_ms'])} by {short_id(case['organisation'])}:"
        f" {case['reason']}",
    ]
    for step in ("investigated", "determined", "notified"):
        if case[step]:
            late = " (late)" if case[step]["late"] else ""
            lines.append(f"  {step} {utc_time(case[step]['time_ms'])}{late}")
    return "\n".join(lines)


@suspect.command("quarantine")
@write_options
@PACKS_OPTION
@click.option("--reason", required=True, help="Why the packs are suspect.")
def suspect_quarantine(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    packs: tuple[supply_rules.PackRef, ...],
    reason: str,
) -> None:
    """Quarantine loose packs the signer holds; the transaction's id is the case's id."""
    submit(
        home,
        as_json,
        load_key(key_file),
        wait,
        timeout,
        "supply.suspect.quarantine",
        supply_rules.SuspectQuarantine(packs, reason),
    )


@suspect.command("investigate")
@write_options
@CASE_ARGUMENT
def suspect_investigate(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, case: bytes) -> None:
    """Start investigating a quarantined case (due a day after the quarantine)."""
    submit(
        home,
        as_json,
        load_key(key_file),
        wait,
        timeout,
        "supply.suspect.investigate",
        supply_rules.SuspectInvestigate(case),
    )


@suspect.command("clear")
@write_options
@CASE_ARGUMENT
@click.option("--reason", required=True, help="Why the packs are legitimate after all.")
def suspect_clear(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, case: bytes, reason: str
) -> None:
    """Clear a case under investigation: its packs leave quarantine."""
    submit(
        home,
        as_json,
        load_key(key_file),
        wait,
        timeout,
        "supply.suspect.clear",
        supply_rules.SuspectClear(case, reason),
    )


@suspect.command("illegitimate")
@write_options
@CASE_ARGUMENT
@click.option("--classification", type=click.Choice(supply_rules.CLASSIFICATIONS), required=True)
@click.option("--description", required=True, help="What made the product illegitimate (Form 3911 field 17).")
def suspect_illegitimate(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    case: bytes,
    classification: str,
    description: str,
) -> None:
    """Determine a case's packs illegitimate: FDA and trading partners are due notice within 24 hours."""
    body = supply_rules.SuspectIllegitimate(case, classification, description)
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.suspect.illegitimate", body)


@suspect.command("notify")
@write_options
@CASE_ARGUMENT
@click.option("--partner", "partners", type=ID, multiple=True, required=True, help="A trading partner told; repeat.")
def suspect_notify(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, case: bytes, partners: tuple[bytes, ...]
) -> None:
    """Record that FDA and the trading partners were told of an illegitimate case."""
    submit(
        home,
        as_json,
        load_key(key_file),
        wait,
        timeout,
        "supply.suspect.notify",
        supply_rules.SuspectNotify(case, partners),
    )


@suspect.command("show")
@read_options
@CASE_ARGUMENT
@click.option("--form-3911", "form", is_flag=True, help="Print the case's Form FDA 3911 fields as JSON.")
def suspect_show(home: Path, as_json: bool, case: bytes, form: bool) -> None:
    """Show a suspect case and its overdue step, if any (ledger time)."""
    if form:
        read(home, True, human_case, "supply.form3911", case=case.hex())
        return
    read(home, as_json, human_case, "supply.suspect", case=case.hex())


@suspect.command("list")
@read_options
@click.option("--start", type=click.IntRange(0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def suspect_list(home: Path, as_json: bool, start: int, limit: int) -> None:
    """List suspect cases in the order opened, overdue steps marked."""
    read(
        home,
        as_json,
        lambda result: "\n".join(
            [*map(human_case, result["cases"]), f"{result['count']} case{'' if result['count'] == 1 else 's'} in all"]
        ),
        "supply.suspects",
        start=start,
        limit=limit,
    )


# -- diversion flags ------------------------------------------------------------------------------


def human_flag(flag: dict[str, Any]) -> str:
    subject, evidence = flag["subject"], flag["evidence"]
    schedule = f", schedule {evidence['schedule']}" if evidence["schedule"] else ""
    lines = [
        f"flag {flag['id']}: {flag['status']}, {subject['rule']} at {short_id(subject['site'])},"
        f" product {subject['product']}{schedule}",
        f"  {evidence['summary']}",
        f"  raised {utc_time(flag['raised']['time_ms'])} by {short_id(flag['raised']['by'])}",
    ]
    for step in ("reviewed", "closed"):
        if flag[step]:
            lines.append(f"  {step} {utc_time(flag[step]['time_ms'])} by {short_id(flag[step]['by'])}")
    if flag["finding"]:
        lines.append(f"  finding: {flag['finding']}: {flag['note']}")
    return "\n".join(lines)


@supply.command("flags")
@read_options
@click.option("--start", type=click.IntRange(0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def supply_flags(home: Path, as_json: bool, start: int, limit: int) -> None:
    """List diversion flags in the order raised, with their evidence."""
    read(
        home,
        as_json,
        lambda result: "\n".join(
            [*map(human_flag, result["flags"]), f"{result['count']} flag{'' if result['count'] == 1 else 's'} in all"]
        ),
        "supply.flags",
        start=start,
        limit=limit,
    )


@supply.group("flag")
def flag() -> None:
    """Diversion flags: raise those the counts support (validators, regulators), review and close them."""


FLAG_ARGUMENT = click.argument("flag_id", metavar="FLAG", type=ID)


@flag.command("show")
@read_options
@FLAG_ARGUMENT
def flag_show(home: Path, as_json: bool, flag_id: bytes) -> None:
    """Show a flag: its subject, evidence and lifecycle."""
    read(home, as_json, human_flag, "supply.flag", flag=flag_id.hex())


@flag.command("scan")
@write_options
@click.option("--weeks-back", type=click.IntRange(1, 12), default=1, show_default=True)
def flag_scan(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, weeks_back: int) -> None:
    """Find the subjects whose evidence holds at ledger time and raise a flag for each (one per
    rule, site and product); the ledger recomputes every one."""
    key = load_key(key_file)
    with node(home) as client:
        found = client.call("supply.flag_candidates", weeks_back=weeks_back)["candidates"]
        topics, txs = set(), []
        for candidate in found:
            subject = candidate["subject"]
            topic = (subject["rule"], subject["site"], subject["product"], subject["shipment"])
            if topic not in topics:
                topics.add(topic)
                body = supply_rules.FlagRaise(
                    supply_rules.FlagSubject(
                        subject["rule"],
                        bytes.fromhex(subject["site"]),
                        subject["product"],
                        subject["week"],
                        bytes.fromhex(subject["shipment"]),
                    )
                )
                txs.append(("supply.flag.raise", body, candidate["evidence"]["summary"]))
        results = submit_each(client, key, txs, timeout, as_json, source="evidence")
    emit(results, as_json, lambda done: f"{len(done)} flag{'' if len(done) == 1 else 's'} raised")


@flag.command("review")
@write_options
@FLAG_ARGUMENT
def flag_review(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, flag_id: bytes) -> None:
    """Take an open flag under review (a validator or a regulator that is not a party to it)."""
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.flag.review", supply_rules.FlagReview(flag_id))


@flag.command("close")
@write_options
@FLAG_ARGUMENT
@click.option("--finding", type=click.Choice(supply_rules.FINDINGS), required=True)
@click.option("--note", required=True, help="What the review found (no patient data).")
def flag_close(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, flag_id: bytes, finding: str, note: str
) -> None:
    """Close a flag under review with a finding."""
    body = supply_rules.FlagClose(flag_id, finding, note)
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.flag.close", body)


@supply.command("schedule")
@write_options
@click.argument("gtin", type=GTIN)
@click.argument("schedule", type=click.Choice(supply_rules.SCHEDULES))
def supply_schedule(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, gtin: str, schedule: str
) -> None:
    """Declare a GTIN you make a controlled substance (DEA schedule): its signals get stricter."""
    body = supply_rules.ProductSchedule(gtin, schedule)
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.product.schedule", body)


for command in (prefix, clock, export_epcis, query, storage, ti_ts):
    supply.add_command(command)
SUPPLY_COMMANDS = [supply]
