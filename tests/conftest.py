"""Fixtures shared by the CLI tests that drive an in-process node (tests/health_world.py):
a short scratch directory (Unix socket paths must fit in 107 bytes), an initialised
home in it, and the in-process RPC stand-in patched in for every command."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from health_world import InProcessClient, StoreHarness, build_world
from p2pmed.cli import common as cli_common
from p2pmed.cli.main import cli


@pytest.fixture
def directory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="p2pmed-"))  # short: the socket path must fit
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def home(directory: Path) -> Path:
    result = CliRunner().invoke(cli, ["init", "--home", str(directory / "node")])
    assert result.exit_code == 0, result.output
    return directory / "node"


@pytest.fixture
def client(directory: Path, monkeypatch: pytest.MonkeyPatch) -> InProcessClient:
    ledger = StoreHarness(directory / "store.db")
    build_world(ledger)
    fake = InProcessClient(ledger)
    monkeypatch.setattr(cli_common, "RpcClient", fake)
    return fake
