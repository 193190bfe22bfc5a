"""Validator set changes in the simulator: votes ordered by consensus and decided by the
membership rules, replicas switched as ``NodeCore`` switches them, nodes outside the set
following the chain, and a checker that verifies each certificate against its epoch's set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2pmed.cli.main import cli
from p2pmed.consensus.messages import CommitCertificate, Vote, VoteKind, proposal_digest, signing_payload
from p2pmed.consensus.replica import ReplicaConfig
from p2pmed.sim.checkers import EpochSets, SafetyChecker
from p2pmed.sim.real import check_playable
from p2pmed.sim.scenario import Change, NetworkSpec, Scenario, ScenarioError, WorkloadSpec
from p2pmed.sim.scenario_file import load_scenario
from p2pmed.sim.simulator import SimNode, Simulation, SimulationResult

SIMULATIONS = Path(__file__).parent.parent / "simulations"
RATE = 20.0


def shipped(name: str) -> Scenario:
    scenario = load_scenario(SIMULATIONS / f"{name}.toml")
    return dataclasses.replace(scenario, workload=dataclasses.replace(scenario.workload, rate=RATE))


def simulate(scenario: Scenario, seed: int) -> tuple[Simulation, SimulationResult]:
    simulation = Simulation(scenario, seed, ReplicaConfig())
    return simulation, simulation.run()


def passed(result: SimulationResult) -> bool:
    report = result.report
    return bool(report["safety"]["ok"] and report["liveness"]["ok"] is True and report["committed_txs"] > 0)


def hashes(node: SimNode) -> list[bytes]:
    return [block.hash for block, _ in node.chain.blocks]


def voters(certificate: CommitCertificate) -> set[int]:
    return {vote.replica for vote in certificate.commits}


def test_a_site_voted_in_follows_the_chain_then_orders_blocks_from_its_epoch() -> None:
    simulation, result = simulate(shipped("epoch_add_under_load"), 1)
    assert passed(result), result.report["liveness"]["detail"]
    first = result.report["epochs"][1]["first_height"]
    assert [epoch["validators"] for epoch in result.report["epochs"]] == [[0, 1, 2, 3], [0, 1, 2, 3, 4]]
    newcomer = simulation.nodes[4]
    assert newcomer.replica is not None and hashes(newcomer) == hashes(simulation.nodes[0])
    assert not any(4 in voters(certificate) for _, certificate in newcomer.chain.blocks[: first - 1])
    assert any(4 in voters(certificate) for _, certificate in newcomer.chain.blocks[first - 1 :])
    timeline = [row for row in result.report["timeline"] if row["node"] == 4]
    assert not timeline[0]["validator"] and timeline[-1]["validator"]


def test_the_primary_voted_out_stops_ordering_and_follows_the_chain_from_the_others() -> None:
    simulation, result = simulate(shipped("epoch_remove_primary"), 1)
    assert passed(result), result.report["liveness"]["detail"]
    assert result.report["changes"][0]["remove"] == [0]
    first = result.report["epochs"][1]["first_height"]
    removed = simulation.nodes[0]
    assert removed.replica is None and hashes(removed) == hashes(simulation.nodes[1])
    proposers = {block.header.proposer for block, _ in removed.chain.blocks[first - 1 :]}
    assert removed.signer.public_key not in proposers


def test_two_of_four_validators_replaced_one_after_the_other() -> None:
    simulation, result = simulate(shipped("epoch_replace_two"), 1)
    assert passed(result), result.report["liveness"]["detail"]
    sets = [epoch["validators"] for epoch in result.report["epochs"]]
    assert sets == [[0, 1, 2, 3], [0, 1, 2, 4], [0, 1, 4, 5]]
    assert [node.replica is not None for node in simulation.nodes] == [True, True, False, False, True, True]
    assert len({node.chain.height for node in simulation.nodes}) == 1


def test_an_epoch_scenario_replays_the_same_trace() -> None:
    scenario = shipped("epoch_replace_two")
    first, second = simulate(scenario, 4)[1].report, simulate(scenario, 4)[1].report
    assert first["trace_sha256"] == second["trace_sha256"] and first["epochs"] == second["epochs"]


class IgnoresEpochs(Simulation):
    """Planted bug: hosts never end an epoch nor switch replicas, so the genesis set goes on
    certifying blocks past the end of its epoch."""

    def _follow_epoch(self, node: object) -> None:
        return None


def adding(seed: int) -> Scenario:
    network = NetworkSpec(5, (5, 50), validators=4)
    return Scenario("add", network, WorkloadSpec(20, 12), (), 30.0, (Change(1.0, add=1),))


def test_blocks_certified_by_the_old_set_past_its_epoch_are_caught() -> None:
    for seed in range(3):
        result = IgnoresEpochs(adding(seed), seed, ReplicaConfig()).run()
        epochs = result.report["epochs"]
        assert len(epochs) == 2, "the vote passed and the chain names epoch 1"
        certificates = [v for v in result.report["safety"]["violations"] if v["kind"] == "certificate"]
        assert certificates and "(epoch 1)" in certificates[0]["detail"], result.report["safety"]
        assert f"height {epochs[1]['first_height']} " in certificates[0]["detail"]
        assert passed(Simulation(adding(seed), seed, ReplicaConfig()).run())


def test_the_checker_refuses_a_block_of_the_new_epoch_signed_by_the_old_set() -> None:
    """The checker reads each epoch's set from the chain: the first block of epoch 1 with a
    certificate that epoch 0's set signed (valid for that set) is a violation."""
    simulation, result = simulate(adding(2), 2)
    assert passed(result)
    blocks = simulation.nodes[0].chain.blocks
    first = result.report["epochs"][1]["first_height"]
    old = simulation.checker.sets.at(first - 1)
    block, _ = blocks[first - 1]
    forged = CommitCertificate(
        tuple(
            sign_commit(simulation, index, first, proposal_digest(block.header), old.signing_context)
            for index in range(old.quorum)
        )
    )
    old.check_commit_certificate(forged, first, proposal_digest(block.header))  # good enough for the old set
    checker = SafetyChecker(EpochSets(simulation.ledger, simulation.verifier), 10_000)
    checker.submitted.update(tx.id for block, _ in blocks for tx in block.txs)
    for height, (block, certificate) in enumerate(blocks[:first], start=1):
        checker.on_commit(0, block, forged if height == first else certificate, height, 0.0, block.header.time_ms)
    assert [(v.kind, v.step) for v in checker.violations] == [("certificate", first)]


