"""A js-libp2p peer (``tests/js/tx_peer.mjs``, written from docs/wire.md alone) on the transaction
topic of four real node processes, linked to node 0 only: it sees every transaction submitted at
any node, recomputing the chain's transaction ids, and the transaction it signs and publishes
itself commits on every node.

Needs ``node`` and ``npm`` on PATH, else the test is skipped and says why. The peer's packages
(exact versions in ``tests/js/package-lock.json``) are installed by ``npm ci`` into the git-ignored
``tests/js/node_modules`` when it is missing or was installed from another lock file; otherwise the
test costs no network at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

import wire_example
from p2pmed.client.load import sample_transactions
from p2pmed.crypto import SigningKey
from p2pmed.ledger.tx import decode_transaction
from p2pmed.net import peer_id_of, tx_topic
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import load_home
from p2pmed.testing.process_network import ProcessNetwork

JS_DIRECTORY = Path(__file__).parent / "js"
PEER_SCRIPT = JS_DIRECTORY / "tx_peer.mjs"
INSTALLED_STAMP = JS_DIRECTORY / "node_modules" / ".p2pmed-installed"
NPM_CI_TIMEOUT_S = 300.0
WAIT_S = 60.0

PEER_SEED = b"\x53" * 32  # the js peer's libp2p key: its peer id is admitted before it starts
PEER_ID = str(peer_id_of(SigningKey.from_seed(PEER_SEED).public_key))
CONFIG = NodeConfig(log_format="json", probes_from_anyone=True, gossip_peers=(PEER_ID,))

pytestmark = pytest.mark.xdist_group("processes")


def _lock_digest() -> str:
    return hashlib.sha256((JS_DIRECTORY / "package-lock.json").read_bytes()).hexdigest()


def _ensure_packages(node: str, npm: str) -> None:
    """``npm ci`` unless node_modules was installed from this very lock file (by this node)."""
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    stamp = f"{_lock_digest()} {version.strip()}"
    with (JS_DIRECTORY / ".install.lock").open("w") as lock:  # one installer at a time (xdist workers)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if INSTALLED_STAMP.exists() and INSTALLED_STAMP.read_text() == stamp:
            return
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIRECTORY,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT_S,
        )
        assert result.returncode == 0, f"npm ci failed in {JS_DIRECTORY}:\n{result.stdout}\n{result.stderr}"
        INSTALLED_STAMP.write_text(stamp)


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        pytest.skip(f"the js-libp2p interop peer needs Node.js: {missing} not found on PATH")
    _ensure_packages(node, npm)
    return node


@pytest.fixture(scope="module")
def net(node: str) -> Iterator[ProcessNetwork]:
    with tempfile.TemporaryDirectory(prefix="p2pmed-js-") as directory:
        with ProcessNetwork(Path(directory), 4, CONFIG) as network:
            network.start_all(WAIT_S)
            yield network


class JsPeer:
    """The running script: its JSON lines, read by a thread so that every wait has a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()
        threading.Thread(target=self.stderr.extend, args=(process.stderr,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.events.put(json.loads(line))
        self.events.put(None)  # the script exited

    def next_event(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        try:
            event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"the js peer said nothing for too long, waiting {waiting_for}") from None
        if event is None or event["event"] == "error":
            self.process.wait(10)
            raise AssertionError(f"the js peer stopped waiting {waiting_for}: {event}\n{''.join(self.stderr)[-3000:]}")
        return event

    def command(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()


@contextlib.contextmanager
def js_peer(node: str, net: ProcessNetwork) -> Iterator[JsPeer]:
    arguments = ["--genesis", str(net.homes[0] / "genesis.json"), "--peer-seed", PEER_SEED.hex()]
    process = subprocess.Popen(
        [node, str(PEER_SCRIPT), *arguments, "--node", "0", "--timeout-s", str(WAIT_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield JsPeer(process)
        assert process.stdin is not None
        process.stdin.close()  # end of commands: the script stops its libp2p node and exits 0
        assert process.wait(WAIT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_js_libp2p_peer_of_one_node_sees_every_transaction_and_what_it_publishes_commits(
    node: str, net: ProcessNetwork
) -> None:
    chain_id = load_home(net.homes[0]).genesis.chain_id
    deadline = time.monotonic() + 3 * WAIT_S
    with js_peer(node, net) as peer:
        ready = peer.next_event(deadline, "for a link to node 0")
        assert ready == {
            "event": "ready",
            "peer_id": PEER_ID,
            "node": str(peer_id_of(load_home(net.homes[0]).genesis.validator_keys[0])),
            "topic": tx_topic(chain_id),
        }

        submitted = sample_transactions(chain_id, 4)
        for index, tx in enumerate(submitted):  # one at each node: three of them are not the js peer's link
            net.call(index, "tx.submit", tx=tx.encoded.hex())
        expected = {tx.id.hex() for tx in submitted}
        seen: set[str] = set()
        while not expected <= seen:
            event = peer.next_event(deadline, f"for {len(expected - seen)} of the submitted transactions")
            assert event["event"] == "tx", event
            seen.add(event["id"])
        assert seen == expected  # and it recomputed exactly the chain's ids, nothing else

        peer.command("publish")
        published = peer.next_event(deadline, "for its own transaction to be published")
        assert published["event"] == "published", published
        own = decode_transaction(bytes.fromhex(published["tx"]))  # strict: canonical CBOR or nothing
        assert own.id.hex() == published["id"]
        assert own.type == "load.probe" and own.nonce == 0 and own.chain_id == chain_id
        assert own.signature_is_valid()
        for index in range(net.size):
            net.wait_for(
                index,
                lambda index=index: net.call(index, "tx.get", tx_id=own.id.hex())["status"] == "committed",
                max(0.0, deadline - time.monotonic()),
                f"for the js peer's transaction {own.id.hex()[:12]} to commit",
            )


def test_the_js_peer_signs_the_worked_example_byte_for_byte(node: str) -> None:
    """Ed25519 is deterministic: the same key and fields must give docs/wire.md's very bytes."""
    example = wire_example.transaction()
    arguments = ["--sign-probe", wire_example.SEED.hex(), "--chain-id", wire_example.CHAIN_ID]
    arguments += ["--nonce", str(wire_example.NONCE), "--label", wire_example.LABEL]
    result = subprocess.run(
        [node, str(PEER_SCRIPT), *arguments], capture_output=True, text=True, timeout=WAIT_S, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == {"event": "signed", "id": example.id.hex(), "tx": example.encoded.hex()}
