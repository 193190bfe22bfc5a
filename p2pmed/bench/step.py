"""One benchmark step: an open-loop load at one rate, spread over every node, and what it did.

Open loop: transaction i is due at ``i / rate`` seconds after the step starts,
whatever happened to the ones before, and goes to node ``i mod N`` (each sender
key is used through one node only, so its nonces arrive in order). Everything
is signed and encoded into ready JSON-RPC request lines before the clock starts.

Each node gets one connection and one sender thread, which writes whatever is
due in one ``sendall`` and never waits for replies: requests are pipelined (the
node answers a connection's requests in order) and a second thread per node
reads the replies, noting refusals. So a slow node delays nothing but its own
socket, and when a node stops reading, the sender blocks, the *achieved*
offered rate falls below the asked one and the send lag grows: both are
reported, so a client that cannot keep up is seen, not mistaken for the network.

With ``resend_after_s`` the client is closed loop where the network pushes back, as a
real client is: a transaction refused as ``mempool-full`` is written again that long after
the refusal came back (by a third thread per node), twice as long after each further
refusal of it (up to ``RESEND_BACKOFF_MAX`` times; a fixed delay is a retry storm: at
twice the capacity it made ~16,000 writes a second and the network committed 3-8 % of
the load), until the step ends. Without it, a refused transaction is lost, and so are its
sender's later nonces, which then wait in the mempools behind the missing one: at twice
the capacity that is most senders, so an open-loop overload step measures the doomed
senders as much as the network.

Latency is from the moment a transaction was *due* (not when it was written)
to its commit announced by the node it went to: time spent queued behind a
stalled socket counts, as it would for a real client (no coordinated omission).
CPU figures cover the send window: from the first due transaction to the last
one written.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pmed.bench.commits import CommitWatchers
from p2pmed.bench.cpu import cpu_seconds
from p2pmed.client.load import sample_transactions
from p2pmed.stats import percentiles

__all__ = ["StepLoad", "StepResult", "prepare_load", "run_step"]

STEP_TXS_MAX = 100_000
"""Transactions signed for one step at most; beyond it the step is shorter, not faster."""
SEND_TIMEOUT_S = 30.0
"""A node that reads nothing of ours for this long ends that node's sending for the step."""
POLL_S = 0.05
RESEND_BACKOFF_MAX = 64
RESENT_REASON = "mempool-full"
"""The refusal a resending client tries again: the others (a bad or stale transaction) stay refused."""


@dataclass(frozen=True)
class StepLoad:
    """What one step sends: per node, its request lines and their tx ids (hex), in send order."""

    rate: float
    lines: tuple[tuple[bytes, ...], ...]
    tx_ids: tuple[tuple[str, ...], ...]

    @property
    def count(self) -> int:
        return sum(len(lines) for lines in self.lines)

    @property
    def duration_s(self) -> float:
        return self.count / self.rate

    def due_s(self, node: int, index: int) -> float:
        """When node's ``index``-th transaction is due, in seconds after the step starts."""
        return (index * len(self.lines) + node) / self.rate


def prepare_load(chain_id: str, nodes: int, rate: float, duration_s: float, rng: random.Random) -> StepLoad:
    """``rate x duration_s`` transactions (at most ``STEP_TXS_MAX``) from fresh senders drawn from ``rng``."""
    assert nodes >= 1 and rate > 0 and duration_s > 0
    count = min(STEP_TXS_MAX, max(1, math.ceil(rate * duration_s)))
    lines, tx_ids = [], []
    for node in range(nodes):
        txs = sample_transactions(chain_id, len(range(node, count, nodes)), rng)
        lines.append(tuple(_request_line(index, tx.encoded.hex()) for index, tx in enumerate(txs)))
        tx_ids.append(tuple(tx.id.hex() for tx in txs))
    return StepLoad(rate, tuple(lines), tuple(tx_ids))


def _request_line(request_id: int, tx_hex: str) -> bytes:
    request = {"jsonrpc": "2.0", "id": request_id, "method": "tx.submit", "params": {"tx": tx_hex}}
    return (json.dumps(request, separators=(",", ":")) + "\n").encode()


