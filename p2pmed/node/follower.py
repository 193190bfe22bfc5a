"""The chain of a node outside the validator set: the validators' blocks, verified as a light
client verifies them, then executed with the same ledger code into the same store as a
validator's.

``ChainFollower.apply`` hands one validator's answer (``p2pmed.net.block_sync``) to ``take``
block by block (``NodeCore.apply_synced``): each block that chains to the head with a
certificate of a quorum of its epoch's set (``p2pmed.consensus.light_client``, the set read
from the chain executed so far) is executed and stored exactly as a validator commits; the
first that does not is refused with the rest of the answer.

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

from p2pmed.consensus.certificates import InvalidMessage, Validators
from p2pmed.consensus.messages import BlockWithCertificate
from p2pmed.net.block_sync import BlockSyncClient, SyncAnswer
from p2pmed.store import Store

__all__ = ["POLL_INTERVAL_S", "ChainFollower"]

log = structlog.get_logger(__name__)

POLL_INTERVAL_S = 0.2
RETRY_INTERVAL_S = 0.5


class ChainFollower:
    def __init__(
        self,
        store: Store,
        validators: Callable[[], Validators],
        take: Callable[[BlockWithCertificate], None],
        wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.validators = validators
        """The set of the current epoch (``NodeCore.validators``)."""
        self.take = take
        """Verify (as ``p2pmed.consensus.light_client.check_next``), execute and store a block;
        raise ``InvalidMessage`` if it does not verify (``NodeCore.apply_synced``)."""
        self.wanted = wanted
        """Whether to follow at all: not while this node is a validator (its replica syncs)."""
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
        faulty = self.validators().f
        return claims[faulty] if len(claims) > faulty else 0

    def apply(self, answer: SyncAnswer) -> tuple[int, InvalidMessage | None]:
        """Take the blocks of ``answer`` that verify, one by one; returns how many, and why
        the rest (if any) was refused."""
        taken = 0
        for item in answer.blocks:
            if not self.wanted():  # the node just became a validator: its replica goes on
                break
            try:
                self.take(item)
            except InvalidMessage as refusal:
                self.counters["blocks"] += taken
                return taken, refusal
            taken += 1
        self.counters["blocks"] += taken
        return taken, None

    async def run(
        self, client: BlockSyncClient, validators: Callable[[], Sequence[ID]], connected: Callable[[], set[ID]]
    ) -> None:
        """Follow the validators (the current set's peer ids, asked anew each turn) until cancelled."""
        turn = 0
        while True:
            if not self.wanted():
                await trio.sleep(POLL_INTERVAL_S)
                continue
            reachable = [peer for peer in validators() if peer in connected()] or list(validators())
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
