"""``p2pmed keys``: encrypt key files at rest, change what they are encrypted under, or
show it. The files are a node home's two keys (``--home``) and any other key files
named (a person's, a site's signing key). Each file is converted crash-safely
(``p2pmed.site.key_files``); after a failure, the same command finishes the job.
Exit codes: 0 done, 1 a file could not be written, 2 bad input (nothing changed in
the file it names)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, fail
from p2pmed.cli.key_protection import given_protection, protection_options
from p2pmed.keys_at_rest import KeyFileError, KeyProtection, describe

__all__ = ["KEYS_COMMANDS"]

F = TypeVar("F", bound=Callable[..., Any])

KEYS = "the key files"


def _targets(command: F) -> F:
    """``--home`` and the FILE arguments: which key files a command works on."""
    command = click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))(command)
    return click.option(
        "--home",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="A node home: its node_key.pem and encryption_key (the environment's P2PMED_HOME is not used).",
    )(command)


def _paths(home: Path | None, files: tuple[Path, ...]) -> list[Path]:
    from p2pmed.site.home import ENCRYPTION_KEY, NODE_KEY

    paths = ([home / NODE_KEY, home / ENCRYPTION_KEY] if home is not None else []) + list(files)
    if not paths:
        fail("name the key files, or a node home with --home", EXIT_BAD_INPUT)
    return paths


@click.group()
def keys() -> None:
    """Key files at rest: encrypt them under a passphrase or a master key file, change
    that, decrypt them, or show how each is stored (docs/operators.md, "Keys at rest")."""


@keys.command("status")
@_targets
def keys_status(home: Path | None, files: tuple[Path, ...]) -> None:
    """Show how each key file is stored: not encrypted, or encrypted under what. Reads no secret."""
    from p2pmed.keys_at_rest import SEALED_FILE_SIZE_MAX

    failed = False
    for path in _paths(home, files):
        try:
            with path.open("rb") as file:
                click.echo(f"{path}: {describe(file.read(SEALED_FILE_SIZE_MAX + 1))}")
        except OSError as error:
            click.echo(f"{path}: cannot read: {error.strerror}", err=True)
            failed = True
        except KeyFileError as error:
            click.echo(f"{path}: {error}", err=True)
            failed = True
    if failed:
        raise SystemExit(EXIT_BAD_INPUT)


@keys.command("encrypt")
@_targets
@protection_options(KEYS)
def keys_encrypt(home: Path | None, files: tuple[Path, ...]) -> None:
    """Encrypt plain key files under the passphrase or master key file given."""
    paths, new = _paths(home, files), given_protection()
    if new is None:
        fail("give --passphrase-file or --master-key-file", EXIT_BAD_INPUT)
    _reseal_all(paths, None, new, home)


@keys.command("rekey")
@_targets
@protection_options(KEYS)
@protection_options(KEYS, new=True)
def keys_rekey(home: Path | None, files: tuple[Path, ...]) -> None:
    """Re-encrypt key files from one passphrase or master key file to another."""
    paths, current, new = _paths(home, files), given_protection(), given_protection(new=True)
    if current is None or new is None:
        fail(
            "give what the files are encrypted under (--passphrase-file or --master-key-file) and what they"
            " are to be (--new-passphrase-file or --new-master-key-file)",
            EXIT_BAD_INPUT,
        )
    _reseal_all(paths, current, new, home)


@keys.command("decrypt")
@_targets
@protection_options(KEYS)
def keys_decrypt(home: Path | None, files: tuple[Path, ...]) -> None:
    """Store encrypted key files in plain again (mode 0600 still)."""
    paths, current = _paths(home, files), given_protection()
    if current is None:
        fail("give the --passphrase-file or --master-key-file the files are encrypted under", EXIT_BAD_INPUT)
    _reseal_all(paths, current, None, home)


def _reseal_all(paths: list[Path], current: KeyProtection | None, new: KeyProtection | None, home: Path | None) -> None:
    from p2pmed.site.key_files import reseal

    for path in paths:
        try:
            changed = reseal(path, current, new)
        except KeyFileError as error:
            fail(str(error), EXIT_BAD_INPUT)
        except OSError as error:
            fail(f"{path}: {error}; the key is intact: run the same command again to finish", EXIT_FAILURE)
        if changed:
            click.echo(f"{path}: {'stored plain' if new is None else 'encrypted'}")
        else:
            click.echo(
                f"{path}: already {'plain' if new is None else 'encrypted under the file given'}; left as it was"
            )
    if home is not None:
        click.echo(
            "the node reads its keys with what [keys] in config.toml names, or P2PMED_PASSPHRASE_FILE /"
            " P2PMED_MASTER_KEY_FILE: make them name the file given here"
            + (" (or nothing)" if new is None else "")
            + " before it next starts"
        )


KEYS_COMMANDS = [keys]
