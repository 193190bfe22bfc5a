"""RPC methods about the node and its chain: status, peers, counters, transactions,
blocks, the mempool and the test harness's faults.

Bytes (ids, hashes, keys, encoded transactions) travel as lowercase hex. A
transaction is submitted as the hex of its canonical CBOR encoding, exactly the
bytes its id hashes, so a client in any language can build one.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator
from typing import Any

from p2pmed.consensus import ViewPhase
from p2pmed.consensus.replica import Replica
from p2pmed.ledger.block import Block
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.errors import TxRejected
from p2pmed.ledger.machine import BlockExecution
from p2pmed.ledger.tx import decode_transaction
from p2pmed.net.faults import FaultRules
from p2pmed.net.identity import peer_id_of
from p2pmed.node.api.commits import each_commit
from p2pmed.node.api.port import NodePort
from p2pmed.node.seats import seats
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param

__all__ = ["MEMPOOL_LIST_MAX", "block_summary", "chain_methods"]

MEMPOOL_LIST_MAX = 1_000


def chain_methods(node: NodePort) -> dict[str, Method]:
    async def status(params: dict[str, Any]) -> dict[str, Any]:
        height, head_hash = node.store.head()
        return {
            "chain_id": node.chain_id,
            "moniker": node.moniker,
            "node_id": str(peer_id_of(node.node_key)),
            "validator_index": node.index,
            "validators": len(node.validators),
            "epoch": node.epoch,
            "height": height,
            "last_block_hash": head_hash.hex(),
            "started_from": None if node.store.base is None else node.store.base.height,
            **_consensus_status(node.replica),
            "peers": len(node.connected_validators()),
            "mempool_size": len(node.mempool),
            "sync": "synced" if node.peer_height is None else "catching-up",
            "peer_height": node.peer_height,
            "version": importlib.metadata.version("p2pmed"),
            "uptime_s": (node.now_ms() - node.started_ms) // 1000,
        }

    async def peers(params: dict[str, Any]) -> list[dict[str, Any]]:
        """The validators, then this node if it is an observer, then the other peers connected."""
        connected = set(node.connected_validators())
        validators = [
            {
                "index": index,
                "role": "validator",
                "moniker": validator.moniker,
                "node_id": str(peer_id_of(validator.key)),
                "address": validator.address,
                "self": index == node.index,
                "connected": index in connected,
            }
            for index, validator in enumerate(node.validators)
        ]
        itself = [] if node.index is not None else [_observer(str(peer_id_of(node.node_key)), node.moniker, True)]
        return validators + itself + [_observer(str(peer), "", False) for peer in node.connected_others()]

    async def validator_set(params: dict[str, Any]) -> dict[str, Any]:
        """The set that orders the next block and, once a change has passed, the next one."""
        current = membership.epoch_at(node.store, node.store.head()[0] + 1)
        latest = membership.latest_epoch(node.store)
        assert current is not None and latest is not None
        upcoming = _epoch_plain(node, latest) if latest.number > current.number else None
        return {**_epoch_plain(node, current), "next": upcoming}

    async def counters(params: dict[str, Any]) -> dict[str, Any]:
        traffic = node.traffic()
        replica = node.replica
        return {
            "consensus_rejected": dict(replica.rejected) if replica is not None else {},
            "view_changes_started": replica.view_changes_started if replica is not None else 0,
            "transport": vars(traffic.transport),
            "gossip": vars(traffic.gossip),
            "gossip_txs_refused": dict(traffic.gossip_txs_refused),
            "gossip_txs_rebroadcast": traffic.gossip_txs_rebroadcast,
            "block_sync": dict(traffic.block_sync_fetched),
            "block_sync_served": dict(traffic.block_sync_served),
            "snapshot_served": dict(traffic.snapshot_served),
            "consensus_strangers": traffic.consensus_strangers,
        }

    async def submit(params: dict[str, Any]) -> dict[str, Any]:
        try:
            tx = decode_transaction(params["tx"])
            node.submit(tx)
        except TxRejected as error:
            raise RpcError(ErrorCode.REJECTED_TRANSACTION, str(error), {"reason": error.reason.value}) from None
        return {"tx_id": tx.id.hex(), "status": "pending"}

    async def get_tx(params: dict[str, Any]) -> dict[str, Any]:
        tx_id: bytes = params["tx_id"]
        stored = node.store.transaction(tx_id)
        if stored is not None:
            return {
                "tx_id": tx_id.hex(),
                "status": "committed" if stored.reject_reason is None else "rejected",
                "height": stored.height,
                "position": stored.position,
                "reason": None if stored.reject_reason is None else stored.reject_reason.value,
                "detail": stored.reject_detail or None,
                "type": stored.tx.type,
                "sender": stored.tx.sender.hex(),
                "nonce": stored.tx.nonce,
                "encoded": stored.tx.encoded.hex(),
            }
        if tx_id in node.mempool:
            return {"tx_id": tx_id.hex(), "status": "pending"}
        raise RpcError(ErrorCode.NOT_FOUND, f"transaction {tx_id.hex()} is neither committed nor waiting on this node")

    async def get_block(params: dict[str, Any]) -> dict[str, Any]:
        store = node.store
        if (params["height"] is None) == (params["hash"] is None):
            raise RpcError(ErrorCode.INVALID_PARAMS, 'chain.block: give exactly one of "height" and "hash"')
        block = store.block(params["height"]) if params["hash"] is None else store.block_by_hash(params["hash"])
        if block is None:
            wanted = f"height {params['height']}" if params["hash"] is None else f"hash {params['hash'].hex()}"
            since = "" if store.base is None else f"; this node started from the state after block {store.base.height}"
            raise RpcError(ErrorCode.NOT_FOUND, f"no block at {wanted}; the head is at {store.head()[0]}{since}")
        certificate = store.certificate(block.height)
        return {
            **block_summary(block),
            "previous_hash": block.header.previous_hash.hex(),
            "tx_root": block.header.tx_root.hex(),
            "proposer": block.header.proposer.hex(),
            "commit_certificate": None if certificate is None else certificate.hex(),
        }

    async def faults(params: dict[str, Any]) -> dict[str, Any]:
        """Set the consensus traffic faults (test harness only); returns what is in force."""
        faults = node.faults
        if node.replica is None:
            raise RpcError(ErrorCode.DISABLED, "this node is an observer: it has no consensus traffic to fault")
        if faults is None:
            raise RpcError(
                ErrorCode.DISABLED, "fault injection is off on this node: set [fault_injection] enabled = true"
            )
        try:
            faults.rules = FaultRules(
                drop=params["drop_permille"] / 1000,
                delay_ms=params["delay_ms"],
                blocked_out=_indexes(params["blocked_out"], len(node.validators), "blocked_out"),
                blocked_in=_indexes(params["blocked_in"], len(node.validators), "blocked_in"),
            )
        except ValueError as error:
            raise RpcError(ErrorCode.INVALID_PARAMS, f"debug.faults: {error}") from None
        rules = faults.rules
        return {
            "drop_permille": round(rules.drop * 1000),
            "delay_ms": rules.delay_ms,
            "blocked_out": sorted(rules.blocked_out),
            "blocked_in": sorted(rules.blocked_in),
            "dropped_out": faults.dropped_out,
            "dropped_in": faults.dropped_in,
        }

    async def mempool_list(params: dict[str, Any]) -> dict[str, Any]:
        waiting = node.mempool.transactions()
        limit = params["limit"]
        if not 1 <= limit <= MEMPOOL_LIST_MAX:
            raise RpcError(ErrorCode.INVALID_PARAMS, f'mempool.list: "limit" must be 1..{MEMPOOL_LIST_MAX}')
        return {
            "size": len(waiting),
            "txs": [
                {"tx_id": tx.id.hex(), "type": tx.type, "sender": tx.sender.hex(), "nonce": tx.nonce}
                for tx in waiting[:limit]
            ],
        }

    def subscribe_blocks(params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Each committed block's summary."""
        return each_commit(node, lambda block, execution: [block_summary(block, execution)])

    return {
        "node.status": Method(status),
        "node.counters": Method(counters),
        "net.peers": Method(peers),
        "validator.set": Method(validator_set),
        "tx.submit": Method(submit, {"tx": bytes}),
        "tx.get": Method(get_tx, {"tx_id": bytes}),
        "chain.block": Method(get_block, {"height": Param(int, optional=True), "hash": Param(bytes, optional=True)}),
        "chain.subscribe": Method(subscribe_blocks, subscription=True),
        "debug.faults": Method(
            faults,
            {
                "drop_permille": Param(int, optional=True, default=0),
                "delay_ms": Param(int, optional=True, default=0),
                "blocked_out": Param(str, optional=True, default=""),
                "blocked_in": Param(str, optional=True, default=""),
            },
        ),
        "mempool.list": Method(mempool_list, {"limit": Param(int, optional=True, default=100)}),
    }