@dataclass
class StepResult:
    label: str
    rate: float
    sent: int
    committed: int
    window_s: float
    """The send window: from the first due transaction to the last one written."""
    offered_per_s: float
    committed_per_s: float
    latency_ms: dict[str, float | None]
    send_lag_ms: dict[str, float | None]
    cpu_per_node: list[float]
    client_cpu: float
    refused: dict[str, int] = field(default_factory=dict)
    resent: int = 0
    """Writes of refused transactions again (``resend_after_s``); not in ``sent``."""
    mempool_at_start: int = 0
    send_errors: list[str] = field(default_factory=list)

    @property
    def committed_fraction(self) -> float:
        return self.committed / self.sent if self.sent else 0.0

    @property
    def node_cpu_ms_per_tx(self) -> float | None:
        """CPU one node spent per transaction sent, on average over the nodes: where a
        signature check costs about 0.1 ms, this says how much else each transaction costs."""
        if not self.sent:
            return None
        return sum(self.cpu_per_node) / len(self.cpu_per_node) * self.window_s / self.sent * 1000

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "rate_asked_tx_per_s": round(self.rate, 2),
            "offered_tx_per_s": round(self.offered_per_s, 2),
            "committed_tx_per_s": round(self.committed_per_s, 2),
            "sent": self.sent,
            "committed": self.committed,
            "refused": self.refused,
            "resent": self.resent,
            "send_window_s": round(self.window_s, 3),
            "latency_ms": self.latency_ms,
            "send_lag_ms": self.send_lag_ms,
            "cpu_per_node": [round(cpu, 3) for cpu in self.cpu_per_node],
            "node_cpu_ms_per_tx": None if self.node_cpu_ms_per_tx is None else round(self.node_cpu_ms_per_tx, 3),
            "client_cpu": round(self.client_cpu, 3),
            "mempool_at_start": self.mempool_at_start,
            "send_errors": self.send_errors,
        }


class _Submitter:
    """One node's connection: a thread writing its due lines, another reading the replies, and
    with ``resend_after_s`` a third writing refused ones again."""

    def __init__(self, socket_path: Path, load: StepLoad, node: int, resend_after_s: float | None = None) -> None:
        self.load, self.node = load, node
        self.lines = load.lines[node]
        self.written_at: list[float] = []
        self.refused: dict[int, str] = {}  # request index -> reason
        self.resend_after_s = resend_after_s
        self.resent = 0
        self._refusals: Counter[int] = Counter()  # request index -> mempool-full refusals so far
        self._resends: list[tuple[float, int]] = []  # a heap of (monotonic s when due, request index)
        self._resends_lock = threading.Lock()
        self._write_lock = threading.Lock()  # two threads write one socket: whole lines only
        self.replies = 0
        self.error: str | None = None
        self.start = 0.0  # monotonic s; set by begin
        self._stop = threading.Event()
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(SEND_TIMEOUT_S)
        try:
            self._socket.connect(os.fspath(socket_path))
        except BaseException:
            self._socket.close()
            raise
        self._reader = self._socket.dup()  # its own timeout, so reading polls while writing may block
        self._reader.settimeout(POLL_S)
        targets = (self._send, self._read) + ((self._resend,) if resend_after_s is not None else ())
        self._threads = [
            threading.Thread(target=target, name=f"bench-{target.__name__}-{node}", daemon=True) for target in targets
        ]

    def begin(self, start: float) -> None:
        self.start = start
        for thread in self._threads:
            thread.start()

    def wait_sent(self, timeout_s: float) -> None:
        self._threads[0].join(timeout_s)

    @property
    def answered(self) -> bool:
        with self._resends_lock:
            resending = bool(self._resends)
        return self.replies >= len(self.written_at) + self.resent and not resending and not self._threads[0].is_alive()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():  # never started if the step failed before it began
                thread.join(SEND_TIMEOUT_S)
        self._reader.close()
        self._socket.close()

    def _send(self) -> None:
        index = 0
        while index < len(self.lines) and not self._stop.is_set():
            now = time.monotonic() - self.start
            end = index
            while end < len(self.lines) and self.load.due_s(self.node, end) <= now:
                end += 1
            if end == index:
                self._stop.wait(self.load.due_s(self.node, index) - now)
                continue
            try:
                with self._write_lock:
                    self._socket.sendall(b"".join(self.lines[index:end]))
            except OSError as error:
                self.error = f"node {self.node}: sending stopped after {index} transactions: {error!r}"
                return
            self.written_at.extend([time.monotonic()] * (end - index))
            index = end

    def _read(self) -> None:
        buffer = bytearray()
        while not self._stop.is_set() and (self.replies < len(self.lines) or self.resend_after_s is not None):
            try:
                chunk = self._reader.recv(64 * 1024)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                self.replies += 1
                if b'"error"' in line:  # successful replies are only counted, not parsed
                    self._note_refusal(line)

    def _note_refusal(self, line: bytes) -> None:
        reply = json.loads(line)
        error = reply.get("error") or {}
        data = error.get("data")
        reason = str((data.get("reason") if isinstance(data, dict) else None) or error.get("message") or "unknown")
        index = reply.get("id")
        ours = isinstance(index, int) and 0 <= index < len(self.lines)
        if self.resend_after_s is not None and reason == RESENT_REASON and ours:
            backoff = min(2 ** self._refusals[index], RESEND_BACKOFF_MAX)
            self._refusals[index] += 1
            with self._resends_lock:
                heapq.heappush(self._resends, (time.monotonic() + self.resend_after_s * backoff, index))
            return
        self.refused[index] = reason

    def _resend(self) -> None:
        assert self.resend_after_s is not None
        while not self._stop.is_set():
            now = time.monotonic()
            with self._resends_lock:
                due = []
                while self._resends and self._resends[0][0] <= now:
                    due.append(heapq.heappop(self._resends)[1])
                wait_s = self._resends[0][0] - now if self._resends else POLL_S
            if not due:
                self._stop.wait(min(wait_s, POLL_S))
                continue
            try:
                with self._write_lock:
                    self._socket.sendall(b"".join(self.lines[index] for index in due))
            except OSError as error:
                self.error = f"node {self.node}: resending stopped: {error!r}"
                return
            self.resent += len(due)


