"""JSON-RPC methods for the healthcare rules: what the ledger says about identities,
consents, records, audit trails, trials and drug packs, and the next nonce to sign with.

Reads only: changes are signed transactions sent with ``tx.submit``. Bytes travel as
lowercase hex, like everywhere on the socket.
"""

from __future__ import annotations

from typing import Any

from p2pmed.ledger.contracts.consent import valid_consent
from p2pmed.ledger.machine import next_nonce
from p2pmed.node import Node
from p2pmed.rpc.params import Method

__all__ = ["health_methods"]


def health_methods(node: Node) -> dict[str, Method]:
    store = node.core.store

    async def nonce(params: dict[str, Any]) -> dict[str, Any]:
        """The sender's next nonce on the chain, and the one a new transaction should use
        (past any of theirs waiting in this node's mempool)."""
        committed = next_nonce(store, params["sender"])
        return {"committed": committed, "next": node.core.mempool.next_free_nonce(params["sender"], committed)}

    async def consent(params: dict[str, Any]) -> dict[str, Any] | None:
        """The consent in force now for (patient, grantee, category), or null."""
        provision = valid_consent(store, params["patient"], params["grantee"], params["category"], node.clock.now_ms())
        if provision is None:
            return None
        return {
            "patient": provision.patient.hex(),
            "grantee": provision.grantee.hex(),
            "category": provision.category,
            "purpose": provision.purpose,
            "granted_ms": provision.granted_ms,
            "expires_ms": provision.expires_ms,
            "tx_id": provision.tx_id.hex(),
            "granted_by": provision.granted_by.hex(),
        }

    return {
        "account.nonce": Method(nonce, {"sender": bytes}),
        "consent.get": Method(consent, {"patient": bytes, "grantee": bytes, "category": str}),
    }
