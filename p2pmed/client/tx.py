"""Sending transactions from a client: sign with the sender's next nonce, submit, await
the ledger's decision. Keys stay with the caller; only signed bytes reach the node."""

from __future__ import annotations

import time
from typing import Any

from p2pmed.crypto import SigningKey
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.rpc.client import RpcClient

__all__ = ["sign_next", "wait_decided"]

POLL_S = 0.05


def sign_next(client: RpcClient, key: SigningKey, tx_type: str, body: Any) -> Transaction:
    """``body`` signed as ``tx_type`` for the node's chain, with the first nonce neither
    committed nor waiting in the node's mempool."""
    chain_id = client.call("node.status")["chain_id"]
    nonce = client.call("account.nonce", sender=key.public_key.hex())["next"]
    return sign_transaction(key, chain_id, tx_type, nonce, body)


def wait_decided(client: RpcClient, tx: Transaction, timeout_s: float) -> dict[str, Any] | None:
    """``tx.get``'s answer once the ledger has committed or rejected ``tx``; None if it is
    still pending after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (answer := client.call("tx.get", tx_id=tx.id.hex()))["status"] == "pending":
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_S)
    return dict(answer)
