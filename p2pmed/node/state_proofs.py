"""Making state proofs from the store (``p2pmed.consensus.state_proof`` checks them): for the
``state.proof`` and ``audit.proof`` RPC methods and for the epoch proofs a node keeps
(``p2pmed.node.snapshots``)."""

from __future__ import annotations

from p2pmed import codec
from p2pmed.consensus.messages import CommitCertificate, proposal_header
from p2pmed.consensus.state_proof import StateProof
from p2pmed.ledger.block import STATE_LAG_MAX, BlockHeader
from p2pmed.ledger.contracts import membership
from p2pmed.store import Store, StoreError

__all__ = ["ProofUnavailable", "certifying_epoch", "state_proof"]


class ProofUnavailable(Exception):
    """No certified block here commits to the state asked for, or the state is no longer kept."""


def state_proof(store: Store, key: str, height: int | None) -> StateProof:
    """The proof of ``key`` in the state after block ``height`` (None: the newest certified
    state); raise ``ProofUnavailable`` when no certified block commits to it or it is not kept."""
    header, certificate = _certifying_header(store, height)
    try:
        value, path = store.state_path(key, header.state.height)
    except StoreError as error:
        raise ProofUnavailable(str(error)) from None
    return StateProof(key, value, path, proposal_header(header), certificate)


def certifying_epoch(store: Store, height: int) -> membership.Epoch:
    """The epoch whose set ordered (and certified) block ``height``, as the light client reads
    it: from the state the blocks before it built, which the store still keeps for a block
    that certifies a provable state."""
    epoch = membership.epoch_at(store.state_at(height - 1), height)
    assert epoch is not None, "a chain that has blocks has validators from genesis"
    return epoch


def _certifying_header(store: Store, height: int | None) -> tuple[BlockHeader, CommitCertificate]:
    head = store.head()[0]
    if height is None:
        candidates = range(head, head + 1) if head else range(0)
    elif 0 <= height < head:
        candidates = range(height + 1, min(head, height + STATE_LAG_MAX) + 1)
    else:
        candidates = range(0)
    for number in candidates:
        header, encoded = store.block_header(number), store.certificate(number)
        if header is None or encoded is None:
            continue
        if height is None or header.state.height == height:
            return header, codec.decode(CommitCertificate, encoded, codec.BLOCK_SIZE_MAX)
    what = "any state" if height is None else f"the state after block {height}"
    raise ProofUnavailable(f"no certified block here commits to {what} yet")
