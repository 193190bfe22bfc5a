"""Prometheus metrics of one node, on a registry of its own.

Most of what an operator watches is already kept by the parts of the node: the
replica's view and rejections, the transport's, gossip's and RPC server's
counters, the mempool, the store. ``NodeCollector`` reads those at scrape time
rather than counting everything a second time. Only what nothing else keeps is
counted here: transactions in committed blocks, by outcome, and the
submit-to-commit latency of the transactions this node's RPC took in.

The registry is per node, not prometheus-client's global one, so that several
nodes can live in one process (tests) and nothing another library registers
globally leaks into a node's endpoint. ``p2pmed.node.metrics_http`` serves it.
The full list with meanings is in ``docs/operators.md``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from p2pmed.consensus import ViewPhase
from p2pmed.ledger.block import Block
from p2pmed.ledger.machine import BlockExecution
from p2pmed.net.blob_protocol import REQUEST_KINDS
from p2pmed.net.identity import peer_id_of
from p2pmed.node.api.port import NodePort, Traffic

__all__ = ["LATENCY_BUCKETS_S", "NodeCollector", "NodeMetrics", "store_size_bytes"]

SUBMITTED_TRACKED_MAX = 100_000
"""Submit times kept for the latency histogram; beyond that the oldest are forgotten
(a transaction that never commits, e.g. one that lost its nonce, must not stay forever)."""
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_RPC_HELP = {
    "connections_accepted": "RPC connections accepted.",
    "connections_refused": "RPC connections refused because the server was at its connection limit.",
    "clients_dropped": "RPC clients dropped for not reading their replies or notifications.",
    "requests": "RPC request lines received, valid or not.",
    "errors": "RPC requests answered with an error, and subscriptions that ended with one.",
    "rate_limited": "RPC requests refused by the per-connection rate limit.",
    "internal_errors": "RPC handler failures (bugs); each is in the log with its traceback.",
}


class NodeMetrics:
    """The node's registry, and the two things counted only for metrics."""

    def __init__(self, node: NodePort) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(NodeCollector(node))
        ProcessCollector(registry=self.registry)
        self._now_ms = node.now_ms
        self._committed = Counter(
            "p2pmed_transactions_committed",
            "Transactions in blocks this node committed, by outcome: ok, or rejected by the ledger at execution.",
            ["result"],
            registry=self.registry,
        )
        for result in ("ok", "rejected"):
            self._committed.labels(result)
        self._latency = Histogram(
            "p2pmed_commit_latency_seconds",
            "From tx.submit on this node to the commit of the block holding the transaction.",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._submitted_ms: dict[bytes, int] = {}
        node.block_listeners.append(self._on_commit)

    def submitted(self, tx_id: bytes) -> None:
        """A client submitted ``tx_id`` through this node; the first time counts."""
        if tx_id in self._submitted_ms:
            return
        self._submitted_ms[tx_id] = self._now_ms()
        if len(self._submitted_ms) > SUBMITTED_TRACKED_MAX:
            del self._submitted_ms[next(iter(self._submitted_ms))]

    def _on_commit(self, block: Block, execution: BlockExecution) -> None:
        now_ms = self._now_ms()
        for tx, result in zip(block.txs, execution.results, strict=True):
            self._committed.labels("ok" if result.ok else "rejected").inc()
            submitted_ms = self._submitted_ms.pop(tx.id, None)
            if submitted_ms is not None:
                self._latency.observe(max(0, now_ms - submitted_ms) / 1000)


class NodeCollector(Collector):
    """Reads the node's state and counters at each scrape, on the trio thread that
    owns them (see ``p2pmed.node.metrics_http``)."""

    def __init__(self, node: NodePort) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        traffic = self.node.traffic()  # one reading for the whole scrape
        yield from self._identity()
        yield from self._consensus(traffic)
        yield from self._rejections(traffic)
        yield from self._gossip(traffic)
        yield from self._rpc(traffic)
        yield _by_label(
            "p2pmed_custody_refusals",
            "Requests this site's custodian refused, by kind (put, copy, share, sealed), logged or over budget.",
            "kind",
            dict.fromkeys(REQUEST_KINDS, 0) | self.node.site_audit.refused,
        )
        yield _counter(
            "p2pmed_site_audit_write_failures",
            "Entries the site audit log could not write (a full or failing disk); each is logged as an error.",
            self.node.site_audit.write_failures,
        )
        yield _gauge(
            "p2pmed_store_size_bytes",
            "Size of the SQLite store, its write-ahead log included.",
            store_size_bytes(self.node.store_path),
        )

    def _identity(self) -> Iterator[Metric]:
        node = self.node
        info = GaugeMetricFamily(
            "p2pmed_node_info",
            "Constant 1, labelled with who this node is.",
            labels=["chain_id", "moniker", "node_id", "validator_index", "version"],
        )
        info.add_metric(
            [
                node.chain_id,
                node.moniker,
                str(peer_id_of(node.node_key)),
                "" if node.index is None else str(node.index),
                importlib.metadata.version("p2pmed"),
            ],
            1,
        )
        yield info
        yield _gauge("p2pmed_validators", "Validators in the current set.", len(node.validators))
        yield _gauge(
            "p2pmed_peers_connected",
            "Other validators this node has a connection to.",
            len(node.connected_validators()),
        )
        mempool = node.mempool
        yield _gauge("p2pmed_mempool_transactions", "Transactions waiting in the mempool.", len(mempool))
        yield _gauge(
            "p2pmed_mempool_transactions_max", "How many transactions the mempool holds at most.", mempool.size_max
        )
        yield _gauge("p2pmed_mempool_bytes", "Bytes of the transactions waiting in the mempool.", mempool.size_bytes)
        yield _gauge(
            "p2pmed_mempool_bytes_max", "How many bytes of transactions the mempool holds at most.", mempool.bytes_max
        )

    def _consensus(self, traffic: Traffic) -> Iterator[Metric]:
        replica = self.node.replica
        transport = traffic.transport
        yield _gauge("p2pmed_height", "Height of the last block this node committed.", self.node.store.head()[0])
        yield _gauge("p2pmed_epoch", "The epoch whose validator set orders the next block.", self.node.epoch)
        yield from self._block_sync(traffic)
        if replica is None:  # an observer takes no part in consensus
            return
        yield _gauge("p2pmed_view", "Current PBFT view.", replica.view)
        yield _gauge("p2pmed_primary", "Validator index of the current view's primary.", replica.primary)
        yield _gauge(
            "p2pmed_view_change_in_progress",
            "1 while this node is changing view, else 0.",
            1 if replica.view_phase is ViewPhase.CHANGING else 0,
        )
        yield _counter("p2pmed_view_changes_started", "View changes this node started.", replica.view_changes_started)
        yield _by_label(
            "p2pmed_consensus_messages_received", "Consensus messages decoded, by kind.", "kind", replica.received
        )
        yield _by_label(
            "p2pmed_consensus_messages_sent",
            "Consensus messages handed to the transport, by kind.",
            "kind",
            traffic.consensus_sent,
        )
        yield _counter(
            "p2pmed_consensus_frames_received", "Frames read from validators' streams.", transport.frames_received
        )
        yield _counter("p2pmed_consensus_frames_sent", "Frames written to validators' streams.", transport.frames_sent)
        yield _counter(
            "p2pmed_consensus_frames_dropped",
            "Outgoing frames dropped from a full per-peer queue.",
            transport.frames_dropped,
        )
        yield _counter(
            "p2pmed_consensus_frames_throttled",
            "Inbound consensus frames held back because their validator was over its byte rate.",
            transport.inbound_throttled,
        )
        yield _counter(
            "p2pmed_consensus_frames_oversized",
            "Outgoing consensus messages over the frame limit, dropped (a bug: messages are bounded by construction).",
            transport.frames_oversized,
        )
        yield _by_label(
            "p2pmed_consensus_stream_failures",
            "Outgoing consensus streams that failed, by stage.",
            "stage",
            {"open": transport.open_failures, "write": transport.write_failures},
        )

    def _block_sync(self, traffic: Traffic) -> Iterator[Metric]:
        served = {outcome: 0 for outcome in ("answered", "blocks", "malformed", "strangers", "throttled")}
        yield _by_label(
            "p2pmed_block_sync_served",
            "/p2pmed/blocks/1 requests this node answered, blocks it sent, and requests it refused, by outcome.",
            "outcome",
            served | dict(traffic.block_sync_served),
        )
        snapshots = {outcome: 0 for outcome in ("offers", "chunks", "malformed", "strangers", "throttled")}
        yield _by_label(
            "p2pmed_snapshot_served",
            "/p2pmed/snapshot/1 offers and state chunks this node answered, and requests it refused, by outcome.",
            "outcome",
            snapshots | dict(traffic.snapshot_served),
        )
        fetched = {outcome: 0 for outcome in ("answers", "failed", "refused", "blocks")}
        yield _by_label(
            "p2pmed_block_sync_fetched",
            "This node's block sync while outside the validator set: answers, failed requests, answers refused"
            " (a block that did not verify) and blocks taken.",
            "outcome",
            fetched | dict(traffic.block_sync_fetched),
        )
        yield _counter(
            "p2pmed_consensus_strangers",
            "Consensus messages from keys outside the current validator set, dropped.",
            traffic.consensus_strangers,
        )

    def _rejections(self, traffic: Traffic) -> Iterator[Metric]:
        transport, gossip = traffic.transport, traffic.gossip
        family = CounterMetricFamily(
            "p2pmed_messages_rejected",
            "Input from peers refused, by layer and reason: consensus (replica), transport (streams), gossip "
            "(batches).",
            labels=["layer", "reason"],
        )
        replica = self.node.replica
        for reason, count in sorted(replica.rejected.items() if replica is not None else ()):
            family.add_metric(["consensus", reason], count)
        family.add_metric(["transport", "not-a-validator"], transport.streams_refused)
        family.add_metric(["transport", "bad-frame"], transport.streams_malformed)
        for reason, count in sorted(gossip.batches_rejected.items()):
            family.add_metric(["gossip", reason], count)
        yield family

    def _gossip(self, traffic: Traffic) -> Iterator[Metric]:
        gossip = traffic.gossip
        yield _counter(
            "p2pmed_gossip_transactions_received",
            "Transactions received in gossip batches from peers.",
            gossip.txs_received,
        )
        yield _counter(
            "p2pmed_gossip_transactions_published",
            "Transactions this node published in gossip batches.",
            gossip.txs_published,
        )
        yield _counter(
            "p2pmed_gossip_transactions_dropped",
            "Transactions never published: pushed out of a full queue.",
            gossip.txs_dropped,
        )
        yield _counter(
            "p2pmed_gossip_peers_disconnected",
            "Peers disconnected for forwarding rejected batches beyond their allowance.",
            gossip.peers_disconnected,
        )
        yield _counter(
            "p2pmed_gossip_batches_dropped",
            "Accepted batches dropped because the node fell behind.",
            gossip.batches_dropped,
        )
        yield _by_label(
            "p2pmed_gossip_transactions_refused",
            "Gossiped transactions the node refused, by reason (mostly duplicates).",
            "reason",
            traffic.gossip_txs_refused,
        )
        yield _counter(
            "p2pmed_gossip_transactions_rebroadcast",
            "Our clients' transactions gossiped again because they were still waiting.",
            traffic.gossip_txs_rebroadcast,
        )

    def _rpc(self, traffic: Traffic) -> Iterator[Metric]:
        yield _gauge("p2pmed_rpc_connections", "RPC clients connected now.", traffic.rpc_connections)
        counters = dataclasses.asdict(traffic.rpc)
        for name, help_text in _RPC_HELP.items():
            yield _counter(f"p2pmed_rpc_{name}", help_text, counters[name])


def store_size_bytes(store_path: Path) -> int:
    """The database file plus its write-ahead log (where recent commits live until a checkpoint)."""
    total = 0
    for path in (store_path, store_path.with_name(store_path.name + "-wal")):
        try:
            total += os.stat(path).st_size
        except FileNotFoundError:
            pass
    return total


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)


def _by_label(name: str, help_text: str, label: str, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family