def run_step(
    label: str,
    load: StepLoad,
    socket_paths: list[Path],
    watchers: CommitWatchers,
    pids: list[int],
    drain_s: float,
    mempool_at_start: int = 0,
    resend_after_s: float | None = None,
) -> StepResult:
    """Send ``load``, then wait at most ``drain_s`` seconds after the last write for its commits
    (resending those refused as ``mempool-full`` ``resend_after_s`` after each refusal, if set)."""
    assert len(socket_paths) == len(load.lines) == len(pids)
    submitters: list[_Submitter] = []
    try:
        for node, path in enumerate(socket_paths):
            submitters.append(_Submitter(path, load, node, resend_after_s))
        cpu_before = [cpu_seconds(pid) for pid in [*pids, os.getpid()]]
        start = time.monotonic()
        for submitter in submitters:
            submitter.begin(start)
        for submitter in submitters:
            submitter.wait_sent(load.duration_s + SEND_TIMEOUT_S)
        window_s = time.monotonic() - start
        processes = zip([*pids, os.getpid()], cpu_before, strict=True)
        cpu_used = [(cpu_seconds(pid) - before) / window_s for pid, before in processes]
        _wait_commits(submitters, watchers, time.monotonic() + drain_s)
    finally:
        for submitter in submitters:
            submitter.close()
    return _result(label, load, submitters, watchers, start, window_s, cpu_used, mempool_at_start)


def _wait_commits(submitters: list[_Submitter], watchers: CommitWatchers, deadline: float) -> None:
    """Until every accepted transaction is committed at its node, or ``deadline``."""
    waiting: list[set[str]] = [set() for _ in submitters]
    counted = [0 for _ in submitters]
    while time.monotonic() < deadline:
        for node, submitter in enumerate(submitters):
            written = len(submitter.written_at)
            waiting[node].update(submitter.load.tx_ids[node][counted[node] : written])
            counted[node] = written
            seen = watchers.committed_at[node]
            # The reader thread adds refusals meanwhile: iterate over a copy (taken atomically).
            refused = {submitter.load.tx_ids[node][index] for index in submitter.refused.copy()}
            waiting[node] = {tx_id for tx_id in waiting[node] if tx_id not in seen and tx_id not in refused}
        if all(submitter.answered for submitter in submitters) and not any(waiting):
            return
        time.sleep(POLL_S)


def _result(
    label: str,
    load: StepLoad,
    submitters: list[_Submitter],
    watchers: CommitWatchers,
    start: float,
    window_s: float,
    cpu_used: list[float],
    mempool_at_start: int,
) -> StepResult:
    latencies, lags, refused, last_commit = [], [], Counter[str](), start
    for node, submitter in enumerate(submitters):
        seen = watchers.committed_at[node]
        refused.update(submitter.refused.values())
        for index, written_at in enumerate(submitter.written_at):
            due = start + load.due_s(node, index)
            lags.append((written_at - due) * 1000)
            committed_at = seen.get(load.tx_ids[node][index])
            if committed_at is not None and index not in submitter.refused:
                latencies.append((committed_at - due) * 1000)
                last_commit = max(last_commit, committed_at)
    sent = len(lags)
    return StepResult(
        label=label,
        rate=load.rate,
        sent=sent,
        committed=len(latencies),
        window_s=window_s,
        offered_per_s=sent / max(window_s, load.duration_s),
        committed_per_s=len(latencies) / (last_commit - start) if latencies else 0.0,
        latency_ms=rounded_percentiles(latencies, ("p50", "p95", "p99", "max")),
        send_lag_ms=rounded_percentiles(lags, ("p50", "p99", "max")),
        cpu_per_node=cpu_used[:-1],
        client_cpu=cpu_used[-1],
        refused=dict(refused),
        resent=sum(submitter.resent for submitter in submitters),
        mempool_at_start=mempool_at_start,
        send_errors=[submitter.error for submitter in submitters if submitter.error],
    )


def rounded_percentiles(values: list[float], names: tuple[str, ...]) -> dict[str, float | None]:
    """``percentiles`` in ms rounded to 0.1."""
    return {name: None if value is None else round(value, 1) for name, value in percentiles(values, names).items()}
