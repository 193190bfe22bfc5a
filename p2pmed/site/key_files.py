"""Key files re-encrypted in place (``p2pmed keys``), never losing a key on a crash.

``reseal`` moves one key file, a signing or an encryption key, from one protection
(None: plain) to another. The new file is written beside the old one as
``<name>.resealing`` (mode 0600, fsynced), opened again with the new protection and
checked to hold the same key, then renamed over the old one and the directory
fsynced. A crash therefore leaves either the old file or the new one at the key's
path, each complete; a leftover ``.resealing`` file means the rename never happened,
so the old file is still in place and the next run replaces the leftover.

A file that already opens with the new protection is left alone: running the same
command again after a crash finishes the job, file by file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pmed import crypto, keys_at_rest
from p2pmed.keys_at_rest import KeyFileError, KeyFileLocked, KeyProtection

__all__ = ["RESEALING_SUFFIX", "reseal"]

RESEALING_SUFFIX = ".resealing"
_PEM_BEGIN = b"-----BEGIN"


@dataclass(frozen=True)
class _KeyKind:
    load: Callable[[Path, KeyProtection | None], Any]
    save: Callable[[Path, Any, KeyProtection | None], None]


_SIGNING = _KeyKind(crypto.load_signing_key, crypto.save_signing_key)
_ENCRYPTION = _KeyKind(crypto.load_encryption_key, crypto.save_encryption_key)


def reseal(path: Path, current: KeyProtection | None, new: KeyProtection | None) -> bool:
    """Re-encrypt the key file at ``path`` from ``current`` to ``new``; False when it is
    already under ``new``. Raises ``KeyFileError`` (the file unchanged) or ``OSError``."""
    kind = _kind_of(path)
    try:
        key = kind.load(path, current)
    except KeyFileError as error:
        if _opens(kind, path, new):
            return False  # done by an earlier run, perhaps one cut short
        if isinstance(error, KeyFileLocked):
            raise KeyFileError(
                f"{path}: already encrypted, and not under the passphrase or master key file given;"
                " change what it is encrypted under with p2pmed keys rekey"
            ) from None
        raise
    fresh = path.with_name(path.name + RESEALING_SUFFIX)
    fresh.unlink(missing_ok=True)
    kind.save(fresh, key, new)
    if kind.load(fresh, new).public_key != key.public_key:
        fresh.unlink()
        raise KeyFileError(f"{fresh}: does not read back as the key in {path}; {path} is unchanged")
    os.replace(fresh, path)
    _fsync_directory(path.parent)
    return True


def _opens(kind: _KeyKind, path: Path, protection: KeyProtection | None) -> bool:
    try:
        kind.load(path, protection)
    except KeyFileError:
        return False
    return True


def _kind_of(path: Path) -> _KeyKind:
    """Whether ``path`` holds a signing or an encryption key."""
    try:
        with path.open("rb") as file:
            start = file.read(keys_at_rest.SEALED_FILE_SIZE_MAX + 1)
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read key file: {error.strerror}") from None
    if keys_at_rest.is_sealed(start):
        try:
            key_type = keys_at_rest.key_type_of(start)
        except KeyFileError as error:
            raise KeyFileError(f"{path}: {error}") from None
        return _SIGNING if key_type == "ed25519" else _ENCRYPTION
    return _SIGNING if start.startswith(_PEM_BEGIN) else _ENCRYPTION


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
