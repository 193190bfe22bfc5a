"""What the ``p2pmed`` commands share: exit codes, the ``--home`` and ``--json`` options,
finding the socket, talking to the node and printing its answers."""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from p2pmed.rpc.client import RpcClient, RpcError

__all__ = [
    "CALL_TIMEOUT_S",
    "EXIT_BAD_INPUT",
    "EXIT_FAILURE",
    "EXIT_VIOLATION",
    "HOME_OPTION",
    "JSON_OPTION",
    "emit",
    "fail",
    "node",
    "socket_of",
    "utc_time",
]

CALL_TIMEOUT_S = 30.0

EXIT_FAILURE = 1
EXIT_VIOLATION = 1
EXIT_BAD_INPUT = 2

HOME_OPTION = click.option(
    "--home",
    type=click.Path(path_type=Path),
    envvar="P2PMED_HOME",
    required=True,
    help="The node's home directory [env: P2PMED_HOME].",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def socket_of(home: Path) -> Path:
    """The node's RPC socket, as its config.toml names it; exits 2 on a bad config."""
    from p2pmed.site.config import ConfigError, load_config
    from p2pmed.site.home import CONFIG

    try:
        return home / load_config(home / CONFIG).rpc_socket
    except ConfigError as error:
        fail(str(error), EXIT_BAD_INPUT)


@contextmanager
def node(home: Path) -> Iterator[RpcClient]:
    """A client of the node at ``home``; any RPC or connection failure exits 1 with its message."""
    try:
        with RpcClient(socket_of(home), timeout=CALL_TIMEOUT_S) as client:
            yield client
    except RpcError as error:
        fail(error.message)
    except OSError as error:  # NodeNotRunning, TimeoutError, ConnectionError, PermissionError
        fail(str(error))


def emit(result: Any, as_json: bool, human: Callable[[Any], str]) -> None:
    click.echo(json.dumps(result, indent=2) if as_json else human(result))


def utc_time(time_ms: int | None, timespec: str = "seconds") -> str:
    """A ledger time (ms since 1970) as ISO 8601 UTC; ``-`` for none, ``never`` past year 9999."""
    if time_ms is None:
        return "-"
    try:
        moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(milliseconds=time_ms)
    except OverflowError:
        return "never"
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")
