"""What the ``p2pmed`` commands share: exit codes, the ``--home`` option, finding the socket."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_VIOLATION", "HOME_OPTION", "fail", "socket_of"]

EXIT_FAILURE = 1
EXIT_VIOLATION = 1
EXIT_BAD_INPUT = 2

HOME_OPTION = click.option(
    "--home", type=click.Path(path_type=Path), envvar="P2PMED_HOME", required=True,
    help="The node's home directory [env: P2PMED_HOME].",
)


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def socket_of(home: Path) -> Path:
    """The node's RPC socket, as its config.toml names it; exits 2 on a bad config."""
    from p2pmed.config import ConfigError, load_config
    from p2pmed.home import CONFIG

    try:
        return home / load_config(home / CONFIG).rpc_socket
    except ConfigError as error:
        fail(str(error), EXIT_BAD_INPUT)
