"""Validator set changes on real node processes under load (issue #17): a site's node is
voted in through the CLI and starts voting at its epoch, a validator is voted out and goes
on as an observer, a validator's key is rotated (replaced by a node with the new key), and
an observer started afterwards verifies the whole chain from genesis, each block against
the set of its epoch."""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from p2pmed.cli.main import cli
from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import sign_transaction
from p2pmed.rpc.client import RpcError
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import GENESIS, NODE_KEY, load_home
from p2pmed.testing.process_network import ProcessNetwork

pytestmark = pytest.mark.xdist_group("processes")

CONFIG = NodeConfig(log_format="json", probes_from_anyone=True)
WAIT_S = 90.0
LOAD_TXS_MAX = 3_000
LOAD_INTERVAL_S = 0.02


def p2pmed(net: ProcessNetwork, node: int, *args: str) -> Any:
    result = CliRunner().invoke(cli, [*args, "--home", str(net.homes[node]), "--json"])
    assert result.exit_code == 0, f"p2pmed {' '.join(args)}: {result.output}"
    return json.loads(result.stdout)


def key_file(net: ProcessNetwork, node: int) -> str:
    return str(net.homes[node] / NODE_KEY)


def node_key(net: ProcessNetwork, node: int) -> str:
    return load_home(net.homes[node]).key.public_key.hex()


def join_request(net: ProcessNetwork, node: int, organisation: int, directory: Path) -> str:
    """The join request of node ``node`` for the organisation run by validator ``organisation``."""
    home = load_home(net.homes[node])
    result = CliRunner().invoke(
        cli,
        [
            *("validator", "join-request", "--home", str(net.homes[node])),
            *("--organisation", node_key(net, organisation), "--address", home.config.listen),
        ],
    )
    assert result.exit_code == 0, result.output
    path = directory / f"join-{node}.json"
    path.write_text(result.stdout)
    return str(path)


def vote(net: ProcessNetwork, voters: list[int], *args: str) -> None:
    for voter in voters:
        p2pmed(net, voter, "validator", *args, "--key", key_file(net, voter), "--wait")


def epoch_begun(net: ProcessNetwork, node: int, epoch: int) -> None:
    net.wait_for(node, lambda: net.call(node, "node.status")["epoch"] >= epoch, WAIT_S, f"to reach epoch {epoch}")


class Load:
    """Probes from fresh keys, one every ``LOAD_INTERVAL_S``, to the validators in turn; bounded."""

    def __init__(self, net: ProcessNetwork, targets: list[int]) -> None:
        self.net, self.targets = net, targets
        self.sent: list[str] = []
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.chain_id = load_home(net.homes[0]).genesis.chain_id

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        for count in range(LOAD_TXS_MAX):
            if self._stop.wait(LOAD_INTERVAL_S):
                return
            tx = sign_transaction(SigningKey.generate(), self.chain_id, "load.probe", 0, Probe(f"load {count}"))
            target = self.targets[count % len(self.targets)]
            try:
                self.net.call(target, "tx.submit", tx=tx.encoded.hex())
                self.sent.append(tx.id.hex())
            except (RpcError, OSError):  # a node busy switching epochs may refuse; the load goes on
                self.refused += 1


@pytest.fixture(scope="module")
def net() -> Iterator[ProcessNetwork]:
    with tempfile.TemporaryDirectory(prefix="p2pmed-vc-") as directory:
        with ProcessNetwork(Path(directory), 4, CONFIG, observers=3) as network:
            network.start_all(WAIT_S)
            yield network


def test_a_validator_added_one_removed_and_one_rotated_under_load(net: ProcessNetwork, tmp_path: Path) -> None:
    newcomer, removed, rotated, rotated_to, late_observer = 4, 3, 2, 5, 6
    net.start(newcomer)
    net.start(rotated_to)
    net.wait_ready(newcomer)
    net.wait_ready(rotated_to)
    with Load(net, [0, 1]) as load:
        vote(net, [0, 1, 2], "add", join_request(net, newcomer, 0, tmp_path))
        epoch_begun(net, newcomer, 1)
        assert net.call(newcomer, "node.status")["role"] != "observer"
        listed = p2pmed(net, 0, "validator", "list")
        assert [v["key"] for v in listed["validators"]][-1] == node_key(net, newcomer)

        vote(net, [0, 1, 2, newcomer], "remove", "--validator", node_key(net, removed))
        epoch_begun(net, removed, 2)
        assert net.call(removed, "node.status")["role"] == "observer"

        request = join_request(net, rotated_to, rotated, tmp_path)
        vote(net, [0, 1, newcomer], "replace", "--validator", node_key(net, rotated), request)
        for node in (0, rotated, rotated_to):
            epoch_begun(net, node, 3)
        assert net.call(rotated, "node.status")["role"] == "observer"
        assert net.call(rotated_to, "node.status")["role"] != "observer"
        last = load.sent[-1]
    assert load.sent, "the load ran"
    validators = [0, 1, newcomer, rotated_to]
    for node in [*validators, removed, rotated]:
        net.wait_for(
            node,
            lambda node=node: net.call(node, "tx.get", tx_id=last)["status"] == "committed",
            WAIT_S,
            "to commit the last of the load",
        )
    keys = [v["key"] for v in p2pmed(net, newcomer, "validator", "list")["validators"]]
    assert keys == [node_key(net, node) for node in validators]

    net.start(late_observer)  # verifies every block from genesis against the set of its epoch
    head = net.call(0, "node.status")["height"]
    net.wait_for(late_observer, lambda: net.call(late_observer, "node.status")["height"] >= head, WAIT_S, "to sync")
    for height in (1, head // 2, head):
        hashes = {net.call(node, "chain.block", height=height)["hash"] for node in (0, late_observer, removed)}
        assert len(hashes) == 1, height
    assert net.call(late_observer, "node.status")["epoch"] == 3
    fetched = net.call(late_observer, "node.counters")["block_sync"]
    assert fetched["blocks"] >= head and fetched.get("refused", 0) == 0

    out = tmp_path / "report"  # a compliance report spans the three changes: checked from genesis alone
    made = p2pmed(net, 0, "report", "--network", "--out", str(out), "--no-pdf")
    checked = CliRunner().invoke(
        cli, ["report", "verify", str(out / "bundle.json"), "--genesis", str(net.homes[0] / GENESIS), "--json"]
    )
    assert checked.exit_code == 0, checked.output
    assert made["epochs_followed"] == json.loads(checked.stdout)["epochs_followed"] == 3
