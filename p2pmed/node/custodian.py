"""A custodian site's rules for the ciphertexts it keeps: what it accepts, whom it
serves, what it erases. Every decision reads the ledger at the node's latest
committed block, never the wall clock, so all custodians decide alike.

- Accept a record's ciphertext only if its anchor is committed and not erased,
  names this site as a custodian, matches the anchored SHA-256 and size, and
  comes with a key wrap that opens with this site's key to a data key that
  decrypts it (authenticated decryption). A copy once held is never replaced: an
  offer of the same record again succeeds and changes nothing, so nobody can swap
  the site's good key wrap for one of a key of their own.
- Serve a reader the ciphertext and the data key wrapped to the reader's
  current encryption key (from the ledger) only if the ledger holds an unexpired
  read grant for that reader and record (a committed ``record.read``) and, unless
  the grant is the owner's or a break-glass one, the consent behind it is still
  in force: a revoke ends access even within the grant's ten minutes. Another
  custodian of the record is served too (with a wrap to its own key), so that a
  site that missed the upload can fetch it, but only when that custodian's own
  node asks: naming a custodian as the reader is not enough. A custodian is
  served under its custody key from genesis, which its organisation's key rotation
  leaves alone.
- Erase the ciphertext and the wrap when ``record.erase`` commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from p2pmed.crypto import (
    CryptoError,
    EncryptionPrivateKey,
    EncryptionPublicKey,
    decrypt_record,
    unwrap_key,
    wrap_key,
)
from p2pmed.ledger.contracts.consent import party_id
from p2pmed.ledger.contracts.identity import organisation_of, person_of, site_encryption_key
from p2pmed.ledger.contracts.records import Record, access, read_grant, record
from p2pmed.ledger.state import StateReader
from p2pmed.net.blob_protocol import BlobRequest, BlobResponse, refused
from p2pmed.store.blobs import BlobStore

__all__ = ["Custodian", "CustodyRefused", "Served"]


class CustodyRefused(Exception):
    """The custodian will not do what was asked; the message says why."""


@dataclass(frozen=True)
class Served:
    sealed: bytes
    wrap: bytes
    """The record's data key, wrapped to the reader's encryption key."""


class Custodian:
    def __init__(
        self,
        state: StateReader,
        now_ms: Callable[[], int],
        blobs: BlobStore,
        site_key: bytes,
        encryption_key: EncryptionPrivateKey,
    ) -> None:
        """``now_ms`` gives the latest committed block's time."""
        self.state, self.now_ms, self.blobs = state, now_ms, blobs
        self.site_key, self.encryption_key = site_key, encryption_key

    def _anchor(self, record_id: bytes) -> Record:
        found = record(self.state, record_id)
        if found is None:
            raise CustodyRefused("no committed anchor has this record id (yet): commit record.add first")
        if found.erased_ms is not None:
            raise CustodyRefused("the record was erased at the patient's request")
        return found

    def accept(self, record_id: bytes, sealed: bytes, wrap: bytes) -> None:
        anchor = self._anchor(record_id)
        if self.site_key not in anchor.custodians:
            raise CustodyRefused("this site is not a custodian of the record")
        if len(sealed) != anchor.size or hashlib.sha256(sealed).digest() != anchor.ciphertext_sha256:
            raise CustodyRefused("the ciphertext does not match the anchored size and SHA-256")
        if self.blobs.holds(record_id):
            return  # the same ciphertext (its hash is anchored); the wrap already held stays
        try:
            data_key = unwrap_key(wrap, self.encryption_key, record_id)
        except CryptoError:
            raise CustodyRefused("the key wrap does not open with this site's encryption key") from None
        try:
            decrypt_record(record_id, sealed, data_key)
        except CryptoError:
            raise CustodyRefused("the key in the wrap does not decrypt the ciphertext") from None
        self.blobs.put(record_id, sealed, wrap)

    def serve(self, record_id: bytes, reader_key: bytes, requester: bytes) -> Served:
        """``requester``: the validator whose node asks (this site's own, or a peer's)."""
        anchor = self._anchor(record_id)
        held = self.blobs.get(record_id)
        if held is None:
            raise CustodyRefused("this site does not hold the record's ciphertext")
        if reader_key in anchor.custodians:
            if requester != reader_key:
                raise CustodyRefused("a custodian's copy is served only when that custodian's own node asks")
            recipient = self._custody_key_of(reader_key)
        else:
            self._check_reader(anchor, reader_key)
            recipient = self._encryption_key_of(reader_key)
        sealed, own_wrap = held
        data_key = unwrap_key(own_wrap, self.encryption_key, record_id)
        return Served(sealed, wrap_key(data_key, recipient, record_id))

    def _check_reader(self, anchor: Record, reader_key: bytes) -> None:
        now = self.now_ms()
        reader = party_id(self.state, reader_key)
        grant = None if reader is None else read_grant(self.state, anchor.record_id, reader, now)
        if grant is None:
            raise CustodyRefused(
                "no read of this record by this reader is on the ledger in the last 10 minutes: commit record.read "
                "first"
            )
        if grant.basis in ("owner", "break-glass"):
            return
        decision = access(self.state, reader_key, anchor, grant.purpose, now)
        if not decision.allowed:
            raise CustodyRefused(f"access ended since the read was granted: {decision.detail}")

    def _custody_key_of(self, custodian: bytes) -> EncryptionPublicKey:
        """The genesis key a custodian keeps records under, whatever its organisation rotated to."""
        found = site_encryption_key(self.state, custodian)
        if found is None:
            raise CustodyRefused("the custodian is not a genesis site")
        return found

    def _encryption_key_of(self, key: bytes) -> EncryptionPublicKey:
        found = person_of(self.state, key)
        if found is not None:
            return found.encryption_key
        organisation = organisation_of(self.state, key)
        if organisation is None:
            raise CustodyRefused("the reader is neither a person nor an organisation in force")
        return organisation.profile.encryption_key

    def answer(self, request: BlobRequest, requester: bytes) -> BlobResponse:
        """What this custodian answers ``request`` from the node of validator ``requester``
        (a peer's, or its own)."""
        try:
            if request.kind == "put":
                self.accept(request.record_id, request.sealed, request.wrap)
                return BlobResponse("", b"", b"")
            if request.kind == "get":
                served = self.serve(request.record_id, request.reader, requester)
                return BlobResponse("", served.sealed, served.wrap)
        except CustodyRefused as error:
            return refused(str(error))
        return refused(f"unknown request kind {request.kind!r}; expected put or get")

    def erase(self, record_id: bytes) -> bool:
        return self.blobs.erase(record_id)
