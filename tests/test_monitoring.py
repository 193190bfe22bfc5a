"""The shipped alert rules and Grafana dashboard against real nodes: every metric they name is
one a node exports; and (``make check-monitoring``, needing Debian's ``prometheus``) the rules
pass ``promtool``, and a real Prometheus server scrapes real nodes and evaluates the rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from p2pmed.testing.process_network import ProcessNetwork, free_port_range

MONITORING = Path(__file__).parent.parent / "monitoring"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
DASHBOARD = MONITORING / "grafana" / "p2pmed-network.json"
WAIT_S = 60.0

pytestmark = pytest.mark.xdist_group("processes")


@pytest.fixture(scope="module")
def net() -> Iterator[ProcessNetwork]:
    with tempfile.TemporaryDirectory(prefix="p2pmed-mon-") as directory:
        with ProcessNetwork(Path(directory), 4, metrics=True) as network:
            network.start_all(WAIT_S)
            yield network


def scrape(net: ProcessNetwork, index: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{net.metrics_ports[index]}/metrics", timeout=10).read().decode()


def expressions() -> list[str]:
    rules = [rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return rules + [target["expr"] for panel in panels for target in panel["targets"]]


def test_every_metric_the_alerts_and_dashboard_name_is_exported_by_a_node(net: ProcessNetwork) -> None:
    exported = {sample.name for family in text_string_to_metric_families(scrape(net, 0)) for sample in family.samples}
    named = {name for expr in expressions() for name in re.findall(r"\b(?:p2pmed|process)_[a-z0-9_]+\b", expr)}
    assert len(named) >= 20 and named - exported == set()


def promtool(*args: str) -> str:
    found = shutil.which("promtool")
    assert found, "promtool not found: install Debian's prometheus package (make check-monitoring does)"
    result = subprocess.run([found, *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_the_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    rules = sum(len(group["rules"]) for group in yaml.safe_load(ALERTS.read_text())["groups"])
    assert f"SUCCESS: {rules} rules found" in promtool("check", "rules", str(ALERTS))
    assert "SUCCESS" in promtool("test", "rules", str(ALERTS.with_name("alerts_test.yml")))


def query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def wait_until(probe: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            found = probe()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_real_prometheus_scrapes_the_nodes_and_alerts_on_a_killed_one(net: ProcessNetwork, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: install Debian's prometheus package (make check-monitoring does)"
    port = free_port_range(1)
    targets = [f"127.0.0.1:{metrics_port}" for metrics_port in net.metrics_ports]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "p2pmed", "static_configs": [{"targets": targets}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    try:

        def all_up() -> list[dict[str, Any]] | None:
            found = query(port, 'up{job="p2pmed"} == 1')
            return found if len(found) == 4 else None

        up = wait_until(all_up, "every node scraped")
        assert {sample["metric"]["instance"] for sample in up} == set(targets)
        heights = query(port, "p2pmed_height")
        assert len(heights) == 4
        net.kill(3)
        down = wait_until(lambda: query(port, 'ALERTS{alertname="P2pmedNodeDown"}'), "P2pmedNodeDown pending")
        assert [(a["metric"]["instance"], a["metric"]["alertstate"]) for a in down] == [(targets[3], "pending")]
    finally:
        server.terminate()
        server.wait(10)
        net.start(3)
        net.wait_ready(3, WAIT_S)
