"""``p2pmed supply clock``: the length of the diversion signals' week on this chain, 7 days
unless 2f+1 validators voted a shorter one before anything was counted (a demo or test chain)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from p2pmed.cli.signing import load_key, read, read_options, submit, write_options
from p2pmed.ledger.contracts import supply as supply_rules

__all__ = ["clock"]


@click.group()
def clock() -> None:
    """The diversion signals' week: voted once, by the validators, on a chain that has counted nothing."""


@clock.command("vote")
@write_options
@click.option(
    "--week-ms",
    type=click.IntRange(supply_rules.WEEK_MS_MIN, supply_rules.WEEK_MS_MAX),
    required=True,
    help="The week's length in milliseconds: 1000 (a demo chain) up to 604800000 (7 days).",
)
def clock_vote(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, week_ms: int) -> None:
    """A validator's vote for the signals' week: set at the 2f+1-th identical vote, and refused
    once it is set or once any supply event was counted."""
    submit(home, as_json, load_key(key_file), wait, timeout, "supply.signals.clock", supply_rules.SignalClock(week_ms))


def human_week(found: dict[str, Any]) -> str:
    how = "voted by the validators" if found["voted"] else "the default"
    fixed = f"fixed: {found['fixed']}" if found["fixed"] else "still open to a 2f+1 vote"
    return f"signals' week: {found['week_ms']} ms ({how}); {fixed}"


@clock.command("show")
@read_options
def clock_show(home: Path, as_json: bool) -> None:
    """The signals' week, and whether the validators may still vote it."""
    read(home, as_json, human_week, "supply.signal_week")
