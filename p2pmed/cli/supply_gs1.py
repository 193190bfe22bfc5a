"""``p2pmed supply prefix`` (GS1 company prefixes, granted by a regulator or 2f+1 validators),
``supply storage`` (a product's storage temperatures), ``supply ti-ts`` (a shipment's DSCSA
transaction information and statement),
``supply export-epcis`` (a pack's or a lot's history as EPCIS 2.0) and ``supply query``
(committed events by pack, lot, GTIN, site and time)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, fail, utc_time
from p2pmed.cli.signing import ID, UtcTime, load_key, read, read_options, short_id, submit, write_options
from p2pmed.ledger.contracts import supply as supply_rules

__all__ = ["export_epcis", "prefix", "query", "storage", "ti_ts"]


def _prefix_or_gtin(value: str) -> str | None:
    return supply_rules.gtin_problem(value) if len(value) == 14 else supply_rules.prefix_problem(value)


class Code(click.ParamType[str]):
    """A GS1 code, refused here in the ledger's words, before the node is asked."""

    def __init__(self, name: str, problem: Callable[[str], str | None]) -> None:
        self.name, self.problem = name, problem

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        problem = self.problem(value)
        if problem is not None:
            self.fail(problem, param, ctx)
        return str(value)


PREFIX = Code("PREFIX", supply_rules.prefix_problem)
PREFIX_OR_GTIN = Code("PREFIX|GTIN", _prefix_or_gtin)
GTIN = Code("GTIN", supply_rules.gtin_problem)


@click.group()
def prefix() -> None:
    """GS1 company prefixes: a manufacturer commissions only GTINs that carry one granted to it."""


@prefix.command("grant")
@write_options
@click.option("--org", "organisation", type=ID, required=True, help="The manufacturer's organisation id.")
@click.option("--prefix", "code", type=PREFIX, required=True, help="The GS1 company prefix, 6..12 digits.")
def prefix_grant(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, organisation: bytes, code: str
) -> None:
    """Grant a company prefix to a manufacturer: in force at once if a regulator signs; signed by a
    validator, a vote that takes effect at the 2f+1-th identical one."""
    body = supply_rules.PrefixGrant(organisation, code)
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.prefix.grant", body)


@prefix.command("revoke")
@write_options
@click.option("--prefix", "code", type=PREFIX, required=True, help="The GS1 company prefix to take back.")
def prefix_revoke(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, code: str) -> None:
    """Take a company prefix back: at once if a regulator signs, else at the 2f+1-th validator's vote.
    Packs already commissioned stay; no new ones are commissioned under it."""
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.prefix.revoke", supply_rules.PrefixRevoke(code))


@prefix.command("show")
@read_options
@click.argument("code", type=PREFIX_OR_GTIN)
def prefix_show(home: Path, as_json: bool, code: str) -> None:
    """Who holds a company prefix, or the prefix a GTIN-14 carries."""
    read(
        home, as_json, lambda found: f"{found['prefix']}: {short_id(found['organisation'])}", "supply.prefix", code=code
    )


class PackOrLot(click.ParamType[tuple[str, str]]):
    """``GTIN:CODE``: a GTIN-14 is digits, so the first colon ends it; a serial or lot may hold colons."""

    def __init__(self, what: str) -> None:
        self.what, self.name = what, f"GTIN:{what.upper()}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        gtin, _, code = value.partition(":")
        problem = supply_rules.gtin_problem(gtin) or supply_rules.code_problem(code, self.what)
        if problem is not None:
            self.fail(f"{value[:80]!r}: {problem}", param, ctx)
        return gtin, code


PACK = PackOrLot("serial")
LOT = PackOrLot("lot")


@click.command("export-epcis")
@read_options
@click.option("--pack", type=PACK, default=None, help="A pack as GTIN:SERIAL.")
@click.option("--lot", type=LOT, default=None, help="Or a lot as GTIN:LOT, all its packs.")
def export_epcis(home: Path, as_json: bool, pack: tuple[str, str] | None, lot: tuple[str, str] | None) -> None:
    """Print a pack's or a lot's history as an EPCIS 2.0 JSON-LD document (import-epcis reads it back)."""
    if (pack is None) == (lot is None):
        fail("give exactly one of --pack GTIN:SERIAL and --lot GTIN:LOT", EXIT_BAD_INPUT)
    chosen = pack or lot
    assert chosen is not None
    gtin, code = chosen
    codes = {"serial": code} if pack else {"lot": code}
    read(home, True, str, "supply.export_epcis", gtin=gtin, **codes)


