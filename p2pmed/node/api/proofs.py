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
from p2pmed.consensus.messages import CommitCertificate, proposal_header
from p2pmed.consensus.state_proof import StateProof
from p2pmed.ledger.block import STATE_LAG_MAX, Block
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.contracts.audit import AUDIT_INDEXES, entry_key
from p2pmed.node.api.port import NodePort
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param
from p2pmed.store import Store, StoreError

__all__ = ["certifying_epoch", "proof_methods", "state_proof"]

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
    made = state_proof(store, key, height)
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


def state_proof(store: Store, key: str, height: int | None) -> StateProof:
    """The proof of ``key`` in the state after block ``height`` (None: the newest certified
    state); raise ``RpcError`` when no certified block commits to it or it is not kept."""
    block, certificate = _certifying_block(store, height)
    try:
        value, path = store.state_path(key, block.header.state.height)
    except StoreError as error:
        raise RpcError(ErrorCode.NOT_FOUND, f"state.proof: {error}") from None
    return StateProof(key, value, path, proposal_header(block.header), certificate)


def certifying_epoch(store: Store, height: int) -> membership.Epoch:
    """The epoch whose set ordered (and certified) block ``height``, as the light client reads
    it: from the state the blocks before it built, which the store still keeps for a block
    that certifies a provable state."""
    epoch = membership.epoch_at(store.state_at(height - 1), height)
    assert epoch is not None, "a chain that has blocks has validators from genesis"
    return epoch


def _certifying_block(store: Store, height: int | None) -> tuple[Block, CommitCertificate]:
    head = store.head()[0]
    if height is None:
        candidates = range(head, head + 1) if head else range(0)
    elif 0 <= height < head:
        candidates = range(height + 1, min(head, height + STATE_LAG_MAX) + 1)
    else:
        candidates = range(0)
    for number in candidates:
        block, encoded = store.block(number), store.certificate(number)
        if block is None or encoded is None:
            continue
        if height is None or block.header.state.height == height:
            return block, codec.decode(CommitCertificate, encoded, codec.BLOCK_SIZE_MAX)
    what = "any state" if height is None else f"the state after block {height}"
    raise RpcError(ErrorCode.NOT_FOUND, f"state.proof: no certified block here commits to {what} yet")
