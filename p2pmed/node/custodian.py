"""A custodian site's rules for the records it keeps: what it accepts, whom it
serves, what it erases. Every decision reads the ledger at the node's latest
committed block, never the wall clock, so all custodians decide alike.

A custodian keeps a record's ciphertext and every custodian's key share, each
sealed to its own custodian (``p2pmed.key_shares``); it can open its own share
only, so it cannot read the record.

- Accept a record only if its anchor is committed and not erased, names this
  site as a custodian, the ciphertext matches the anchored SHA-256 and size, and
  this site's share opens with its key and matches the anchored digest. A copy
  once held is never replaced: an offer of the same record again succeeds and
  changes nothing, so nobody can swap the site's good share for one of their own.
- Serve a reader this site's share sealed to the reader's current encryption
  key (from the ledger), or the ciphertext, only for a read request the reader
  signed (``SignatureDomain.RECORD_FETCH``) within its read grant's window, if
  the ledger holds an unexpired read grant for that reader and record (a
  committed ``record.read``) and, unless the grant is the owner's or a
  break-glass one, the consent behind it is still in force: a revoke ends access
  even within the grant's ten minutes.
- Give a fellow custodian that missed the upload a copy (ciphertext and sealed
  shares as held), only when that custodian's own node asks.
- Erase the ciphertext and the shares when ``record.erase`` commits.

Every refusal, with the request and the validator whose node asked, goes to
``on_refused``: the site audit log (``p2pmed.node.site_audit``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from p2pmed import codec
from p2pmed.crypto import CryptoError, EncryptionPrivateKey, EncryptionPublicKey, SignatureDomain, verify
from p2pmed.key_shares import SHARE_WRAP_SIZE_MAX, share_digest, unwrap_share, wrap_share
from p2pmed.ledger.contracts.consent import party_id
from p2pmed.ledger.contracts.identity import organisation_of, person_of
from p2pmed.ledger.contracts.records import READ_GRANT_MS, Record, access, read_grant, record
from p2pmed.ledger.state import StateReader
from p2pmed.net.blob_protocol import (
    SHARES_SIZE_MAX,
    BlobRequest,
    BlobResponse,
    SealedShares,
    SignedReadRequest,
    refused,
)
from p2pmed.store.blobs import BlobStore

__all__ = ["READ_REQUEST_SKEW_MS", "Custodian", "CustodyRefused", "RefusalListener"]

READ_REQUEST_SKEW_MS = 60_000
"""How much earlier than its read grant's block time a read request may say it was signed: the
reader's clock and the block's are not the same clock."""


RefusalListener = Callable[[BlobRequest, bytes, str], None]
"""Hears a refused request, the validator whose node asked, and the reason."""


class CustodyRefused(Exception):
    """The custodian will not do what was asked; the message says why."""


class Custodian:
    def __init__(
        self,
        state: StateReader,
        now_ms: Callable[[], int],
        blobs: BlobStore,
        site_key: bytes,
        encryption_key: EncryptionPrivateKey,
        chain_id: str,
        on_refused: RefusalListener | None = None,
    ) -> None:
        """``now_ms`` gives the latest committed block's time; ``on_refused`` hears every refusal
        (the site audit log)."""
        self.state, self.now_ms, self.blobs = state, now_ms, blobs
        self.site_key, self.encryption_key, self.chain_id = site_key, encryption_key, chain_id
        self.on_refused = on_refused

    def _anchor(self, record_id: bytes) -> Record:
        found = record(self.state, record_id)
        if found is None:
            raise CustodyRefused("no committed anchor has this record id (yet): commit record.add first")
        if found.erased_ms is not None:
            raise CustodyRefused("the record was erased at the patient's request")
        return found

    def _position(self, anchor: Record) -> int:
        if self.site_key not in anchor.custodians:
            raise CustodyRefused("this site is not a custodian of the record")
        return anchor.custodians.index(self.site_key)

    def _own_share(self, anchor: Record, wraps: tuple[bytes, ...]) -> tuple[int, bytes]:
        """This site's ``(index, share)`` from the record's sealed shares, checked against the anchor."""
        position = self._position(anchor)
        try:
            index, share = unwrap_share(wraps[position], self.encryption_key, anchor.record_id)
        except CryptoError:
            raise CustodyRefused("the key share sealed to this site does not open with its encryption key") from None
        if index != position + 1 or share_digest(anchor.record_id, index, share) != anchor.share_sha256[position]:
            raise CustodyRefused("the key share sealed to this site does not match the anchor's digest for it")
        return index, share

    def accept(self, record_id: bytes, sealed: bytes, wraps: tuple[bytes, ...]) -> None:
        anchor = self._anchor(record_id)
        self._position(anchor)
        if len(sealed) != anchor.size or hashlib.sha256(sealed).digest() != anchor.ciphertext_sha256:
            raise CustodyRefused("the ciphertext does not match the anchored size and SHA-256")
        if len(wraps) != len(anchor.custodians) or any(len(wrap) > SHARE_WRAP_SIZE_MAX for wrap in wraps):
            raise CustodyRefused(
                f"give one sealed key share per custodian ({len(anchor.custodians)}), each at most"
                f" {SHARE_WRAP_SIZE_MAX} bytes"
            )
        if self.blobs.holds(record_id):
            return  # the same ciphertext (its hash is anchored); the shares already held stay
        self._own_share(anchor, wraps)
        self.blobs.put(record_id, sealed, codec.encode(SealedShares(wraps)))

    def _held(self, record_id: bytes) -> tuple[bytes, tuple[bytes, ...]]:
        held = self.blobs.get(record_id)
        if held is None:
            raise CustodyRefused("this site does not hold the record")
        sealed, shares = held
        return sealed, codec.decode(SealedShares, shares, SHARES_SIZE_MAX).wraps

    def copy(self, record_id: bytes, requester: bytes) -> BlobResponse:
        """What this site holds of a record, for the fellow custodian ``requester`` whose node asks."""
        anchor = self._anchor(record_id)
        if requester == self.site_key or requester not in anchor.custodians:
            raise CustodyRefused("a copy is given only to another custodian of the record, when its own node asks")
        sealed, wraps = self._held(record_id)
        return BlobResponse("", sealed, wraps)

    def serve(self, kind: str, record_id: bytes, read: SignedReadRequest | None) -> BlobResponse:
        """The ciphertext (``kind`` "sealed"), or this site's share sealed to the reader ("share")."""
        if read is None or read.request.record_id != record_id:
            raise CustodyRefused("a record is served only for the reader's signed read request for that record")
        request = read.request
        if not verify(
            request.reader, read.signature, SignatureDomain.RECORD_FETCH, self.chain_id, codec.encode(request)
        ):
            raise CustodyRefused("the read request is not signed by the reader it names")
        anchor = self._anchor(record_id)
        self._check_reader(anchor, request.reader, request.issued_ms)
        sealed, wraps = self._held(record_id)
        if kind == "sealed":
            return BlobResponse("", sealed)
        index, share = self._own_share(anchor, wraps)
        return BlobResponse("", b"", (wrap_share(share, index, self._encryption_key_of(request.reader), record_id),))

    def _check_reader(self, anchor: Record, reader_key: bytes, issued_ms: int) -> None:
        now = self.now_ms()
        reader = party_id(self.state, reader_key)
        grant = None if reader is None else read_grant(self.state, anchor.record_id, reader, now)
        if grant is None:
            raise CustodyRefused(
                "no read of this record by this reader is on the ledger in the last 10 minutes: commit record.read "
                "first"
            )
        granted_ms = grant.expires_ms - READ_GRANT_MS
        if not granted_ms - READ_REQUEST_SKEW_MS <= issued_ms <= grant.expires_ms:
            raise CustodyRefused("the read request was not signed within its read grant's ten minutes: sign a new one")
        if grant.basis in ("owner", "break-glass"):
            return
        decision = access(self.state, reader_key, anchor, grant.purpose, now, grant.study)
        if not decision.allowed:
            raise CustodyRefused(f"access ended since the read was granted: {decision.detail}")

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
            match request.kind:
                case "put":
                    self.accept(request.record_id, request.sealed, request.wraps)
                    return BlobResponse("")
                case "copy":
                    return self.copy(request.record_id, requester)
                case "share" | "sealed":
                    return self.serve(request.kind, request.record_id, request.read)
        except CustodyRefused as error:
            reason = str(error)
        else:
            reason = f"unknown request kind {request.kind!r}; expected put, copy, share or sealed"
        if self.on_refused is not None:
            self.on_refused(request, requester, reason)
        return refused(reason)

    def erase(self, record_id: bytes) -> bool:
        return self.blobs.erase(record_id)
