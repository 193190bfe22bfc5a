"""libp2p identities derived from p2pmed validator keys.

A node's libp2p key pair is its validator Ed25519 key, so its peer id is a pure
function of the validator public key in genesis: the daemon can map every
validator to the peer id it must see on a Noise-authenticated connection
without any extra configuration. (Ed25519 public keys are small enough that a
libp2p peer id embeds the whole protobuf-encoded key under the identity
multihash, so ``peer_id_of`` is reversible and involves no hashing.)
"""

from __future__ import annotations

from libp2p.crypto.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID

from p2pmed.crypto import PUBLIC_KEY_SIZE, SigningKey

__all__ = ["ed25519_key_of", "key_pair_of", "peer_id_of"]


def key_pair_of(key: SigningKey) -> KeyPair:
    """The libp2p Ed25519 key pair holding the same key as ``key``."""
    private_key = Ed25519PrivateKey.from_bytes(key.seed())
    public_key = private_key.get_public_key()
    if public_key.to_bytes() != key.public_key:  # the two libraries must agree on the key
        raise ValueError("libp2p derived a different Ed25519 public key from this seed")
    return KeyPair(private_key, public_key)


def ed25519_key_of(peer: ID) -> bytes | None:
    """The Ed25519 public key a peer id embeds, or None for a peer id that embeds no such key
    (another key type, or a hashed key)."""
    try:
        key = peer.extract_public_key()
    except Exception:  # libp2p raises a variety of errors for ids it cannot decode
        return None
    return key.to_bytes() if isinstance(key, Ed25519PublicKey) else None


def peer_id_of(public_key: bytes) -> ID:
    """The libp2p peer id of the node whose validator public key is ``public_key``."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise ValueError(f"Ed25519 public key must be {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}")
    return ID.from_pubkey(Ed25519PublicKey.from_bytes(bytes(public_key)))
