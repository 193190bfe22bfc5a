"""The ``p2pmed`` command."""

from __future__ import annotations

import click

from p2pmed import demo as demo_module


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="p2pmed")
def cli() -> None:
    """p2pmed: a peer-to-peer network for sharing healthcare data between organisations."""


@cli.command()
def demo() -> None:
    """Run the end-to-end demo of what p2pmed does today."""
    demo_module.run(click.echo)


def main() -> None:
    cli()
