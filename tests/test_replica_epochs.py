"""A replica at the end of its epoch, and the heartbeat that fills the last heights."""

from __future__ import annotations

import pytest

from p2pmed import codec
from p2pmed.consensus.actions import Broadcast
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.messages import PrePrepare
from p2pmed.consensus.replica import Replica, ReplicaConfig
from p2pmed.crypto import SignatureDomain
from p2pmed.ledger.tx import Transaction, UnsignedTransaction
from p2pmed.sim.fastsig import FastSigner, FastVerifier

CHAIN = "replica-epochs"
CONFIG = ReplicaConfig(batch_delay_ms=10, heartbeat_interval_ms=60_000)
SIGNERS = [FastSigner(bytes([index + 1]) * 32) for index in range(4)]
CLIENT = FastSigner(b"c" * 32)
VERIFIER = FastVerifier([*SIGNERS, CLIENT])
LAST_BLOCK_MS = 1_000


def transaction(nonce: int) -> Transaction:
    unsigned = UnsignedTransaction("sim.noop", CHAIN, CLIENT.public_key, nonce, {"n": nonce})
    signature = CLIENT.sign(SignatureDomain.TRANSACTION, CHAIN, codec.encode(unsigned))
    return Transaction(unsigned.type, CHAIN, unsigned.sender, nonce, unsigned.body, signature)


def primary(epoch_last: int | None) -> Replica:
    validators = Validators(CHAIN, tuple(signer.public_key for signer in SIGNERS), VERIFIER)
    replica = Replica(
        validators,
        SIGNERS[0],
        CONFIG,
        lambda tx: True,
        now_ms=LAST_BLOCK_MS,
        last_executed=3,
        last_block_hash=bytes(32),
        last_block_time_ms=LAST_BLOCK_MS,
        epoch_last=epoch_last,
    )
    replica.start(LAST_BLOCK_MS)
    return replica


def proposed(actions: list[object]) -> list[PrePrepare]:
    return [a.message for a in actions if isinstance(a, Broadcast) and isinstance(a.message, PrePrepare)]


@pytest.mark.parametrize(
    ("epoch_last", "heartbeat_ms"),
    [(None, LAST_BLOCK_MS + CONFIG.heartbeat_interval_ms), (10, LAST_BLOCK_MS + CONFIG.batch_delay_ms)],
    ids=["idle-heartbeat", "epoch-ending"],
)
def test_a_transaction_arriving_just_before_the_heartbeat_goes_in_the_block_the_heartbeat_owes(
    epoch_last: int | None, heartbeat_ms: int
) -> None:
    """Found by the simulator: the deadline was the heartbeat's, but the primary held the batch
    back for its batch delay, so ``tick`` left work due and asserted (every time an epoch ended
    under load; on an idle network when a transaction came within the batch delay before it)."""
    replica = primary(epoch_last)
    tx = transaction(0)
    assert not proposed(replica.submit(tx, heartbeat_ms - 1))
    assert replica.next_deadline_ms() <= heartbeat_ms
    (pre_prepare,) = proposed(replica.tick(heartbeat_ms))
    assert pre_prepare.proposal.txs == (tx,) and pre_prepare.proposal.height == 4
