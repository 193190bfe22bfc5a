"""``state.proof``: a key's value or its absence, with a proof to a certified block; and
``audit.proof``: the same for one audit entry, whose index keys are state keys.

A header commits to the state after an earlier block (normally its parent), so the
newest state with a certified root is the one the head block commits to, not the
head's own. Without ``height`` the proof is of that state; with ``height`` it is of the
state after block ``height``, certified by the first later block that commits to it
(within ``STATE_LAG_MAX`` blocks), if the store still keeps that state
(``STATE_HISTORY_BLOCKS`` blocks back). The client checks the hex ``proof`` offline
with ``p2pmed.consensus.state_proof.verify_state_proof`` and the validator set of the
certifying block's epoch. The answer names that epoch (number, first height, keys) so
the client can compare it with its own view of the chain; it is what the node claims,
not something the proof proves (``p2pmed.consensus.state_proof`` says what an offline check from genesis
needs besides).
"""

from __future__ import annotations

from typing import Any

from p2pmed import codec
from p2pmed.ledger.contracts.audit import AUDIT_INDEXES, entry_key
from p2pmed.node.api.port import NodePort
from p2pmed.node.state_proofs import ProofUnavailable, certifying_epoch, state_proof
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param
from p2pmed.store import Store

__all__ = ["proof_methods"]

KEY_LENGTH_MAX = 1_024


def proof_methods(node: NodePort) -> dict[str, Method]:
    async def proof(params: dict[str, Any]) -> dict[str, Any]:
        key, height = params["key"], params["height"]
        if not 0 < len(key) <= KEY_LENGTH_MAX:
            raise RpcError(ErrorCode.INVALID_PARAMS, f'state.proof: "key" must be 1..{KEY_LENGTH_MAX} characters')
        return _answer(node.store, key, height)

    async def entry_proof(params: dict[str, Any]) -> dict[str, Any]:
        """The proof of the audit entry that transaction ``tx_id`` (ordered at ``height``) made
        for ``subject``, kept by ``by`` (patient, actor or record): present, or proved absent."""
        by, subject, height, tx_id = params["by"], params["subject"], params["height"], params["tx_id"]
        if by not in AUDIT_INDEXES or not 0 < height or len(subject) > 64 or len(tx_id) != 32:
            raise RpcError(
                ErrorCode.INVALID_PARAMS,
                f'audit.proof: "by" is one of {", ".join(AUDIT_INDEXES)}, "height" a block, "tx_id" 32 bytes',
            )
        return _answer(node.store, entry_key(by, subject, height, tx_id), None)

    return {
        "state.proof": Method(proof, {"key": str, "height": Param(int, optional=True)}),
        "audit.proof": Method(entry_proof, {"by": str, "subject": bytes, "height": int, "tx_id": bytes}),
    }


def _answer(store: Store, key: str, height: int | None) -> dict[str, Any]:
    try:
        made = state_proof(store, key, height)
    except ProofUnavailable as error:
        raise RpcError(ErrorCode.NOT_FOUND, f"state.proof: {error}") from None
    epoch = certifying_epoch(store, made.header.height)
    return {
        "key": key,
        "value": None if made.value is None else made.value.hex(),
        "state_height": made.header.state.height,
        "state_root": made.header.state.state_root.hex(),
        "block_height": made.header.height,
        "epoch": epoch.number,
        "epoch_first_height": epoch.first_height,
        "validators": [validator.hex() for validator in epoch.keys],
        "proof": codec.encode(made).hex(),
    }
