"""How the replica learns, proposes and checks the state commitment a proposal carries.

A block's header commits to the outcome of an earlier block (``StateCommitment``,
``p2pmed.ledger.block``). The replica does not execute blocks; its host does, and
answers through ``StateCommitments``: the highest block it has executed and the
commitment of any executed block. The rules:

- The primary commits to the latest block its host executed: the parent with one
  proposal in flight (``pipeline_max = 1``), an older one with more. It proposes height
  h only once its host executed block h - ``STATE_LAG_MAX`` (so ``pipeline_max`` is
  at most ``STATE_LAG_MAX``).
- A backup prepares a proposal only if its commitment is one of the last
  ``STATE_LAG_MAX`` blocks and equals its own host's for that block. If its host has
  not executed that block yet (it is a little behind, or the primary pipelines), the
  backup holds the pre-prepare (one per sequence, inside the watermarks) and takes it
  up when its host reports progress (``Replica.state_advanced``): a proposal is never
  refused for arriving before the block it builds on executed here.
- Across a change of the validator set nothing changes: a commitment names a height, not
  an epoch. The next epoch's replica is built after its host executed the old epoch's
  last block, so the blocks its first proposals commit to (of the old epoch) have all
  executed there. A replica of the old epoch never holds a proposal of the new one: it
  is signed for another epoch, and lies beyond the old epoch's last height.
- The empty blocks a NEW-VIEW fills gaps with commit to genesis (height 0): their new
  primary may not have executed the block before them (it may be a re-proposal of the
  same new view), and every replica can check the genesis commitment.

``Stateless`` is the host of a chain without a state machine (the simulator, replica
tests): every block's outcome is the empty state.
"""

from __future__ import annotations

from typing import Protocol

from p2pmed.consensus.certificates import InvalidMessage
from p2pmed.ledger.block import EMPTY_GENESIS_STATE, STATE_LAG_MAX, StateCommitment

__all__ = ["STATELESS", "StateCommitments", "Stateless", "check_commitment"]


class StateCommitments(Protocol):
    def executed_height(self) -> int:
        """The highest block whose outcome is known (0: only genesis)."""
        ...

    def commitment(self, height: int) -> StateCommitment | None:
        """The outcome of block ``height`` (at most ``executed_height``); None if not kept."""
        ...


class Stateless:
    """A chain with no state: every block, executed or not, leaves the empty state."""

    def executed_height(self) -> int:
        return 1 << 62

    def commitment(self, height: int) -> StateCommitment:
        return StateCommitment(height, EMPTY_GENESIS_STATE.state_root, EMPTY_GENESIS_STATE.results_root)


STATELESS = Stateless()


def check_commitment(commitments: StateCommitments, state: StateCommitment, height: int) -> bool:
    """Whether a proposal at ``height`` committing to ``state`` can be prepared: True if it
    matches our host's commitment, False if our host has not executed ``state.height`` yet;
    raises ``InvalidMessage`` if it is out of range or differs from ours."""
    if not height - STATE_LAG_MAX <= state.height < height:
        raise InvalidMessage(f"proposal at {height} commits to block {state.height}, outside the last {STATE_LAG_MAX}")
    if state.height > commitments.executed_height():
        return False
    own = commitments.commitment(state.height)
    if own is None:
        raise InvalidMessage(f"proposal at {height} commits to block {state.height}, whose outcome is not kept here")
    if own != state:
        raise InvalidMessage(
            f"proposal at {height} commits to a state after block {state.height} that differs from ours"
        )
    return True
