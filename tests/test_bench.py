"""``p2pmed bench``: the limit, the CPU reader, the rate plan, a tiny real run, ``--sim`` and bad options.

Speed is never asserted here (house rule: the targets live in the benchmark's
report); these tests check that each part measures something and reports it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2pmed.bench.cpu import cpu_seconds
from p2pmed.bench.limit import measure_signature_limit
from p2pmed.bench.plan import AUTO_STEPS_MAX, COMMITTED_FRACTION_MIN, PRECISION, REPEATS, RatePlan, parse_rates
from p2pmed.bench.report import repeat_spread
from p2pmed.bench.step import StepLoad, StepResult, _Submitter
from p2pmed.cli.main import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEP_FIELDS = {
    "label",
    "rate_asked_tx_per_s",
    "offered_tx_per_s",
    "committed_tx_per_s",
    "sent",
    "committed",
    "refused",
    "resent",
    "send_window_s",
    "latency_ms",
    "send_lag_ms",
    "cpu_per_node",
    "node_cpu_ms_per_tx",
    "client_cpu",
    "mempool_at_start",
    "send_errors",
}


def test_the_signature_limit_is_verifications_per_core_times_cores_over_nodes() -> None:
    limit = measure_signature_limit(nodes=4, measure_cpu_s=0.05)
    assert limit.verify_per_core_s > 0 and limit.signature_is_valid_per_core_s > 0 and limit.cores >= 1
    assert limit.tx_per_s == pytest.approx(limit.verify_per_core_s * limit.cores / 4)
    assert limit.as_json()["nodes"] == 4


def test_the_cpu_reader_reads_what_a_real_process_used_and_refuses_a_gone_one() -> None:
    burn = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.2: pass\ntime.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", burn])
    try:
        deadline = time.monotonic() + 20
        while cpu_seconds(process.pid) < 0.15 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cpu_seconds(process.pid) >= 0.15
    finally:
        process.kill()
        process.wait()
    with pytest.raises(OSError):
        cpu_seconds(process.pid)


def _step(rate: float, committed_per_s: float, p99_ms: float | None = 100.0, committed: int = 100) -> StepResult:
    return StepResult(
        "sweep",
        rate,
        100,
        committed,
        1.0,
        rate,
        committed_per_s,
        {"p50": p99_ms, "p99": p99_ms},
        {"p99": 0.0},
        [0.5],
        0.1,
    )


def capacity(rate: float, limit: float = 610.0) -> StepResult:
    """A network that commits up to ``limit`` tx/s: below it, what is offered."""
    return _step(rate, min(rate, limit))


def test_auto_doubles_until_saturation_then_bisects_to_the_precision_and_repeats_the_best() -> None:
    plan, steps = RatePlan(None), []
    while (rate := plan.next_rate(steps)) is not None:
        steps.append(capacity(rate))
    rates = [step.rate for step in steps]
    assert rates[:6] == [50, 100, 200, 400, 800, 600]  # 800 saturated: bisect 400..800
    assert plan.bounds is not None
    low, high = plan.bounds
    assert 610 * COMMITTED_FRACTION_MIN <= low <= 610 / COMMITTED_FRACTION_MIN and high - low <= PRECISION * low
    assert rates[-REPEATS:] == [low] * REPEATS and len(rates) <= AUTO_STEPS_MAX
    assert "saturated at 800" in plan.stop_reason and f"within {low:g}..{high:g}" in plan.stop_reason
    spread = repeat_spread(steps)
    assert spread is not None and spread["rate_tx_per_s"] == low and spread["runs"] == REPEATS + 1


def test_a_first_step_that_does_not_keep_up_ends_auto_without_bisecting() -> None:
    plan = RatePlan(None)
    assert plan.next_rate([_step(50, 10, committed=20)]) is None and plan.bounds is None


@pytest.mark.parametrize(
    ("last", "reason"),
    [
        (_step(100, 99, p99_ms=5_000), "latency exploded"),
        (_step(100, 99, committed=50), "only 50% of what was sent committed"),
        (_step(100, 0, p99_ms=None, committed=0), "nothing committed"),
    ],
)
def test_auto_stops_doubling_when_latency_explodes_or_commits_fall_behind(last: StepResult, reason: str) -> None:
    plan = RatePlan(None)
    assert plan.next_rate([_step(50, 50), last]) == 75 and reason in plan.stop_reason  # then bisects 50..100


def test_auto_stops_at_its_step_cap_and_a_fixed_list_runs_as_given() -> None:
    plan = RatePlan(None)
    steps = [_step(50 * 2**index, 50 * 2**index) for index in range(AUTO_STEPS_MAX)]
    assert plan.next_rate(steps) is None and "cap" in plan.stop_reason
    fixed, done = RatePlan((30.0, 10.0)), []
    while (rate := fixed.next_rate(done)) is not None:
        done.append(_step(rate, rate))
    assert [step.rate for step in done] == [30.0, 10.0]
    assert parse_rates("auto") is None and parse_rates(" 50, 100 ") == (50.0, 100.0)


def test_a_tiny_real_network_bench_writes_its_json_png_table_and_logs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["bench", "--nodes", "4", "--rates", "20", "--duration", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "bench.json").read_text())
    assert data["command"].startswith("p2pmed bench --nodes 4 --rates 20 --duration 1")
    assert {"cores", "cpu_model", "python", "libp2p", "load_average_at_start"} <= set(data["machine"])
    assert data["signature_limit"]["tx_per_s"] > 0 and data["signature_limit"]["nodes"] == 4
    [step] = data["steps"]
    assert set(step) == STEP_FIELDS and step["sent"] == 20 and step["committed"] > 0
    assert len(step["cpu_per_node"]) == 4 and step["latency_ms"]["p50"] is not None
    assert set(data["half_rate"]) == STEP_FIELDS and data["half_rate"]["label"] == "half-rate"
    assert {"best_committed_tx_per_s", "ratio_to_limit", "throughput", "latency_at_half_rate"} <= set(data["targets"])
    assert isinstance(data["targets"]["throughput"]["met"], bool)
    assert (out / "bench.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted(path.name for path in (out / "logs").iterdir()) == [f"node{i}.log" for i in range(4)]
    assert "half-rate" in result.output and "signature limit" in result.output and "target" in result.output


def test_sim_reports_the_simulators_speedup(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["bench", "--sim", "--rates", "100", "--duration", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    [run] = json.loads((tmp_path / "sim.json").read_text())["runs"]
    assert run["nodes"] == 4 and run["rate_tx_per_s"] == 100 and run["speedup"] > 0 and run["events_per_s"] > 0
    assert "target 4 nodes at 100 tx/s" in result.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--rates", "fast"], "--rates"),
        (["--rates", "0"], "--rates"),
        (["--rates", "-5"], "--rates"),
        (["--rates", "50,,100"], "--rates"),
        (["--rates", "nan"], "--rates"),
        (["--rates", "1e9"], "--rates"),
        (["--nodes", "0"], "--nodes"),
        (["--nodes", "17"], "--nodes"),
        (["--duration", "0"], "--duration"),
        (["--duration", "-1"], "--duration"),
        (["--duration", "soon"], "--duration"),
        (["--resend-after-ms", "0"], "--resend-after-ms"),
        (["--resend-after-ms", "100", "--sim"], "--resend-after-ms"),
    ],
)
def test_a_bad_option_exits_2_naming_it(tmp_path: Path, args: list[str], option: str) -> None:
    result = CliRunner().invoke(cli, ["bench", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and option in result.output
    assert not (tmp_path / "out").exists()


class _RefusalsArrivingWhileRead(dict[int, str]):
    """A submitter's refusals, to which its reader thread adds one each time they are iterated."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        for index in super().__iter__():
            self[len(self)] = "mempool-full"
            yield index


