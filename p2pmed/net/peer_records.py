"""Signed peer records in py-libp2p pubsub, at the cost of one signature per peer, not per RPC.

py-libp2p 0.8.1 attaches the sender's signed peer record (an Envelope, RFC 0003)
to every pubsub RPC it writes, and every receiver parses it and verifies its
Ed25519 signature before anything else, duplicates and control messages
included. Building it also renders the host's listen addresses each time. In a
profile of a node at 200 tx/s this was about an eighth of its CPU, more than
verifying the transactions themselves.

``install`` replaces the two functions in the pubsub modules that imported them
with memoising versions: a peer's record bytes that already verified are
accepted again without re-verifying, until ``RECORD_RECHECK_S`` passes; our own
record is rebuilt at most every ``OWN_RECORD_REFRESH_S``. Records that differ in
a single byte (a new sequence number, new addresses) are verified as before, so
what a peer can make us believe is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import libp2p.peer.peerstore as peerstore_module
import libp2p.pubsub.gossipsub as gossipsub_module
import libp2p.pubsub.pubsub as pubsub_module
import libp2p.pubsub.utils as pubsub_utils
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.pubsub.pb.rpc_pb2 import RPC

__all__ = ["install"]

RECORD_RECHECK_S = 600.0
OWN_RECORD_REFRESH_S = 10.0
KNOWN_RECORDS_MAX = 4096

Consume = Callable[[RPC, IHost, ID], bool]
Issue = Callable[[IHost], tuple[bytes, bool]]

_installed = False


def install() -> None:
    """Idempotent; affects every pubsub service in this process."""
    global _installed
    if _installed:
        return
    consume = _memoised_consume(pubsub_utils.maybe_consume_signed_record)
    issue = _memoised_issue(peerstore_module.env_to_send_in_RPC)
    for module in (pubsub_module, gossipsub_module):
        module.maybe_consume_signed_record = consume  # type: ignore[attr-defined]
        module.env_to_send_in_RPC = issue  # type: ignore[attr-defined]
    _installed = True


def _memoised_consume(consume: Consume) -> Consume:
    verified: dict[tuple[bytes, bytes], float] = {}

    def maybe_consume_signed_record(msg: RPC, host: IHost, peer_id: ID) -> bool:
        if not msg.HasField("senderRecord"):
            return True
        key = (peer_id.to_bytes(), msg.senderRecord)
        now = time.monotonic()
        if verified.get(key, 0.0) > now:
            return True
        if not consume(msg, host, peer_id):
            return False
        if len(verified) >= KNOWN_RECORDS_MAX:
            verified.clear()
        verified[key] = now + RECORD_RECHECK_S
        return True

    return maybe_consume_signed_record


def _memoised_issue(issue: Issue) -> Issue:
    own: dict[bytes, tuple[float, bytes]] = {}

    def env_to_send_in_RPC(host: IHost) -> tuple[bytes, bool]:
        now = time.monotonic()
        peer = host.get_id().to_bytes()
        cached = own.get(peer)
        if cached is not None and cached[0] > now:
            return cached[1], False
        envelope, created = issue(host)
        own[peer] = (now + OWN_RECORD_REFRESH_S, envelope)
        return envelope, created

    return env_to_send_in_RPC