def _epoch_plain(node: NodePort, epoch: membership.Epoch) -> dict[str, Any]:
    return {
        "epoch": epoch.number,
        "first_height": epoch.first_height,
        "validators": [
            {
                "index": index,
                "key": seat.key.hex(),
                "node_id": str(peer_id_of(seat.key)),
                "moniker": seat.moniker,
                "kind": seat.kind,
                "address": seat.address,
            }
            for index, seat in enumerate(seats(node.store, epoch))
        ],
    }


def _consensus_status(replica: Replica | None) -> dict[str, Any]:
    """What ``node.status`` says of the node's part in consensus: none, for an observer."""
    if replica is None:
        return {"view": None, "primary": None, "role": "observer", "request_timeout_ms": None}
    role = "view-change" if replica.view_phase is ViewPhase.CHANGING else "primary" if replica.is_primary else "backup"
    return {
        "view": replica.view,
        "primary": replica.primary,
        "role": role,
        "request_timeout_ms": replica.request_timeout_ms,
    }


def _observer(node_id: str, moniker: str, itself: bool) -> dict[str, Any]:
    """A ``net.peers`` row for a node that is not a validator: it votes on nothing."""
    return {
        "index": None,
        "role": "observer",
        "moniker": moniker,
        "node_id": node_id,
        "address": None,
        "self": itself,
        "connected": not itself,
    }


def _indexes(text: str, validators: int, name: str) -> frozenset[int]:
    """``"1,3"`` -> {1, 3}: validator indexes, as a comma-separated string."""
    try:
        indexes = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f'"{name}" must list validator indexes like "1,3", got {text!r}') from None
    if any(not 0 <= index < validators for index in indexes):
        raise ValueError(f'"{name}" names a validator outside 0..{validators - 1}')
    return indexes


def block_summary(block: Block, execution: BlockExecution | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "height": block.height,
        "hash": block.hash.hex(),
        "time_ms": block.header.time_ms,
        "tx_count": len(block.txs),
        "tx_ids": [tx.id.hex() for tx in block.txs],
    }
    if execution is not None:
        summary["rejected"] = sum(not result.ok for result in execution.results)
    return summary
