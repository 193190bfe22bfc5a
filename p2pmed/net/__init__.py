"""The daemon's libp2p networking: identities, framing and the consensus transport.

Everything here does I/O (trio, py-libp2p); the pure core never imports it.
"""

from p2pmed.net.consensus_transport import PROTOCOL_ID, ConsensusTransport, TransportCounters
from p2pmed.net.framing import FrameError, FrameReader, encode_frame
from p2pmed.net.identity import key_pair_of, peer_id_of

__all__ = [
    "PROTOCOL_ID",
    "ConsensusTransport",
    "FrameError",
    "FrameReader",
    "TransportCounters",
    "encode_frame",
    "key_pair_of",
    "peer_id_of",
]
