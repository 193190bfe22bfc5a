"""What a node keeps and serves so that another can start from a recent state
(``p2pmed.node.fast_start``) instead of replaying every block since genesis.

- Epoch proofs (``p2pmed.node.epoch_proofs``): a chain of them takes a node from the
  genesis set to the set in force (``p2pmed.consensus.snapshot_offer``). A node that was
  down for all of an epoch's last ``EPOCH_DELAY_BLOCKS`` blocks misses the window and
  offers no snapshots; one started from a snapshot keeps the proofs it was given.
- The offer (``offer``): the newest snapshot height (``Store.snapshot_heights``, every
  ``snapshot_interval`` blocks) whose next block commits to its state, with both blocks'
  certificates and the epoch proofs.
- The entries (``entries``): the state after a snapshot height in key-ordered chunks. The
  store keeps the two newest snapshot heights readable, so a node has at least one
  interval of blocks to fetch a state in.
"""

from __future__ import annotations

import structlog

from p2pmed import codec
from p2pmed.consensus.messages import CommitCertificate, proposal_header
from p2pmed.consensus.snapshot_offer import SnapshotOffer
from p2pmed.consensus.state_proof import StateProof
from p2pmed.ledger.contracts import membership
from p2pmed.net.snapshot_sync import CHUNK_BYTES_MAX, SnapshotAnswer, StateEntry
from p2pmed.store import Store, StoreError

__all__ = ["entries", "offer"]

log = structlog.get_logger(__name__)


def offer(store: Store) -> SnapshotAnswer:
    """The newest snapshot this store can vouch for, or an error saying why there is none."""
    epochs = tuple(codec.decode(StateProof, data, codec.BLOCK_SIZE_MAX) for data in store.epoch_proofs())
    latest = membership.latest_epoch(store)
    if latest is not None and latest.number > len(epochs):
        return SnapshotAnswer(f"no snapshot: this node lacks the proof of epoch {len(epochs) + 1}")
    for height in store.snapshot_heights():
        base, anchor = store.block_header(height), store.block_header(height + 1)
        base_certificate, anchor_certificate = store.certificate(height), store.certificate(height + 1)
        if base is None or anchor is None or base_certificate is None or anchor_certificate is None:
            continue
        if anchor.state.height != height:
            continue  # pipelined: block height + 1 commits to an older state
        return SnapshotAnswer(
            "",
            SnapshotOffer(
                epochs,
                base,
                _certificate(base_certificate),
                proposal_header(anchor),
                _certificate(anchor_certificate),
            ),
        )
    return SnapshotAnswer(f"no snapshot: none of heights {store.snapshot_heights()} is certified here")


def entries(store: Store, height: int, after: str) -> SnapshotAnswer:
    """One chunk of the state after block ``height``, from the first key after ``after``."""
    try:
        found, more = store.snapshot_entries(height, after, CHUNK_BYTES_MAX)
    except StoreError as error:
        return SnapshotAnswer(str(error))
    return SnapshotAnswer("", None, tuple(StateEntry(key, value) for key, value in found), more)


def _certificate(encoded: bytes) -> CommitCertificate:
    return codec.decode(CommitCertificate, encoded, codec.BLOCK_SIZE_MAX)
