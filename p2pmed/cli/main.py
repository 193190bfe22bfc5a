"""The ``p2pmed`` command: the root group; each command group lives in its own module."""

from __future__ import annotations

import click

from p2pmed.cli.audit import AUDIT_COMMANDS
from p2pmed.cli.bench import BENCH_COMMANDS
from p2pmed.cli.chain import CHAIN_COMMANDS
from p2pmed.cli.device import DEVICE_COMMANDS
from p2pmed.cli.identity import IDENTITY_COMMANDS
from p2pmed.cli.keys import KEYS_COMMANDS
from p2pmed.cli.record import RECORD_COMMANDS
from p2pmed.cli.report import REPORT_COMMANDS
from p2pmed.cli.research import RESEARCH_COMMANDS
from p2pmed.cli.sim import SIM_COMMANDS
from p2pmed.cli.site import SITE_COMMANDS
from p2pmed.cli.supply import SUPPLY_COMMANDS
from p2pmed.cli.trial import TRIAL_COMMANDS
from p2pmed.cli.validator import VALIDATOR_COMMANDS
from p2pmed.testing import demo as demo_module

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="p2pmed")
def cli() -> None:
    """p2pmed: a peer-to-peer network for sharing healthcare data between organisations."""


@cli.command()
def demo() -> None:
    """Run the end-to-end demo of what p2pmed does today."""
    demo_module.run(click.echo)


for command in (
    *SITE_COMMANDS,
    *KEYS_COMMANDS,
    *CHAIN_COMMANDS,
    *BENCH_COMMANDS,
    *SIM_COMMANDS,
    *IDENTITY_COMMANDS,
    *AUDIT_COMMANDS,
    *TRIAL_COMMANDS,
    *SUPPLY_COMMANDS,
    *RECORD_COMMANDS,
    *DEVICE_COMMANDS,
    *REPORT_COMMANDS,
    *RESEARCH_COMMANDS,
    *VALIDATOR_COMMANDS,
):
    cli.add_command(command)


def main() -> None:
    cli()
