"""``p2pmed load``: submit signed sample transactions through one node and time their commits.

The samples are ``load.probe`` transactions (they change nothing but a nonce)
from fresh keys, spread over several senders (each sender's nonces must commit in order, so one sender would
serialise the run). They are signed before the clock starts. Submission is
open loop: transaction i is sent at ``start + i / rate`` whatever happened to the
ones before, so a slow network shows up as latency, not as a lower offered rate.
A commit is timed when the node's ``chain.subscribe`` feed announces the block
holding it; latency is from just before its ``tx.submit`` call to that moment.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.rpc.client import RpcClient, RpcError
from p2pmed.stats import percentiles

__all__ = ["LoadReport", "run_load", "sample_transactions"]

TXS_PER_SENDER = 50


@dataclass
class LoadReport:
    submitted: int
    committed: int
    refused: Counter[str] = field(default_factory=Counter)
    duration_s: float = 0.0
    submit_rate: float = 0.0
    committed_per_s: float = 0.0
    latency_ms: dict[str, float | None] = field(default_factory=dict)

    def lines(self) -> list[str]:
        lines = [
            f"submitted {self.submitted} in {self.duration_s:.2f} s ({self.submit_rate:.0f} tx/s offered)",
            f"committed {self.committed} ({self.committed_per_s:.0f} tx/s)",
        ]
        if self.latency_ms:
            lines.append("latency ms: " + ", ".join(f"{name} {value:.1f}" for name, value in self.latency_ms.items()))
        if self.refused:
            lines.append("refused: " + ", ".join(f"{reason} {count}" for reason, count in sorted(self.refused.items())))
        return lines


def sample_transactions(chain_id: str, count: int, rng: random.Random | None = None) -> list[Transaction]:
    """``count`` probes, interleaved across senders so consecutive ones differ; the
    senders' keys come from ``rng`` (seeded: the same transactions every time)."""
    randbytes = (rng or random.SystemRandom()).randbytes
    senders = [SigningKey.from_seed(randbytes(32)) for _ in range(max(1, -(-count // TXS_PER_SENDER)))]
    return [
        sign_transaction(
            senders[index % len(senders)], chain_id, "load.probe", index // len(senders), Probe(f"load {index}")
        )
        for index in range(count)
    ]


class _CommitWatcher:
    """Records when each awaited transaction's block is announced, in a thread of its own."""

    def __init__(self, socket_path: Path, awaited: set[str]) -> None:
        self.awaited = awaited
        self.committed_at: dict[str, float] = {}
        self.done = threading.Event()
        self._subscription = RpcClient(socket_path).subscribe("chain.subscribe")
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        try:
            for block in self._subscription:
                now = time.monotonic()
                for tx_id in block["tx_ids"]:
                    if tx_id in self.awaited and tx_id not in self.committed_at:
                        self.committed_at[tx_id] = now
                if len(self.committed_at) >= len(self.awaited):
                    break
        except (ConnectionError, OSError, RpcError):
            pass  # the node went away or we closed the subscription
        finally:
            self.done.set()

    def close(self) -> None:
        self._subscription.close()
        self._thread.join(5)


def run_load(
    socket_path: Path,
    count: int,
    rate: float | None = None,
    wait: bool = True,
    timeout_s: float = 60.0,
    progress: Callable[[int], None] | None = None,
) -> LoadReport:
    client = RpcClient(socket_path)
    chain_id = client.call("node.status")["chain_id"]
    txs = sample_transactions(chain_id, count)
    encoded = [tx.encoded.hex() for tx in txs]
    submitted_at: dict[str, float] = {}
    report = LoadReport(submitted=0, committed=0)
    watcher = _CommitWatcher(socket_path, {tx.id.hex() for tx in txs}) if wait else None
    try:
        start = time.monotonic()
        for index, (tx, data) in enumerate(zip(txs, encoded, strict=True)):
            if rate is not None:
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            submitted_at[tx.id.hex()] = time.monotonic()
            try:
                client.call("tx.submit", tx=data)
                report.submitted += 1
            except RpcError as error:
                reason = error.data.get("reason") if isinstance(error.data, dict) else None
                report.refused[reason or error.message] += 1
                del submitted_at[tx.id.hex()]
            if progress is not None:
                progress(index + 1)
        report.duration_s = time.monotonic() - start
        report.submit_rate = report.submitted / report.duration_s if report.duration_s else 0.0
        if watcher is not None:
            watcher.awaited = set(submitted_at)
            watcher.done.wait(timeout_s)
            _summarise_commits(report, submitted_at, watcher.committed_at, start)
    finally:
        client.close()
        if watcher is not None:
            watcher.close()
    return report


def _summarise_commits(
    report: LoadReport, submitted_at: dict[str, float], committed_at: dict[str, float], start: float
) -> None:
    latencies = sorted(
        (committed_at[tx_id] - submitted_at[tx_id]) * 1000 for tx_id in committed_at if tx_id in submitted_at
    )
    report.committed = len(latencies)
    if not latencies:
        return
    elapsed = max(committed_at.values()) - start
    report.committed_per_s = report.committed / elapsed if elapsed > 0 else 0.0
    report.latency_ms = percentiles(latencies, ("p50", "p95", "p99"))
