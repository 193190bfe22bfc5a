"""The daemon's libp2p networking: identities, framing, the consensus transport and transaction gossip.

Everything here does I/O (trio, py-libp2p); the pure core never imports it.
"""

from p2pmed.net.consensus_transport import PROTOCOL_ID, ConsensusTransport, TransportCounters
from p2pmed.net.framing import FrameError, FrameReader, encode_frame
from p2pmed.net.identity import key_pair_of, peer_id_of
from p2pmed.net.tx_gossip import REJECT_REASONS, GossipCounters, TxBatch, TxGossip, tx_topic

__all__ = [
    "PROTOCOL_ID",
    "REJECT_REASONS",
    "ConsensusTransport",
    "FrameError",
    "FrameReader",
    "GossipCounters",
    "TransportCounters",
    "TxBatch",
    "TxGossip",
    "encode_frame",
    "key_pair_of",
    "peer_id_of",
    "tx_topic",
]
