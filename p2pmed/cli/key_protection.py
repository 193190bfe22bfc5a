"""``--passphrase-file`` and ``--master-key-file``: what key files are encrypted under.

A passphrase is never a command-line argument (``ps`` and shell history would show
it): it is read from a file, as is a master key (see ``p2pmed.keys_at_rest``). The
options keep what they were given in the click context and ``given_protection()``
reads the files when the command loads or writes a key, so that the many signing
commands take them without a parameter each. ``p2pmed keys rekey`` also has the
``--new-`` pair, for what the files are to be encrypted under.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, fail
from p2pmed.keys_at_rest import KeyFileError, KeyProtection, KeyProtectionFiles

__all__ = ["given_protection", "given_protection_files", "protection_options"]

F = TypeVar("F", bound=Callable[..., Any])

_META_PREFIX = "p2pmed.key_protection."
PASSPHRASE_ENV = "P2PMED_PASSPHRASE_FILE"
MASTER_KEY_ENV = "P2PMED_MASTER_KEY_FILE"


def protection_options(keys: str, *, new: bool = False, envvar: bool = False, note: str = "") -> Callable[[F], F]:
    """The pair of options for the key files ``keys`` names (in their help, followed by
    ``note``); with ``envvar`` they also read ``P2PMED_PASSPHRASE_FILE`` and
    ``P2PMED_MASTER_KEY_FILE``."""
    prefix = "new-" if new else ""
    verb = "are to be" if new else "are"
    options = (
        ("passphrase", PASSPHRASE_ENV, f"A file holding the passphrase {keys} {verb} encrypted under.{note}"),
        ("master-key", MASTER_KEY_ENV, f"A file of 32 or more random bytes {keys} {verb} encrypted under.{note}"),
    )

    def decorate(command: F) -> F:
        for name, variable, help_text in reversed(options):
            command = click.option(
                f"--{prefix}{name}-file",
                type=click.Path(path_type=Path, dir_okay=False),
                envvar=variable if envvar else None,
                show_envvar=envvar,
                expose_value=False,
                callback=_remember,
                help=help_text,
            )(command)
        return command

    return decorate


def _remember(context: click.Context, parameter: click.Parameter, value: Path | None) -> None:
    if value is not None:
        context.meta[_META_PREFIX + str(parameter.name)] = value


def given_protection_files(*, new: bool = False) -> KeyProtectionFiles:
    meta = click.get_current_context().meta
    prefix = _META_PREFIX + ("new_" if new else "")
    return KeyProtectionFiles(meta.get(prefix + "passphrase_file"), meta.get(prefix + "master_key_file"))


def given_protection(*, new: bool = False) -> KeyProtection | None:
    """What the given files hold (None if none is given); a bad one exits 2 saying why."""
    try:
        return given_protection_files(new=new).read()
    except KeyFileError as error:
        fail(str(error), EXIT_BAD_INPUT)
