"""The libp2p host a node runs: TCP, Noise and nothing else for security, Yamux (or mplex).

py-libp2p's ``new_host`` also offers ``/plaintext/2.0.0``, ``/secio/1.0.0`` and
``/tls/1.0.0``, and a dialer picks whichever it proposes first. Plaintext proves
nothing: the dialer only states a public key, so an outsider holding no key at
all could connect as any validator's peer id, and every check here that trusts
the peer id of a connection (the blob protocol serves validators only, the
validators' gossip allowances) would take it for that validator. Seen on a real
node before this module existed. So a node offers Noise alone, whose handshake
signs the static key with the peer's identity key: the standard libp2p wire, and
what js-libp2p, go-libp2p and rust-libp2p all speak (go-libp2p proposes TLS
first, is told ``na`` and takes Noise). See docs/wire.md.
"""

from __future__ import annotations

from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport

from p2pmed.crypto import SigningKey
from p2pmed.net.identity import key_pair_of

__all__ = ["SECURITY_PROTOCOLS", "node_host"]

SECURITY_PROTOCOLS = (TProtocol(NOISE_PROTOCOL_ID),)


def node_host(key: SigningKey) -> IHost:
    """A host whose peer id is ``key``'s, offering Noise as its only security protocol."""
    key_pair = key_pair_of(key)
    noise = NoiseTransport(key_pair, noise_privkey=new_x25519_key_pair().private_key)
    return new_host(key_pair=key_pair, sec_opt={SECURITY_PROTOCOLS[0]: noise})
