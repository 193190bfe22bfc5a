"""Where a custodian keeps records: files under ``<home>/data/blobs``.

Per record, ``<id>.sealed`` holds the AES-GCM ciphertext and ``<id>.shares`` the
record's key shares, each sealed (HPKE) to its custodian. Each file is written
whole to a temporary name, synced and renamed, so a crash leaves either the old
state or the new one; the shares are written last, so a record counts as held
only once both are in place. Erasure deletes the shares first: without them the
ciphertext can no longer be opened by anyone (crypto-shredding), and then the
ciphertext goes too.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BlobStore"]


class BlobStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, record_id: bytes, suffix: str) -> Path:
        return self.directory / f"{record_id.hex()}.{suffix}"

    def holds(self, record_id: bytes) -> bool:
        return self._path(record_id, "shares").exists()

    def put(self, record_id: bytes, sealed: bytes, shares: bytes) -> None:
        self._write(self._path(record_id, "sealed"), sealed)
        self._write(self._path(record_id, "shares"), shares)

    def get(self, record_id: bytes) -> tuple[bytes, bytes] | None:
        """``(ciphertext, shares)``, or None when this store does not hold the record."""
        try:
            shares = self._path(record_id, "shares").read_bytes()
            return self._path(record_id, "sealed").read_bytes(), shares
        except FileNotFoundError:
            return None

    def erase(self, record_id: bytes) -> bool:
        """Delete the shares, then the ciphertext; True if anything was there."""
        found = False
        for suffix in ("shares", "sealed"):
            try:
                self._path(record_id, suffix).unlink()
                found = True
            except FileNotFoundError:
                pass
        return found

    def record_ids(self) -> list[bytes]:
        """Every record whose ciphertext or shares are here, for inspection and tests."""
        names = {path.name.split(".")[0] for path in self.directory.iterdir() if not path.name.startswith(".")}
        return sorted(bytes.fromhex(name) for name in names)

    def _write(self, path: Path, data: bytes) -> None:
        temporary = path.with_name(f".{path.name}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
