"""The real-network benchmark: N ``p2pmed node`` processes on 127.0.0.1 under open-loop load.

One run: start the nodes (default config, JSON logs), wait until each sees all
the others, subscribe to every node's block feed, warm up (a short load whose
figures are kept apart), then one step per rate of the plan, and last a step at
half the best committed rate, where the latency target is judged. Before each
step the run waits (at most ``SETTLE_S``) for every mempool to empty, so a step
does not inherit the previous one's backlog unnoticed; what is left is
reported as ``mempool_at_start``.

The node homes live in a short temporary directory (a Unix socket path must fit
in 107 bytes); the nodes' logs are copied out at the end, whatever happened.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pmed.bench.commits import CommitWatchers
from p2pmed.bench.plan import RatePlan
from p2pmed.bench.step import StepResult, prepare_load, run_step
from p2pmed.site.config import NodeConfig
from p2pmed.testing.process_network import NodeFailed, ProcessNetwork

__all__ = ["CONFIG", "NetworkBench", "run_network_bench"]

CHAIN_ID = "p2pmed-bench"
CONFIG = NodeConfig(log_format="json", probes_from_anyone=True)
SEED = 0
"""Seeds the senders' keys: every run signs the same transactions."""
START_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 60.0
WARMUP_RATE_TX_PER_S = 20.0
WARMUP_S = 1.0
SETTLE_S = 30.0
DRAIN_MIN_S = 5.0
DRAIN_MAX_S = 30.0
POLL_S = 0.1


@dataclass
class NetworkBench:
    nodes: int
    duration_s: float
    warmup: StepResult
    steps: list[StepResult]
    half_rate: StepResult | None
    stop_reason: str
    watch_drops: int
    resend_after_ms: int | None = None

    @property
    def best(self) -> StepResult | None:
        return max(self.steps, key=lambda step: step.committed_per_s, default=None)

    def as_json(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "duration_s": self.duration_s,
            "config": dataclasses.asdict(CONFIG),
            "warmup": self.warmup.as_json(),
            "steps": [step.as_json() for step in self.steps],
            "half_rate": None if self.half_rate is None else self.half_rate.as_json(),
            "stop_reason": self.stop_reason,
            "watch_drops": self.watch_drops,
            "resend_after_ms": self.resend_after_ms,
        }


def run_network_bench(
    nodes: int,
    rates: tuple[float, ...] | None,
    duration_s: float,
    logs: Path,
    progress: Callable[[StepResult], None] = lambda step: None,
    resend_after_ms: int | None = None,
) -> NetworkBench:
    """Run the steps of ``rates`` (None: auto) for ``duration_s`` each, open loop or resending
    refused transactions (``resend_after_ms``); raises ``NodeFailed`` if a node dies."""
    with tempfile.TemporaryDirectory(prefix="p2pmed-bench-") as directory:
        try:
            with ProcessNetwork(Path(directory), nodes, CONFIG, CHAIN_ID) as net:
                return _Run(net, duration_s, progress, resend_after_ms).play(RatePlan(rates))
        finally:
            logs.mkdir(parents=True, exist_ok=True)
            for log in Path(directory).glob("node*.log"):
                shutil.copy(log, logs / log.name)


class _Run:
    def __init__(
        self,
        net: ProcessNetwork,
        duration_s: float,
        progress: Callable[[StepResult], None],
        resend_after_ms: int | None,
    ) -> None:
        self.net, self.duration_s, self.progress = net, duration_s, progress
        self.resend_after_ms = resend_after_ms
        self.rng = random.Random(SEED)
        net.start_all(START_TIMEOUT_S)
        for index in range(net.size):

            def connected(index: int = index) -> bool:
                peers: int = net.call(index, "node.status")["peers"]
                return peers >= net.size - 1

            net.wait_for(index, connected, CONNECT_TIMEOUT_S, "to connect to every other node")
        self.sockets = [home / CONFIG.rpc_socket for home in net.homes]
        self.pids = [self._process(index).pid for index in range(net.size)]

    def play(self, plan: RatePlan) -> NetworkBench:
        with CommitWatchers(self.sockets) as watchers:
            if not watchers.wait_subscribed(CONNECT_TIMEOUT_S):
                raise NodeFailed(f"a node did not accept a chain.subscribe within {CONNECT_TIMEOUT_S} s")
            warmup = self._step(watchers, "warm-up", WARMUP_RATE_TX_PER_S, WARMUP_S)
            steps: list[StepResult] = []
            while (rate := plan.next_rate(steps)) is not None:
                steps.append(self._step(watchers, "sweep", rate, self.duration_s))
                self.progress(steps[-1])
            best = max(step.committed_per_s for step in steps)
            half_rate = self._step(watchers, "half-rate", best / 2, self.duration_s) if best > 0 else None
            if half_rate is not None:
                self.progress(half_rate)
            return NetworkBench(
                self.net.size,
                self.duration_s,
                warmup,
                steps,
                half_rate,
                plan.stop_reason,
                watchers.drops,
                self.resend_after_ms,
            )

    def _step(self, watchers: CommitWatchers, label: str, rate: float, duration_s: float) -> StepResult:
        load = prepare_load(CHAIN_ID, self.net.size, rate, duration_s, self.rng)
        backlog = self._settle()
        drain_s = min(DRAIN_MAX_S, max(DRAIN_MIN_S, duration_s))
        resend_after_s = None if self.resend_after_ms is None else self.resend_after_ms / 1000
        result = run_step(label, load, self.sockets, watchers, self.pids, drain_s, backlog, resend_after_s)
        for index in range(self.net.size):
            self._process(index)
        return result

    def _settle(self) -> int:
        """Wait until every mempool is empty (at most ``SETTLE_S``); the largest one left."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            largest = max(self.net.call(index, "node.status")["mempool_size"] for index in range(self.net.size))
            if largest == 0 or time.monotonic() > deadline:
                return int(largest)
            time.sleep(POLL_S)

    def _process(self, index: int) -> subprocess.Popen[bytes]:
        process = self.net.processes[index]
        if process is None or process.poll() is not None:
            raise NodeFailed(f"node {index} exited during the benchmark\n{self.net.log_tail(index)}")
        return process
