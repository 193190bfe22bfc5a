"""``p2pmed supply prefix``: GS1 company prefixes, granted by a regulator or 2f+1 validators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from p2pmed.cli.signing import ID, load_key, read, read_options, short_id, submit, write_options
from p2pmed.ledger.contracts import supply as supply_rules

__all__ = ["prefix"]


def _prefix_or_gtin(value: str) -> str | None:
    return supply_rules.gtin_problem(value) if len(value) == 14 else supply_rules.prefix_problem(value)


class PrefixCode(click.ParamType[str]):
    name = "PREFIX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        problem = supply_rules.prefix_problem(value)
        if problem is not None:
            self.fail(problem, param, ctx)
        return str(value)


class PrefixOrGtin(click.ParamType[str]):
    name = "PREFIX|GTIN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        problem = _prefix_or_gtin(value)
        if problem is not None:
            self.fail(problem, param, ctx)
        return str(value)


@click.group()
def prefix() -> None:
    """GS1 company prefixes: a manufacturer commissions only GTINs that carry one granted to it."""


@prefix.command("grant")
@write_options
@click.option("--org", "organisation", type=ID, required=True, help="The manufacturer's organisation id.")
@click.option("--prefix", "code", type=PrefixCode(), required=True, help="The GS1 company prefix, 6..12 digits.")
def prefix_grant(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, organisation: bytes, code: str
) -> None:
    """Grant a company prefix to a manufacturer: in force at once if a regulator signs; signed by a
    validator, a vote that takes effect at the 2f+1-th identical one."""
    body = supply_rules.PrefixGrant(organisation, code)
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.prefix.grant", body)


@prefix.command("show")
@read_options
@click.argument("code", type=PrefixOrGtin())
def prefix_show(home: Path, as_json: bool, code: str) -> None:
    """Who holds a company prefix, or the prefix a GTIN-14 carries."""
    read(
        home, as_json, lambda found: f"{found['prefix']}: {short_id(found['organisation'])}", "supply.prefix", code=code
    )
