"""``sim sweep --cluster``: seeds on a Dask cluster of two worker processes on 127.0.0.1 give the
report and the shrunk scenarios a local sweep gives; a cluster that cannot run the sweep faithfully
is refused with the reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from distributed import Client, LocalCluster

from p2pmed.cli.main import cli
from p2pmed.sim import cluster as sim_cluster
from p2pmed.sim.planted import WEAK_QUORUM_ENV
from p2pmed.sim.scenario import Fault, FaultKind, NetworkSpec, Scenario, WorkloadSpec
from p2pmed.sim.scenario_file import dump_scenario

pytestmark = pytest.mark.xdist_group("dask-cluster")

CRASHES = Scenario(
    "crash and restart",
    NetworkSpec(4, (5, 40), drop=0.02),
    WorkloadSpec(rate=20.0, duration_s=4.0),
    (Fault(1.0, FaultKind.CRASH, node=0), Fault(2.5, FaultKind.RESTART, node=0)),
)
SPLIT = Scenario(
    "split",
    NetworkSpec(4),
    WorkloadSpec(5.0, 4.0),
    (Fault(1.0, FaultKind.CLOCK_SKEW, node=3, skew_ms=300), Fault(1.5, FaultKind.PARTITION, groups=((0, 1), (2, 3)))),
)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as local:
        yield local.scheduler_address


def _sweep(scenario: Path, *options: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["sim", "sweep", str(scenario), *options], env=env)
    return result.exit_code, result.stdout


def test_a_sweep_on_the_cluster_reports_exactly_what_a_local_sweep_reports(scheduler: str, tmp_path: Path) -> None:
    scenario = tmp_path / "crashes.toml"
    scenario.write_text(dump_scenario(CRASHES))
    on_cluster = _sweep(scenario, "--seeds", "1..4", "--cluster", scheduler)
    local = _sweep(scenario, "--seeds", "1..4", "--jobs", "1")
    assert on_cluster == local
    assert on_cluster[0] == 0 and "4/4 seeds passed" in on_cluster[1]


def test_a_planted_bug_is_found_and_shrunk_on_the_cluster_as_locally(scheduler: str, tmp_path: Path) -> None:
    scenario = tmp_path / "split.toml"
    scenario.write_text(dump_scenario(SPLIT))
    planted = {WEAK_QUORUM_ENV: "1"}
    cluster_out, local_out = tmp_path / "cluster", tmp_path / "local"
    code, output = _sweep(scenario, "--seeds", "1..2", "--cluster", scheduler, "--out", str(cluster_out), env=planted)
    local = _sweep(scenario, "--seeds", "1..2", "--jobs", "1", "--out", str(local_out), env=planted)
    assert (code, output.replace(str(cluster_out), "OUT")) == (local[0], local[1].replace(str(local_out), "OUT"))
    assert code == 1 and "safety: agreement" in output and "replay shrunk:" in output
    shrunk = sorted(path.name for path in cluster_out.iterdir())
    assert shrunk == sorted(path.name for path in local_out.iterdir()) and shrunk
    for name in shrunk:
        assert (cluster_out / name).read_text() == (local_out / name).read_text()


def test_a_worker_running_other_code_is_refused(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = tmp_path / "crashes.toml"
    scenario.write_text(dump_scenario(CRASHES))
    monkeypatch.setattr(sim_cluster, "code_fingerprint", lambda: "0" * 64)  # the client's sources differ now
    code, output = _sweep(scenario, "--seeds", "1", "--cluster", scheduler)
    assert code == 2 and output == ""
    with pytest.raises(sim_cluster.ClusterError, match="a worker runs other p2pmed code"):
        with sim_cluster.connect(scheduler, planted=False) as pool:
            pool.submit(sum, [1, 2]).result()


def test_a_worker_whose_environment_plants_a_bug_is_refused(scheduler: str) -> None:
    with Client(scheduler, set_as_default=False) as client:
        client.run(lambda: os.environ.update({WEAK_QUORUM_ENV: "1"}))  # a lambda runs there, not on a copy
        try:
            with sim_cluster.connect(scheduler, planted=False) as pool:
                with pytest.raises(sim_cluster.ClusterError, match=f"sets {WEAK_QUORUM_ENV}=1"):
                    pool.submit(sum, [1, 2]).result()
            with sim_cluster.connect(scheduler, planted=True) as pool:
                assert pool.submit(sum, [1, 2]).result() == 3  # asked for: the client plants it too
        finally:
            client.run(lambda: os.environ.pop(WEAK_QUORUM_ENV, None))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("localhost", "expected a Dask scheduler address"),
        ("inproc://127.0.0.1/1/2", "expected a Dask scheduler address"),
        ("tcp://127.0.0.1:99999", "port 99999 is out of range"),
        ("tcp://127.0.0.1:0", "port 0 is out of range"),
        ("tcp://host name:8786", "expected a Dask scheduler address"),
    ],
)
def test_a_malformed_cluster_address_is_refused_before_anything_runs(address: str, reason: str, tmp_path: Path) -> None:
    scenario = tmp_path / "crashes.toml"
    scenario.write_text(dump_scenario(CRASHES))
    result = CliRunner().invoke(cli, ["sim", "sweep", str(scenario), "--cluster", address])
    assert result.exit_code == 2 and reason in result.stderr


def test_an_unreachable_scheduler_is_refused_with_its_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim_cluster, "CONNECT_TIMEOUT_S", 1)
    scenario = tmp_path / "crashes.toml"
    scenario.write_text(dump_scenario(CRASHES))
    result = CliRunner().invoke(cli, ["sim", "sweep", str(scenario), "--cluster", "127.0.0.1:9"])
    assert result.exit_code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr


def test_addresses_are_normalised_to_what_dask_takes() -> None:
    assert sim_cluster.parse_address("10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert sim_cluster.parse_address("tls://scheduler.lab.example:8786") == "tls://scheduler.lab.example:8786"
    assert sim_cluster.parse_address("tcp://[::1]:8786") == "tcp://[::1]:8786"