def human_events(result: dict[str, Any]) -> str:
    lines = [
        f"{utc_time(event['time_ms'])} h{event['height']:<7} {event['kind']:<13} (01){event['gtin']}(21)"
        f"{event['serial']} by {short_id(event['organisation'])}"
        + (f" ↔ {short_id(event['party'])}" if event["party"] else "")
        for event in result["events"]
    ]
    more = " (more not listed: narrow the query or raise --limit)" if result["more"] else ""
    lines.append(f"{len(result['events'])} event{'' if len(result['events']) == 1 else 's'}{more}")
    return "\n".join(lines)


@click.command("query")
@read_options
@click.option("--pack", type=PACK, default=None, help="One pack, as GTIN:SERIAL.")
@click.option("--lot", type=LOT, default=None, help="A lot's packs, as GTIN:LOT.")
@click.option("--gtin", default=None, help="A GTIN's packs.")
@click.option("--site", type=ID, default=None, help="Only events by or with this organisation (its id).")
@click.option("--since", "since_ms", type=UtcTime(), default=None, help="Only events at or after this ledger time.")
@click.option("--until", "until_ms", type=UtcTime(end_of_day=True), default=None, help="Only events until then.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option("--epcis", is_flag=True, help="Print the events as an EPCIS 2.0 JSON-LD document.")
def query(
    home: Path,
    as_json: bool,
    pack: tuple[str, str] | None,
    lot: tuple[str, str] | None,
    gtin: str | None,
    site: bytes | None,
    since_ms: int | None,
    until_ms: int | None,
    limit: int,
    epcis: bool,
) -> None:
    """Committed supply events of one pack, a lot, a GTIN or every pack, by or with a site, in a time
    window (each at most 10,000 packs walked and --limit events answered)."""
    if sum(value is not None for value in (pack, lot, gtin)) > 1:
        fail("give at most one of --pack, --lot and --gtin", EXIT_BAD_INPUT)
    named = pack or lot
    params: dict[str, Any] = {
        "gtin": named[0] if named else gtin,
        "serial": pack[1] if pack else None,
        "lot": lot[1] if lot else None,
        "site": site.hex() if site else None,
        "since_ms": since_ms,
        "until_ms": until_ms,
        "limit": limit,
        "format": "epcis" if epcis else "entries",
    }
    read(home, as_json or epcis, human_events, "supply.query", **params)


@click.command("storage")
@write_options
@click.argument("gtin", type=GTIN)
@click.option("--min", "minimum", type=click.FloatRange(-273.15, 1000), required=True, help="Lowest, in °C.")
@click.option("--max", "maximum", type=click.FloatRange(-273.15, 1000), required=True, help="Highest, in °C.")
def storage(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, gtin: str, minimum: float, maximum: float
) -> None:
    """Declare the temperatures a GTIN's packs are kept between (signed by the holder of its company
    prefix): sensor readings of its shipments outside them raise cold-chain-breach alerts."""
    body = supply_rules.ProductStorage(gtin, round(minimum * 100), round(maximum * 100))
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.product.storage", body)


def human_ti_ts(result: dict[str, Any]) -> str:
    info = result["transaction_information"]
    seller, buyer = info["seller"], info["buyer"]
    lines = [
        f"shipment {result['shipment']}: {seller['name']} ({short_id(seller['id'])}) to {buyer['name']}"
        f" ({short_id(buyer['id'])}), {info['transaction_date']}"
    ]
    lines += [
        f"  GTIN {product['gtin']}{' NDC ' + product['ndc'] if product['ndc'] else ''} lot {product['lot']}"
        f" expiry {product['expiry']}: {product['quantity']} pack{'' if product['quantity'] == 1 else 's'}"
        for product in info["products"]
    ]
    statement = result["transaction_statement"]
    lines.append(f"TS, attested by the seller's signed transaction {short_id(statement['signed_transaction'])}:")
    lines.append(f"  {statement['statement']}")
    return "\n".join(lines)


@click.command("ti-ts")
@read_options
@click.argument("shipment", type=ID)
def ti_ts(home: Path, as_json: bool, shipment: bytes) -> None:
    """Print a shipment's DSCSA transaction information and statement, from the ledger."""
    read(home, as_json, human_ti_ts, "supply.ti_ts", shipment=shipment.hex())
