"""Observer nodes on real processes (issue #17): an observer started after the validators
have a long certified chain reaches their head, verifying every certificate against the
genesis validators, answers ``status``, ``tx get`` and ``audit`` through the CLI, relays
its clients' transactions to the validators, and its chain is theirs block for block.

The chain before the validators start is made without consensus
(``p2pmed.testing.certified_chain``): an idle network makes a block a second, too slow to
reach thousands. ``PREFILLED`` blocks run in the default suite; the ``slow`` test syncs
10,000 and prints the speed (``pytest -m slow -s tests/test_observer.py``).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from p2pmed.cli.main import cli
from p2pmed.client.load import sample_transactions
from p2pmed.net.identity import peer_id_of
from p2pmed.rpc.client import RpcError
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import CONFIG as CONFIG_FILE
from p2pmed.site.home import GENESIS, NODE_KEY, HomeError, create_testnet, load_home
from p2pmed.testing.certified_chain import write_certified_chain
from p2pmed.testing.process_network import ProcessNetwork

pytestmark = pytest.mark.xdist_group("processes")

CONFIG = NodeConfig(log_format="json", probes_from_anyone=True)
PREFILLED = 512  # a multiple of the checkpoint interval
WAIT_S = 60.0
VALIDATORS = 4
OBSERVER = VALIDATORS  # the observer's index in the network


def prefilled_network(directory: Path, blocks: int) -> ProcessNetwork:
    net = ProcessNetwork(directory, VALIDATORS, CONFIG, observers=1)
    write_certified_chain(net.homes[:VALIDATORS], blocks, time.time_ns() // 1_000_000, seed=blocks)
    return net


def synced_observer(net: ProcessNetwork) -> float:
    """Start the observer; wait until it holds the validators' head. Returns the seconds that took."""
    started = time.monotonic()
    net.start(OBSERVER)
    head = net.call(0, "node.status")["height"]
    net.wait_for(OBSERVER, lambda: net.call(OBSERVER, "node.status")["height"] >= head, WAIT_S, "to sync")
    return time.monotonic() - started


def same_chain(net: ProcessNetwork, validator: int) -> int:
    """Every block the observer holds is the validator's, with a certificate; returns how many.
    (Certificates may differ: each validator keeps the first 2f+1 commits it received.)"""
    height = net.call(OBSERVER, "node.status")["height"]
    for number in range(1, height + 1):
        ours, theirs = (net.call(index, "chain.block", height=number) for index in (OBSERVER, validator))
        assert ours["hash"] == theirs["hash"] and ours["commit_certificate"], number
    return height


@pytest.fixture(scope="module")
def net() -> Iterator[ProcessNetwork]:
    """The validators on the prefilled chain, and the observer started after them, synced."""
    with tempfile.TemporaryDirectory(prefix="p2pmed-ob-") as directory:
        with prefilled_network(Path(directory), PREFILLED) as network:
            network.start_all(WAIT_S)
            print(f"observer synced {PREFILLED}+ blocks in {synced_observer(network):.1f} s")
            yield network


def p2pmed(net: ProcessNetwork, *args: str, node: int = OBSERVER) -> Any:
    """``p2pmed ARGS --home HOME --json`` on node ``node`` (the observer's by default), parsed."""
    result = CliRunner().invoke(cli, [*args, "--home", str(net.homes[node]), "--json"])
    assert result.exit_code == 0, f"p2pmed {' '.join(args)}: {result.output}"
    return json.loads(result.stdout)


def test_an_observer_started_after_the_chain_reaches_the_head_and_answers_status_and_tx_get(
    net: ProcessNetwork,
) -> None:
    status = p2pmed(net, "status")
    assert (status["role"], status["validator_index"], status["view"]) == ("observer", None, None)
    assert status["height"] >= PREFILLED and status["peers"] == VALIDATORS
    chain_id = load_home(net.homes[0]).genesis.chain_id
    probes = sample_transactions(chain_id, PREFILLED, random.Random(PREFILLED))  # the prefilled chain's
    for height in (1, PREFILLED):
        found = p2pmed(net, "tx", "get", probes[height - 1].id.hex())
        assert (found["status"], found["height"]) == ("committed", height)
    assert same_chain(net, 2) >= PREFILLED


def test_what_an_observer_relays_commits_and_its_audit_trail_is_the_validators(
    net: ProcessNetwork, tmp_path: Path
) -> None:
    keys = CliRunner().invoke(cli, ["identity", "keys", "--out", str(tmp_path / "patient"), "--json"])
    made, patient = json.loads(keys.stdout), json.loads(keys.stdout)["public_key"]  # a person's id is their key
    hospital = str(net.homes[0] / NODE_KEY)
    p2pmed(
        net,
        *("identity", "register-person", "--key", hospital, "--role", "patient", "--wait"),
        *("--public-key", patient, "--encryption-key", made["encryption_key"]),
    )
    lab = load_home(net.homes[1]).key.public_key.hex()
    p2pmed(
        net,
        *("consent", "grant", "--key", made["signing_key_file"], "--patient", patient, "--grantee", lab),
        *("--category", "laboratory", "--purpose", "TREAT", "--expires", "2099-12-31", "--wait"),
    )
    trail = p2pmed(net, "audit", "show", "--patient", patient)["entries"]
    assert [entry["kind"] for entry in trail] == ["consent-grant"]
    validator_trail = net.wait_for(
        3, lambda: p2pmed(net, "audit", "show", "--patient", patient, node=3)["entries"] or None, WAIT_S, "audit"
    )
    assert validator_trail == trail
    assert same_chain(net, 3) > PREFILLED


def test_validators_list_the_observer_and_the_observer_has_no_consensus_to_fault(net: ProcessNetwork) -> None:
    observer_id = p2pmed(net, "status")["node_id"]
    peers = p2pmed(net, "peers", node=0)
    assert [peer["role"] for peer in peers if peer["node_id"] == observer_id] == ["observer"]
    assert [peer["role"] for peer in peers][:VALIDATORS] == ["validator"] * VALIDATORS
    with pytest.raises(RpcError, match="observer"):
        net.call(OBSERVER, "debug.faults", drop_permille=10)


@pytest.mark.slow
def test_an_observer_syncs_ten_thousand_blocks() -> None:
    blocks = 10_000
    with tempfile.TemporaryDirectory(prefix="p2pmed-ob-") as directory:
        with prefilled_network(Path(directory), blocks) as network:
            network.start_all(WAIT_S)
            seconds = synced_observer(network)
            print(f"observer synced {blocks} blocks in {seconds:.1f} s: {blocks / seconds:.0f} blocks/s")
            assert same_chain(network, 1) >= blocks


def test_init_observer_makes_a_home_whose_key_must_stay_out_of_genesis(tmp_path: Path) -> None:
    (validator,) = create_testnet(tmp_path / "net", 1, 30_000, "observer-home")
    made = CliRunner().invoke(cli, ["init", "--observer", "--home", str(tmp_path / "observer")])
    assert made.exit_code == 0, made.output
    shutil.copy(validator / GENESIS, tmp_path / "observer" / GENESIS)
    observer = load_home(tmp_path / "observer")
    assert observer.is_observer and observer.index is None
    assert made.stdout.splitlines()[-1] == str(peer_id_of(observer.key.public_key))
    config = validator / CONFIG_FILE
    config.write_text(config.read_text().replace('role = "validator"', 'role = "observer"'))
    with pytest.raises(HomeError, match="is a validator's"):
        load_home(validator)
