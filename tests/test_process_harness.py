"""Node processes a harness starts never outlive it: not when the harness gets SIGTERM, and
not when it is killed outright."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HARNESS = """
import json, sys, time
from pathlib import Path
from p2pmed.testing.process_network import ProcessNetwork

with ProcessNetwork(Path(sys.argv[1]), 2) as net:
    net.start_all(60)
    print(json.dumps([process.pid for process in net.processes]), flush=True)
    time.sleep(120)
"""
WAIT_S = 20.0

pytestmark = pytest.mark.xdist_group("processes")


def alive(pid: int) -> bool:
    """Running or stopped, not gone and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def start_harness(directory: str) -> tuple[subprocess.Popen[str], list[int]]:
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS, directory], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert harness.stdout is not None
    line = harness.stdout.readline()
    assert line, f"the harness did not start its nodes: {harness.stderr.read() if harness.stderr else ''}"
    nodes = json.loads(line)
    assert len(nodes) == 2 and all(alive(pid) for pid in nodes)
    return harness, nodes


def wait_gone(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_nodes_stop_when_their_harness_is_terminated_or_killed(signum: int) -> None:
    with tempfile.TemporaryDirectory(prefix="p2pmed-h-") as directory:  # short: socket paths
        harness, nodes = start_harness(directory)
        try:
            harness.send_signal(signum)
            harness.wait(WAIT_S)
            assert wait_gone(nodes) == []
            logs = [(Path(directory) / f"node{index}.log").read_text() for index in range(2)]
            why = '"signal": "SIGTERM"' if signum == signal.SIGTERM else "the process that started this node has exited"
            assert all(why in log and '"node stopped"' in log for log in logs), logs[0][-2000:]
        finally:
            harness.kill()
            for pid in nodes:
                if alive(pid):
                    subprocess.run(["kill", "-9", str(pid)], check=False)