def sign_commit(simulation: Simulation, index: int, height: int, digest: bytes, context: str) -> Vote:
    vote = Vote(VoteKind.COMMIT, 0, height, digest, index, bytes(64))
    signer = simulation.sites.signers[index]
    return dataclasses.replace(vote, signature=signer.sign(vote.domain, context, signing_payload(vote)))


@pytest.mark.parametrize("name", ["epoch_add_under_load", "epoch_remove_primary"])
def test_real_processes_refuse_validator_set_changes(name: str) -> None:
    with pytest.raises(ScenarioError) as refused:
        check_playable(load_scenario(SIMULATIONS / f"{name}.toml"))
    assert refused.value.key == "changes" and "--mode sim" in refused.value.reason


def test_sim_run_reports_the_epochs_and_plots_nodes_outside_the_set(tmp_path: Path) -> None:
    out = tmp_path / "out"
    scenario = str(SIMULATIONS / "epoch_add_under_load.toml")
    result = CliRunner().invoke(cli, ["sim", "run", scenario, "--seed", "3", "--rate", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    markdown = (out / "report.md").read_text()
    assert "## Validator sets" in markdown and "| 1 | " in markdown and "[0, 1, 2, 3, 4]" in markdown
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sim_run_exits_2_on_a_change_that_needs_more_nodes(tmp_path: Path) -> None:
    scenario = tmp_path / "short.toml"
    scenario.write_text("[network]\nnodes = 4\n[[changes]]\nat = 1\nadd = 1\n")
    result = CliRunner().invoke(cli, ["sim", "run", str(scenario), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "changes[0].add" in result.output and "network.nodes" in result.output
