"""An observer's chain: the validators' blocks, verified as a light client verifies them, then
executed with the same ledger code into the same store as a validator's.

``ChainFollower.apply`` takes one validator's answer (``p2pmed.net.block_sync``): the blocks
that chain to the head with a quorum certificate each (``p2pmed.consensus.light_client``)
are executed and appended with their certificates, one SQL transaction per block, and the
block listeners called, exactly as a validator commits; the rest of the answer is refused.
A store write that fails stops the node (``StorageFailed``), as on a validator.

``ChainFollower.run`` asks the validators in turn, the connected ones first: a validator
that answers garbage, forged blocks or nothing moves the follower on to the next, and
one that withholds new blocks is outvoted by the next one asked. It asks the same
validator again at once while it has more, the next one at once while the validators'
head is ahead, and otherwise polls every ``POLL_INTERVAL_S``. Each answer claims the
validator's head; the head the observer believes is the (f+1)-th highest claim, which at
least one honest validator has reached, so no single validator can make it look behind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import structlog
import trio
from libp2p.peer.id import ID

from p2pmed import codec
from p2pmed.consensus.certificates import InvalidMessage
from p2pmed.consensus.light_client import ValidatorSets, verified_prefix
from p2pmed.ledger.machine import Ledger
from p2pmed.net.block_sync import BlockSyncClient, SyncAnswer
from p2pmed.node.api.port import BlockListener
from p2pmed.node.core import StorageFailed
from p2pmed.store import Store

__all__ = ["POLL_INTERVAL_S", "ChainFollower"]

log = structlog.get_logger(__name__)

POLL_INTERVAL_S = 0.2
RETRY_INTERVAL_S = 0.5


class ChainFollower:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        validator_sets: ValidatorSets,
        verified_tx_ids: dict[bytes, None],
        listeners: list[BlockListener],
        fault_tolerance: int,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.validator_sets = validator_sets
        self.verified_tx_ids = verified_tx_ids
        self.listeners = listeners
        self.fault_tolerance = fault_tolerance
        self.heads: dict[ID, int] = {}
        """The head each validator last claimed."""
        self.counters: Counter[str] = Counter()
        """Answers by outcome (``answers``, ``failed``, ``refused``) and ``blocks`` applied."""

    @property
    def height(self) -> int:
        return self.store.head()[0]

    @property
    def validators_head(self) -> int:
        """A height at least one honest validator has reached: the (f+1)-th highest claim."""
        claims = sorted(self.heads.values(), reverse=True)
        return claims[self.fault_tolerance] if len(claims) > self.fault_tolerance else 0

    def apply(self, answer: SyncAnswer) -> tuple[int, InvalidMessage | None]:
        """Execute and store the blocks of ``answer`` that verify; returns how many, and why
        the rest (if any) was refused."""
        height, head_hash = self.store.head()
        taken, refusal = verified_prefix(self.validator_sets, height, head_hash, answer.blocks)
        for item in taken:
            execution = self.ledger.execute_block(self.store, item.block, verified_tx_ids=self.verified_tx_ids)
            try:
                self.store.append_block(item.block, execution, codec.encode(item.certificate))
            except Exception as error:
                raise StorageFailed(f"the store write failed, so the node stops: {error!r}") from error
            for listener in list(self.listeners):  # a listener may remove itself
                listener(item.block, execution)
        self.counters["blocks"] += len(taken)
        return len(taken), refusal

    async def run(self, client: BlockSyncClient, validators: Sequence[ID], connected: Callable[[], set[ID]]) -> None:
        """Follow the validators until cancelled."""
        turn = 0
        while True:
            reachable = [peer for peer in validators if peer in connected()] or list(validators)
            peer = reachable[turn % len(reachable)]
            answer = await client.request(peer, self.height + 1)
            if answer.error:
                self.counters["failed"] += 1
                log.info("block sync failed", peer=str(peer), error=answer.error[:200])
                turn += 1
                await trio.sleep(RETRY_INTERVAL_S)
                continue
            self.counters["answers"] += 1
            self.heads[peer] = answer.head
            applied, refusal = self.apply(answer)
            if refusal is not None:
                self.counters["refused"] += 1
                log.warning("block sync answer refused", peer=str(peer), reason=refusal.reason, applied=applied)
            if applied and answer.more and refusal is None:
                continue  # the same validator has more
            turn += 1
            if not applied or self.height >= self.validators_head:
                await trio.sleep(POLL_INTERVAL_S)