def test_waiting_for_commits_survives_refusals_that_arrive_while_it_reads_them() -> None:
    from types import SimpleNamespace

    from p2pmed.bench.step import _wait_commits

    refused = _RefusalsArrivingWhileRead({0: "mempool-full"})
    submitter = SimpleNamespace(
        load=SimpleNamespace(tx_ids=[["aa", "bb", "cc"]]), written_at=[0.0, 0.0], refused=refused, answered=True
    )
    watchers = SimpleNamespace(committed_at=[{"bb": 1.0}])
    _wait_commits([submitter], watchers, time.monotonic() + 5)  # type: ignore[list-item, arg-type]


def _refusing_node(path: Path, refusals: dict[int, list[str]], seen: Counter[int]) -> threading.Thread:
    """A node's RPC socket that answers request ``id`` with the refusals listed for it, in turn,
    then with success; ``seen`` counts the requests of each id."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        connection, _ = server.accept()
        with connection, server, connection.makefile("rwb") as stream:
            for line in stream:
                request_id = json.loads(line)["id"]
                seen[request_id] += 1
                pending = refusals.get(request_id, [])
                if pending:
                    reason = pending.pop(0)
                    reply = {"jsonrpc": "2.0", "id": request_id, "error": {"code": 1, "data": {"reason": reason}}}
                else:
                    reply = {"jsonrpc": "2.0", "id": request_id, "result": {"tx_id": "00"}}
                stream.write(json.dumps(reply).encode() + b"\n")
                stream.flush()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("resend_after_s", [None, 0.02], ids=["open-loop", "resending"])
def test_a_resending_client_writes_a_mempool_full_refusal_again_and_nothing_else(
    tmp_path: Path, resend_after_s: float | None
) -> None:
    lines = tuple(json.dumps({"id": index, "method": "tx.submit"}).encode() + b"\n" for index in range(3))
    load = StepLoad(rate=1_000.0, lines=(lines,), tx_ids=(("a", "b", "c"),))
    seen: Counter[int] = Counter()
    node = _refusing_node(tmp_path / "rpc.sock", {1: ["mempool-full", "mempool-full"], 2: ["bad-signature"]}, seen)
    submitter = _Submitter(tmp_path / "rpc.sock", load, 0, resend_after_s)
    try:
        submitter.begin(time.monotonic())
        deadline = time.monotonic() + 10
        while not submitter.answered and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        submitter.close()
    node.join(5)
    if resend_after_s is None:
        assert submitter.refused == {1: "mempool-full", 2: "bad-signature"} and submitter.resent == 0
        assert seen == {0: 1, 1: 1, 2: 1}
    else:  # refused twice, then taken; the bad transaction is not tried again
        assert submitter.refused == {2: "bad-signature"} and submitter.resent == 2
        assert seen == {0: 1, 1: 3, 2: 1}
