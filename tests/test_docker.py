"""The node image built and run as a 4-node network of containers (``make check-docker``, which
installs and starts a Docker engine and compose with ``docker/ensure-docker.sh``; slow, so not in
the default suite).

The image is built on ``P2PMED_BASE`` if set, else on ``debian:bookworm-slim`` if the engine has
it, else on ``p2pmed-base:bookworm``, which ``docker/build-base.sh`` builds with debootstrap from
Debian's packages when it is missing. ``compose.yaml`` then runs the network as project
``p2pmed-check`` on its own bridge network, and the tests check what an operator relies on:
every node healthy, each container holding its own node's keys and no other's, commits going on
while a container is killed and the killed node catching up when it starts again, and
``docker stop`` stopping a node cleanly. Build and run times and the image size are printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("docker")]

T = TypeVar("T")

ROOT = Path(__file__).parent.parent
PROJECT = "p2pmed-check"
IMAGE = "p2pmed:check"
DEBOOTSTRAP_BASE = "p2pmed-base:bookworm"
NODES = 4
KEY_FILES = ("node_key.pem", "encryption_key")
BUILD_TIMEOUT_S = 1800.0
WAIT_S = 180.0
LOAD_TXS = 40


def run(*args: str, timeout_s: float = 300.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    if check:
        assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result


def wait_until(probe: Callable[[], T | None], what: str, timeout_s: float = WAIT_S) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(1.0)


def compose_command() -> list[str]:
    if run("docker", "compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    found = shutil.which("docker-compose")
    assert found, "no docker compose nor docker-compose: run `make check-docker`, which installs Debian's"
    return [found]


def image_exists(name: str) -> bool:
    return run("docker", "image", "inspect", name, check=False).returncode == 0


def base_image() -> tuple[str, float | None]:
    """The base to build on, and the seconds it took to build it here (None if it existed)."""
    if "P2PMED_BASE" in os.environ:
        return os.environ["P2PMED_BASE"], None
    for name in ("debian:bookworm-slim", DEBOOTSTRAP_BASE):
        if image_exists(name):
            return name, None
    started = time.monotonic()
    run(str(ROOT / "docker" / "build-base.sh"), DEBOOTSTRAP_BASE, timeout_s=BUILD_TIMEOUT_S)
    return DEBOOTSTRAP_BASE, time.monotonic() - started


class Compose:
    """``compose.yaml`` as project ``PROJECT``, with the freshly built image."""

    def __init__(self) -> None:
        self.command = [*compose_command(), "--project-name", PROJECT, "--file", str(ROOT / "compose.yaml")]
        os.environ["P2PMED_IMAGE"] = IMAGE

    def __call__(self, *args: str, check: bool = True, timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
        return run(*self.command, *args, check=check, timeout_s=timeout_s)

    def exec(self, node: int, *args: str, check: bool = True, user: str = "p2pmed") -> subprocess.CompletedProcess[str]:
        return self("exec", "-T", "--user", user, f"node{node}", *args, check=check)

    def container(self, node: int) -> str:
        return self("ps", "-q", f"node{node}").stdout.strip()

    def inspect(self, node: int) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(run("docker", "inspect", self.container(node)).stdout)
        return found[0]

    def health(self, node: int) -> str:
        state = self.inspect(node)["State"]
        return str(state["Health"]["Status"]) if state["Running"] else "not running"

    def status(self, node: int) -> dict[str, Any] | None:
        answer = self.exec(node, "p2pmed", "status", "--json", check=False)
        return json.loads(answer.stdout) if answer.returncode == 0 else None

    def height(self, node: int) -> int:
        status = self.status(node)
        assert status is not None, f"node{node} does not answer status:\n{self.log_tail(node)}"
        return int(status["height"])

    def load(self, node: int) -> None:
        """LOAD_TXS transactions submitted at ``node``, and all of them committed."""
        answer = self.exec(node, "p2pmed", "load", "--count", str(LOAD_TXS), "--wait", "--timeout", "120", check=False)
        assert answer.returncode == 0, f"load at node{node}:\n{answer.stdout}{answer.stderr}\n{self.log_tail(node)}"

    def wait_healthy(self, node: int) -> None:
        wait_until(lambda: True if self.health(node) == "healthy" else None, f"node{node} healthy")

    def wait_height(self, node: int, height: int) -> None:
        def reached() -> bool | None:
            status = self.status(node)
            return True if status is not None and status["height"] >= height else None

        wait_until(reached, f"node{node} at height {height}")

    def block_hash(self, node: int, height: int) -> str:
        block = json.loads(self.exec(node, "p2pmed", "block", "get", "--json", str(height)).stdout)
        return str(block["hash"])

    def log_tail(self, node: int, lines: int = 30) -> str:
        logs = run("docker", "logs", "--tail", str(lines), self.container(node), check=False)
        return logs.stdout + logs.stderr


@pytest.fixture(scope="module")
def network() -> Iterator[Compose]:
    assert shutil.which("docker"), "no docker client: run `make check-docker`"
    assert run("docker", "info", check=False).returncode == 0, "no Docker engine answers: run `make check-docker`"
    base, base_build_s = base_image()
    started = time.monotonic()
    run("docker", "build", "--build-arg", f"BASE={base}", "--tag", IMAGE, str(ROOT), timeout_s=BUILD_TIMEOUT_S)
    image_build_s = time.monotonic() - started
    image_mb = int(run("docker", "image", "inspect", "--format", "{{.Size}}", IMAGE).stdout) / 1e6
    compose = Compose()
    compose("down", "--volumes", check=False)
    try:
        started = time.monotonic()
        compose("up", "--detach", "--no-build")
        for node in range(NODES):
            compose.wait_healthy(node)
        healthy_s = time.monotonic() - started
        base_built = "existed" if base_build_s is None else f"built in {base_build_s:.0f} s"
        print(
            f"\nbase {base} ({base_built}); image {IMAGE} built in {image_build_s:.0f} s, {image_mb:.0f} MB;"
            f" {NODES} containers healthy {healthy_s:.0f} s after compose up"
        )
        yield compose
    finally:
        compose("down", "--volumes", "--timeout", "20", check=False)


def test_each_container_holds_its_own_node_keys_and_no_other(network: Compose) -> None:
    for node in range(NODES):
        status = network.status(node)
        assert status is not None and status["validator_index"] == node and status["moniker"] == f"node{node}"
        mounts = [(mount["Type"], mount["Destination"], mount.get("Name")) for mount in network.inspect(node)["Mounts"]]
        assert mounts == [("volume", "/data", f"{PROJECT}_node{node}-home")]
        names = " -o ".join(f"-name {name}" for name in KEY_FILES).split()
        find = ["find", "/", "-path", "/proc", "-prune", "-o", "(", *names, ")", "-print"]
        found = network.exec(node, *find, user="root")
        assert sorted(found.stdout.split()) == sorted(f"/data/{name}" for name in KEY_FILES)


def test_commits_go_on_while_a_container_is_killed_and_it_catches_up_when_started(network: Compose) -> None:
    network.load(0)
    before = network.height(0)
    network("kill", "-s", "SIGKILL", "node2")
    assert network.health(2) == "not running"
    network.load(1)
    during = network.height(1)
    assert during > before
    network("start", "node2")
    network.wait_healthy(2)
    network.wait_height(2, during)
    assert network.block_hash(2, during) == network.block_hash(0, during)
    network.load(2)
    assert network.height(2) > during


def test_docker_stop_stops_a_node_cleanly_and_it_starts_again(network: Compose) -> None:
    network("stop", "--timeout", "30", "node3")
    state = network.inspect(3)["State"]
    assert (state["Running"], state["ExitCode"]) == (False, 0), state
    assert "node stopped" in network.log_tail(3, lines=200)
    network.load(0)
    network("start", "node3")
    network.wait_healthy(3)
    network.wait_height(3, network.height(0))
