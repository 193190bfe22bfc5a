"""Fast start on real processes (issue #17): an observer with an empty store and
``[sync] fast_start`` starts from the state the validators offer at their newest snapshot
height, syncs only the blocks after it, and then answers reads and relays transactions
like an observer that replayed the chain; its blocks from the snapshot on are the
validators'. The chain is prefilled without consensus (``p2pmed.testing.certified_chain``)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from p2pmed.cli.main import cli
from p2pmed.rpc.client import RpcError
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import load_home
from p2pmed.testing.certified_chain import write_certified_chain
from p2pmed.testing.process_network import ProcessNetwork

pytestmark = pytest.mark.xdist_group("processes")

INTERVAL = 64
PREFILLED = 512
CONFIG = NodeConfig(log_format="json", probes_from_anyone=True, fast_start=True, snapshot_interval_blocks=INTERVAL)
WAIT_S = 60.0
VALIDATORS = 4
OBSERVER = VALIDATORS


@pytest.fixture(scope="module")
def net() -> Iterator[ProcessNetwork]:
    with tempfile.TemporaryDirectory(prefix="p2pmed-fs-") as directory:
        with ProcessNetwork(Path(directory), VALIDATORS, CONFIG, observers=1) as network:
            write_certified_chain(network.homes[:VALIDATORS], PREFILLED, time.time_ns() // 1_000_000, seed=1)
            network.start_all(WAIT_S)
            head = network.call(0, "node.status")["height"]
            network.start(OBSERVER)
            network.wait_for(
                OBSERVER, lambda: network.call(OBSERVER, "node.status")["height"] >= head, WAIT_S, "to sync"
            )
            yield network


def p2pmed(net: ProcessNetwork, *args: str, node: int = OBSERVER) -> Any:
    result = CliRunner().invoke(cli, [*args, "--home", str(net.homes[node]), "--json"])
    assert result.exit_code == 0, f"p2pmed {' '.join(args)}: {result.output}"
    return json.loads(result.stdout)


def test_an_empty_observer_starts_from_the_newest_snapshot_and_syncs_only_what_follows(net: ProcessNetwork) -> None:
    status = p2pmed(net, "status")
    base = (PREFILLED - 1) // INTERVAL * INTERVAL
    assert status["role"] == "observer" and status["started_from"] == base
    fetched = net.call(OBSERVER, "node.counters")["block_sync"]["blocks"]
    assert 0 < fetched <= status["height"] - base
    for height in (base + 1, PREFILLED):
        ours, theirs = (net.call(index, "chain.block", height=height) for index in (OBSERVER, 1))
        assert ours["hash"] == theirs["hash"] and ours["commit_certificate"]
    with pytest.raises(RpcError, match=f"this node started from the state after block {base}"):
        net.call(OBSERVER, "chain.block", height=base)
    served = [net.call(index, "node.counters")["block_sync_served"] for index in range(VALIDATORS)]
    assert sum(counter.get("blocks", 0) for counter in served) == fetched
    snapshots = [net.call(index, "node.counters")["snapshot_served"] for index in range(VALIDATORS)]
    assert sum(counter.get("offers", 0) for counter in snapshots) == VALIDATORS  # it asked every validator
    assert sum(counter.get("chunks", 0) for counter in snapshots) >= 1


def test_the_state_it_started_from_answers_reads_and_what_it_relays_commits(
    net: ProcessNetwork, tmp_path: Path
) -> None:
    keys = CliRunner().invoke(cli, ["identity", "keys", "--out", str(tmp_path / "patient"), "--json"])
    made = json.loads(keys.stdout)
    hospital = str(net.homes[0] / "node_key.pem")
    p2pmed(
        net,
        *("identity", "register-person", "--key", hospital, "--role", "patient", "--wait"),
        *("--public-key", made["public_key"], "--encryption-key", made["encryption_key"]),
    )
    validators = p2pmed(net, "validator", "list")
    assert len(validators["validators"]) == VALIDATORS and validators["next"] is None
    site = load_home(net.homes[2]).key.public_key.hex()  # registered at genesis, long before the snapshot
    assert p2pmed(net, "identity", "org", site) == p2pmed(net, "identity", "org", site, node=2)
    person = net.wait_for(OBSERVER, lambda: p2pmed(net, "identity", "person", made["public_key"]), WAIT_S, "the person")
    assert person == p2pmed(net, "identity", "person", made["public_key"], node=3)
