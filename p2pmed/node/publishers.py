"""Which libp2p peers a node admits besides the validators: as gossip publishers and as
askers of its blocks (``p2pmed.net.block_sync``), by ``[p2p] gossip_publishers`` and
``gossip_peers``."""

from __future__ import annotations

from collections.abc import Callable

from libp2p.peer.id import ID

from p2pmed.ledger.contracts import identity
from p2pmed.net.identity import ed25519_key_of
from p2pmed.site.config import NodeConfig
from p2pmed.store import Store

__all__ = ["admitted_peers"]


def admitted_peers(config: NodeConfig, known: Callable[[ID], bool], store: Store) -> Callable[[ID], bool]:
    """Whether a peer is admitted: a ``known`` one (the validators of the current set, and
    this node: gossip checks our own batches too), a peer ``gossip_peers`` names, with
    ``gossip_publishers = "organisations"`` an organisation in force whose signing key is its
    node's libp2p key (read from the store at each call), and with ``"any"`` everyone."""
    if config.gossip_publishers == "any":
        return lambda _peer: True
    listed = frozenset(ID.from_base58(peer) for peer in config.gossip_peers)
    organisations = config.gossip_publishers == "organisations"

    def admitted(peer: ID) -> bool:
        if peer in listed or known(peer):
            return True
        if not organisations:
            return False
        key = ed25519_key_of(peer)
        return key is not None and identity.organisation_of(store, key) is not None

    return admitted
