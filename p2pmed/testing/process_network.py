"""A network of real ``p2pmed node`` processes on 127.0.0.1, for the demo, integration
tests, the harness's real mode and the benchmark.

Each node is a child process in its own session (so a terminal's Ctrl-C reaches
only the parent, which then stops the nodes), logging to ``<dir>/nodeI.log``,
driven and observed through its RPC socket. Faults are real: ``kill`` sends
SIGKILL by default, ``pause`` and ``resume`` send SIGSTOP and SIGCONT.

Nodes never outlive their harness: inside ``with ProcessNetwork(...)`` SIGTERM
stops the harness as Ctrl-C does (the ``with`` unwinds and stops the nodes), and
each node runs with ``--exit-with-parent``, so even a harness killed with SIGKILL
leaves no node behind.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from p2pmed.crypto import Kem
from p2pmed.net.identity import peer_id_of
from p2pmed.rpc.client import NodeNotRunning, RpcClient, RpcError
from p2pmed.site.config import NodeConfig, render_config
from p2pmed.site.home import CONFIG, GENESIS, create_testnet, init_home, load_home
from p2pmed.store import Store

__all__ = ["NodeFailed", "ProcessNetwork", "free_port_range"]

T = TypeVar("T")

STOP_TIMEOUT_S = 10.0
POLL_S = 0.05


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


class NodeFailed(RuntimeError):
    """A node process exited or a wait timed out; the message carries its log's tail."""


def free_port_range(count: int, attempts: int = 50) -> int:
    """A base port such that ``base .. base+count-1`` can all be bound on 127.0.0.1 now."""
    for _ in range(attempts):
        base = random.randrange(20_000, 60_000 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                listener = socket.socket()
                sockets.append(listener)
                listener.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for listener in sockets:
                listener.close()
    raise RuntimeError(f"found no {count} consecutive free ports")


class ProcessNetwork:
    """``config`` applies to every node except its moniker, listen address and, with
    ``metrics=True``, its metrics port (``metrics_ports[i]``, free when created; else 0).
    ``kem``: the algorithm of the sites' encryption keys. ``observers`` observer nodes come
    after the ``nodes`` validators (index ``nodes`` on), each admitted by every validator
    (``gossip_peers``); ``size`` counts the validators."""

    def __init__(
        self,
        directory: Path,
        nodes: int = 4,
        config: NodeConfig | None = None,
        chain_id: str = "p2pmed-local",
        *,
        metrics: bool = False,
        kem: Kem = Kem.X25519,
        observers: int = 0,
    ) -> None:
        self.directory = directory
        self.validators = nodes
        base_port = free_port_range(2 * nodes + observers)  # listen ports, metrics ports, observers' ports
        self.homes = create_testnet(directory, nodes, base_port, chain_id, kem=kem)
        observer_peers: list[str] = []
        for index in range(nodes, nodes + observers):
            home, listen = directory / f"node{index}", f"/ip4/127.0.0.1/tcp/{base_port + nodes + index}"
            observer = init_home(home, f"observer{index}", listen, test_network=True, role="observer")
            shutil.copy(self.homes[0] / GENESIS, home / GENESIS)
            observer_peers.append(str(peer_id_of(observer.key.public_key)))
            self.homes.append(home)
        self.metrics_ports = [base_port + nodes + index if metrics else 0 for index in range(nodes)]
        self.metrics_ports += [0] * observers
        config = config or NodeConfig(probes_from_anyone=True)
        for index, (home, metrics_port) in enumerate(zip(self.homes, self.metrics_ports, strict=True)):
            own = load_home(home).config
            node_config = dataclasses.replace(
                config,
                moniker=own.moniker,
                role=own.role,
                listen=own.listen,
                metrics_port=metrics_port,
                gossip_peers=config.gossip_peers + (tuple(observer_peers) if index < nodes else ()),
            )
            (home / CONFIG).write_text(render_config(node_config))
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * len(self.homes)
        self._sigterm_before: Any = None

    @property
    def size(self) -> int:
        """How many validators."""
        return self.validators

    def open_store(self, index: int) -> Store:
        """Node ``index``'s store, for inspection once the node is stopped."""
        home = load_home(self.homes[index])
        return Store.open(home.store_path, home.genesis.chain_id, home.genesis.hash)

    def log_path(self, index: int) -> Path:
        return self.directory / f"node{index}.log"

    def start(self, index: int) -> None:
        assert self.processes[index] is None, f"node {index} is already running"
        with self.log_path(index).open("ab") as log:
            self.processes[index] = subprocess.Popen(
                [sys.executable, "-m", "p2pmed", "node", "--home", str(self.homes[index]), "--exit-with-parent"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def start_all(self, timeout_s: float = 60.0) -> None:
        for index in range(self.size):
            self.start(index)
        for index in range(self.size):
            self.wait_ready(index, timeout_s)

    def wait_ready(self, index: int, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until node ``index`` answers ``node.status``; returns the status."""
        return self.wait_for(index, lambda: self.client(index).call("node.status"), timeout_s, "to answer RPC")

    def client(self, index: int) -> RpcClient:
        return RpcClient(self.homes[index] / NodeConfig().rpc_socket)

    def call(self, index: int, method: str, **params: Any) -> Any:
        return self.client(index).call(method, **params)

    def kill(self, index: int, signum: int = signal.SIGKILL) -> None:
        process = self._running(index)
        process.send_signal(signum)
        process.wait(STOP_TIMEOUT_S)
        self.processes[index] = None

    def stop(self, index: int) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL after ``STOP_TIMEOUT_S``)."""
        process = self._running(index)
        process.send_signal(signal.SIGCONT)  # a paused node must be able to act on SIGTERM
        process.terminate()
        try:
            code = process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        self.processes[index] = None
        return code

    def pause(self, index: int) -> None:
        self._running(index).send_signal(signal.SIGSTOP)

    def resume(self, index: int) -> None:
        self._running(index).send_signal(signal.SIGCONT)

    def close(self) -> None:
        for index, process in enumerate(self.processes):
            if process is not None:
                self.stop(index)

    def __enter__(self) -> ProcessNetwork:
        if threading.current_thread() is threading.main_thread():  # only it may set signal handlers
            self._sigterm_before = signal.signal(signal.SIGTERM, _interrupt)
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.close()
        finally:
            if self._sigterm_before is not None:
                signal.signal(signal.SIGTERM, self._sigterm_before)
                self._sigterm_before = None

    def wait_for(self, index: int | None, probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
        """Poll ``probe`` until it returns something other than None or False.

        RPC errors count as "not yet". Raises ``NodeFailed`` with the log's tail if
        node ``index`` exits meanwhile or time runs out."""
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while True:
            if index is not None:
                process = self.processes[index]
                if process is None or process.poll() is not None:
                    raise NodeFailed(f"node {index} is not running while waiting {what}\n{self.log_tail(index)}")
            try:
                result = probe()
            except (NodeNotRunning, RpcError, OSError) as error:
                last_error, result = error, None
            if result is not None and result is not False:
                return result
            if time.monotonic() > deadline:
                where = f"node {index}" if index is not None else "the network"
                raise NodeFailed(
                    f"timed out after {timeout_s} s waiting for {where} {what} (last error: {last_error!r})"
                )
            time.sleep(POLL_S)

    def log_tail(self, index: int, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path(index).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _running(self, index: int) -> subprocess.Popen[bytes]:
        process = self.processes[index]
        assert process is not None, f"node {index} is not running"
        return process
