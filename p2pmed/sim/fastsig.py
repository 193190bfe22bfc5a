"""A fast stand-in for Ed25519 inside the simulator. Not cryptography.

A simulated replica "signs" with a keyed BLAKE2b over the same domain-separated
message the real scheme signs; the verifier knows every simulated secret. Byzantine
replicas are our own code and never read another replica's secret, so a forged
signature still fails to verify, which is all the consensus core needs. It is
~100x cheaper than Ed25519, which keeps simulations far faster than real time.
"""

from __future__ import annotations

import hashlib

from p2pmed.crypto import SIGNATURE_SIZE, SignatureDomain

__all__ = ["FastSigner", "FastVerifier"]


def _mac(secret: bytes, domain: SignatureDomain, chain_id: str, payload: bytes) -> bytes:
    # Domain names and chain ids hold no NUL byte, so this framing is unambiguous.
    message = b"%s\x00%s\x00" % (domain.value.encode(), chain_id.encode()) + payload
    return hashlib.blake2b(message, key=secret, digest_size=SIGNATURE_SIZE).digest()


class FastSigner:
    """``public_key``: derived from the secret unless given (a node voted in needs a real
    Ed25519 public key, since the ledger checks its join proof with Ed25519)."""

    def __init__(self, secret: bytes, public_key: bytes | None = None) -> None:
        assert 16 <= len(secret) <= 64
        self._secret = secret
        self.public_key = public_key or hashlib.sha256(b"p2pmed-sim-key" + secret).digest()

    def sign(self, domain: SignatureDomain, chain_id: str, payload: bytes) -> bytes:
        return _mac(self._secret, domain, chain_id, payload)


class FastVerifier:
    def __init__(self, signers: list[FastSigner]) -> None:
        self._secrets = {signer.public_key: signer._secret for signer in signers}

    def verify(
        self, public_key: bytes, signature: bytes, domain: SignatureDomain, chain_id: str, payload: bytes
    ) -> bool:
        secret = self._secrets.get(public_key)
        return secret is not None and signature == _mac(secret, domain, chain_id, payload)
