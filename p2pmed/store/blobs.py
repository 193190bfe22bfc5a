"""Where a custodian keeps record ciphertexts and its key wraps: files under ``<home>/data/blobs``.

Per record, ``<id>.sealed`` holds the AES-GCM ciphertext and ``<id>.wrap`` the
record's data key wrapped (HPKE) to this site's encryption key. Each file is
written whole to a temporary name, synced and renamed, so a crash leaves either
the old state or the new one; the wrap is written last, so a record counts as
held only once both are in place. Erasure deletes the wrap first: without it
the ciphertext can no longer be opened by anyone here (crypto-shredding), and
then the ciphertext goes too.
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
        return self._path(record_id, "wrap").exists()

    def put(self, record_id: bytes, sealed: bytes, wrap: bytes) -> None:
        self._write(self._path(record_id, "sealed"), sealed)
        self._write(self._path(record_id, "wrap"), wrap)

    def get(self, record_id: bytes) -> tuple[bytes, bytes] | None:
        """``(ciphertext, wrap)``, or None when this store does not hold the record."""
        try:
            wrap = self._path(record_id, "wrap").read_bytes()
            return self._path(record_id, "sealed").read_bytes(), wrap
        except FileNotFoundError:
            return None

    def erase(self, record_id: bytes) -> bool:
        """Delete the wrap, then the ciphertext; True if anything was there."""
        found = False
        for suffix in ("wrap", "sealed"):
            try:
                self._path(record_id, suffix).unlink()
                found = True
            except FileNotFoundError:
                pass
        return found

    def record_ids(self) -> list[bytes]:
        """Every record whose ciphertext or wrap is here, for inspection and tests."""
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
