"""Fast start: a node with an empty store starts from a recent certified state of the ledger
instead of replaying every block since genesis (config ``[sync] fast_start``).

Before the daemon starts, a short-lived libp2p host (this node's key, so the validators
admit it as they admit the node) asks the validators for their snapshot offers over
``/p2pmed/snapshot/1`` (``p2pmed.net.snapshot_sync``): the genesis set first, then the
newest set the offers prove. An offer is checked from the genesis set alone
(``p2pmed.consensus.snapshot_offer.verify_offer``) and taken only when f+1 validators of the
set that certified it made the same one, so at least one honest validator stands behind
its uncertified base hash. The state is fetched in chunks from those validators in turn
(keys strictly increasing, at most ``SNAPSHOT_BYTES_MAX`` in all), and installed only if it
hashes to the certified root and records no validator set the offer did not prove
(``Store.install_snapshot``). The node then syncs the blocks after the snapshot as any
observer does, and serves read RPC methods for the state; blocks and transactions before
it are not here (``tx get`` of one finds nothing, ``chain block`` names the first block).

Anything that goes wrong (no offers, no f+1 agreement, a peer that lies) leaves the store
empty: the daemon then replays from genesis, as without fast start.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import multiaddr
import structlog
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from p2pmed import codec
from p2pmed.consensus.snapshot_offer import (
    OfferRefused,
    VerifiedOffer,
    check_epochs_in_state,
    verify_offer,
)
from p2pmed.crypto import Ed25519Verifier
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.state import STATE_VALUE_SIZE_MAX
from p2pmed.net import peer_id_of
from p2pmed.net.host import node_host
from p2pmed.net.snapshot_sync import KEY_LENGTH_MAX, SnapshotClient
from p2pmed.site.home import LoadedHome
from p2pmed.store import Store, StoreError
from p2pmed.store.sqlite import SNAPSHOT_BYTES_MAX

__all__ = ["FastStartFailed", "agreement", "fast_start"]

log = structlog.get_logger(__name__)

DIAL_TIMEOUT_S = 5.0
LISTEN = "/ip4/127.0.0.1/tcp/0"


class FastStartFailed(Exception):
    """No snapshot could be taken; the message says why."""


@dataclass(frozen=True)
class Agreed:
    offer: VerifiedOffer
    peers: tuple[ID, ...]


class _Entries:
    """A state as it arrives: keys in strictly increasing order, bounded in bytes."""

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}
        self.last = ""
        self.size = 0

    def state_get(self, key: str) -> bytes | None:
        return self.items.get(key)

    def add(self, key: str, value: bytes) -> None:
        if key <= self.last and self.items:
            raise FastStartFailed(f"the state's keys came out of order at {key[:80]!r}")
        if len(key) > KEY_LENGTH_MAX or len(value) > STATE_VALUE_SIZE_MAX:
            raise FastStartFailed(f"a state entry over its size limit at {key[:80]!r}")
        self.size += len(key) + len(value)
        if self.size > SNAPSHOT_BYTES_MAX:
            raise FastStartFailed(f"the state passes {SNAPSHOT_BYTES_MAX} bytes")
        self.items[key] = value
        self.last = key


async def fast_start(home: LoadedHome) -> int:
    """Start ``home``'s empty store from the validators' newest agreed snapshot; returns its
    height (0: the store has blocks already, nothing done). Raises ``FastStartFailed``."""
    with _open_store(home) as store:
        if store.head()[0] != 0:
            return 0
    host = node_host(home.key)
    async with host.run(listen_addrs=[multiaddr.Multiaddr(LISTEN)]):
        agreed = await _agreed_offer(host, home)
        entries = await _fetch_state(SnapshotClient(host), agreed)
    try:
        check_epochs_in_state(entries, agreed.offer.epochs)
    except OfferRefused as error:
        raise FastStartFailed(str(error)) from None
    with _open_store(home) as store:
        try:
            store.install_snapshot(agreed.offer.base, entries.items, agreed.offer.state)
        except StoreError as error:
            raise FastStartFailed(str(error)) from None
        for number, proof in enumerate(agreed.offer.epoch_proofs, 1):
            store.put_epoch_proof(number, codec.encode(proof))
    log.info("started from a snapshot", height=agreed.offer.base.height, entries=len(entries.items))
    return agreed.offer.base.height


def _open_store(home: LoadedHome) -> Store:
    genesis = home.genesis
    return Store.open(home.store_path, genesis.chain_id, genesis.hash, genesis.ledger_state())


async def _agreed_offer(host: IHost, home: LoadedHome) -> Agreed:
    genesis = membership.genesis_epoch(home.genesis.validator_profiles)
    client = SnapshotClient(host)
    asked: set[bytes] = set()
    offers: dict[ID, VerifiedOffer] = {}
    sets = [genesis]
    while True:  # the genesis set, then the newest set the offers prove, until no one new is left
        newest = sets[-1]
        peers = [
            profile for profile in newest.validators if profile.key not in asked and profile.key != home.key.public_key
        ]
        if not peers:
            break
        asked.update(profile.key for profile in peers)
        for profile in peers:
            verified = await _ask_offer(host, client, profile, genesis, home.genesis.chain_id)
            if verified is not None:
                offers[peer_id_of(profile.key)] = verified
                if len(verified.epochs) > len(sets):
                    sets = list(verified.epochs)
    return agreement(offers)


async def _ask_offer(
    host: IHost, client: SnapshotClient, profile: membership.ValidatorProfile, genesis: membership.Epoch, chain_id: str
) -> VerifiedOffer | None:
    peer = peer_id_of(profile.key)
    try:
        with trio.fail_after(DIAL_TIMEOUT_S):
            await host.connect(PeerInfo(peer, [multiaddr.Multiaddr(profile.address)]))
    except Exception as error:  # unreachable, refused, a bad address in its profile
        log.info("snapshot offer: peer unreachable", peer=str(peer), error=repr(error)[:200])
        return None
    answer = await client.request(peer, 0)
    if answer.error or answer.offer is None:
        log.info("snapshot offer: none", peer=str(peer), error=answer.error[:200])
        return None
    try:
        return verify_offer(answer.offer, genesis, chain_id, Ed25519Verifier())
    except OfferRefused as error:
        log.warning("snapshot offer refused", peer=str(peer), reason=str(error))
        return None


def agreement(offers: dict[ID, VerifiedOffer]) -> Agreed:
    """The highest offer that f+1 validators of the set that certified it made alike."""
    alike: dict[tuple[bytes, bytes], list[ID]] = defaultdict(list)
    for peer, verified in offers.items():
        alike[verified.base.hash, verified.anchor_digest].append(peer)
    for peers in sorted(alike.values(), key=lambda peers: -offers[peers[0]].base.height):
        verified = offers[peers[0]]
        certifying = [epoch for epoch in verified.epochs if epoch.first_height <= verified.base.height + 1][-1]
        vouching = [peer for peer in peers if peer in {peer_id_of(key) for key in certifying.keys}]
        if len(vouching) > (len(certifying.keys) - 1) // 3:
            return Agreed(verified, tuple(vouching))
    heights = sorted({verified.base.height for verified in offers.values()})
    raise FastStartFailed(f"no f+1 validators agree on a snapshot (offers at heights {heights or 'none'})")


async def _fetch_state(client: SnapshotClient, agreed: Agreed) -> _Entries:
    """The snapshot's entries, from the agreeing validators in turn (a failed chunk moves on)."""
    height = agreed.offer.base.height
    entries = _Entries()
    failures = 0
    turn = 0
    while True:
        peer = agreed.peers[turn % len(agreed.peers)]
        answer = await client.request(peer, height, entries.last)
        if answer.error or (not answer.entries and answer.more):
            failures += 1
            log.info("snapshot chunk failed", peer=str(peer), error=answer.error[:200])
            if failures > 2 * len(agreed.peers):
                raise FastStartFailed(f"the state after block {height} could not be fetched: {answer.error}")
            turn += 1
            continue
        for entry in answer.entries:
            entries.add(entry.key, entry.value)
        if not answer.more:
            return entries
