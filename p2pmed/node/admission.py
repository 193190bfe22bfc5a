"""Which client transactions a node takes in, and the memory that checks each signature once.

A node, validator or observer, holds a transaction in its mempool and relays it only if
its sender is registered (a state read, so checked before the signature: it costs less)
and it passes the ledger's stateless checks, signature included. Each transaction's
signature is verified at most once per node: the ids verified are remembered (the most
recent ``VERIFIED_IDS_MAX``), and block execution skips the check for them.
"""

from __future__ import annotations

from p2pmed import codec
from p2pmed.ledger.contracts import devices, identity, membership
from p2pmed.ledger.contracts.probe import PROBE_TYPE
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.machine import Ledger, ledger_time_ms, next_nonce
from p2pmed.ledger.tx import Transaction
from p2pmed.node.mempool import Mempool
from p2pmed.store import Store

__all__ = ["VERIFIED_IDS_MAX", "TxAdmission"]

VERIFIED_IDS_MAX = 200_000
DEVICE_BATCH = "device.batch"


class TxAdmission:
    def __init__(self, ledger: Ledger, store: Store, *, probes_from_anyone: bool = False) -> None:
        self.ledger = ledger
        self.store = store
        self.probes_from_anyone = probes_from_anyone
        """Admit ``load.probe`` from keys registered nowhere (test networks, whose load tools
        sign with throwaway keys); every other transaction needs a registered sender."""
        self.verified: dict[bytes, None] = {}
        """Ids whose transactions passed ``accept``, oldest first."""

    def hold(self, mempool: Mempool, tx: Transaction) -> list[Transaction]:
        """Put a client's or a peer's ``tx`` in ``mempool``; returns what that releases in nonce
        order. Raises ``TxRejected`` if it fails the ledger's checks, is already on the chain
        or cannot wait in the mempool."""
        mempool.check_room(tx)  # before the signature check: under overload, refusing must be cheap
        if self.store.transaction(tx.id) is not None:
            raise TxRejected(RejectReason.DUPLICATE, f"transaction {tx.id.hex()[:16]} is already committed")
        if tx.id not in mempool:
            self.admit(tx)
        return mempool.add(tx, next_nonce(self.store, tx.sender))

    def admit(self, tx: Transaction) -> bool:
        """Whether ``tx`` may wait in the mempool and be relayed: its sender is registered
        and it passes ``accept``; raises ``TxRejected`` if not. Proposals are not held to
        this: a backup may not yet have executed the block that registered a sender the
        primary knows."""
        exempt = self.probes_from_anyone and tx.type == PROBE_TYPE
        if not exempt and not self._registered(tx.sender):
            raise TxRejected(
                RejectReason.UNKNOWN_SENDER,
                f"sender {tx.sender.hex()[:16]} is not a validator, nor an organisation, person or device in force",
            )
        accepted = self.accept(tx)
        self._check_device_rate(tx)
        return accepted

    def _check_device_rate(self, tx: Transaction) -> None:
        """Refuse a device's batch that would be over its rate: the ledger would refuse it too,
        but only after it took a place in a block. Judged at the ledger's time (the head's), which the
        next block's exceeds: a batch due a moment from now waits for it (the refusal says
        how long), rather than let an early one into a block again and again."""
        if tx.type != DEVICE_BATCH:
            return
        try:
            batch = codec.from_value(devices.DeviceBatch, tx.body, "body")
        except codec.CodecError:
            return  # accept() refused it already: a body that decodes passed it
        problem = devices.rate_problem(self.store, batch.gtin, batch.serial, ledger_time_ms(self.store))
        if problem is not None:
            raise TxRejected(RejectReason.NOT_AUTHORISED, problem)

    def _registered(self, sender: bytes) -> bool:
        # People and organisations first: the common case, two state reads.
        return (
            identity.is_registered(self.store, sender, ())
            or sender in membership.known_validator_keys(self.store)
            or devices.device_of(self.store, sender) is not None
        )

    def accept(self, tx: Transaction) -> bool:
        """Whether ``tx`` passes the ledger's stateless checks (signature included),
        verifying it at most once per node; raises ``TxRejected`` if not."""
        if tx.id not in self.verified:
            self.ledger.check(tx)
            self.verified[tx.id] = None
            if len(self.verified) > VERIFIED_IDS_MAX:
                del self.verified[next(iter(self.verified))]
        return True
