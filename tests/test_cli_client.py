"""The RPC client commands without a node: input parsing, the tx/s window, and what
they say when no node is running. Against a running node: ``test_operator.py``."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2pmed.cli.chain import TxRate, read_transaction
from p2pmed.cli.main import cli
from p2pmed.client.load import sample_transactions
from p2pmed.codec import TX_SIZE_MAX


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """A node home whose node is not running (short path: it holds the socket's name)."""
    directory = Path(tempfile.mkdtemp(prefix="p2pmed-"))
    try:
        result = CliRunner().invoke(cli, ["init", "--home", str(directory / "node")])
        assert result.exit_code == 0, result.output
        yield directory / "node"
    finally:
        shutil.rmtree(directory)


def test_a_transaction_is_read_as_raw_cbor_or_as_hex_with_whitespace_around() -> None:
    tx = sample_transactions("p2pmed-test", 1)[0]
    assert read_transaction(io.BytesIO(tx.encoded)) == tx.encoded
    assert read_transaction(io.BytesIO(b"  " + tx.encoded.hex().encode() + b"\n")) == tx.encoded
    assert read_transaction(io.BytesIO(tx.encoded.hex().upper().encode())) == tx.encoded


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(b"", "empty"), (b" \n", "empty"), (b"0" * (2 * TX_SIZE_MAX + 3), "larger than any transaction")],
)
def test_empty_or_oversized_input_is_refused_before_reaching_the_node(data: bytes, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        read_transaction(io.BytesIO(data))


def test_tx_rate_counts_the_last_window_or_the_time_since_the_start() -> None:
    rate = TxRate(now_s=100.0, window_s=10.0)
    assert rate.per_second(100.0) == 0.0
    rate.add(101.0, 20)
    assert rate.per_second(102.0) == 10.0  # 20 txs in the 2 s since the start
    rate.add(105.0, 30)
    assert rate.per_second(110.0) == 5.0  # 50 txs over a full 10 s window
    assert rate.per_second(111.5) == 3.0  # the first block has left the window
    assert rate.per_second(200.0) == 0.0


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["peers"],
        ["tx", "get", "ab" * 32],
        ["block", "get", "1"],
        ["watch", "--count", "1"],
    ],
)
def test_every_client_command_says_no_node_is_running_and_exits_1(home: Path, args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--home", str(home)])
    assert result.exit_code == 1, result.output
    assert "no node is running at" in result.stderr and "p2pmed node --home" in result.stderr
    assert result.stdout == ""


def test_status_quiet_prints_nothing_and_exits_1_when_no_node_runs(home: Path) -> None:
    result = CliRunner().invoke(cli, ["status", "--quiet", "--home", str(home)])
    assert (result.exit_code, result.output) == (1, "")


def test_tx_submit_says_no_node_is_running(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "tx.hex"
    path.write_text(sample_transactions("p2pmed-test", 1)[0].encoded.hex())
    result = CliRunner().invoke(cli, ["tx", "submit", str(path), "--home", str(home)])
    assert result.exit_code == 1 and "no node is running at" in result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["tx", "get", "abc"], "TX_ID must be 64 hex digits"),
        (["tx", "get", "zz" * 32], "TX_ID must be 64 hex digits"),
        (["block", "get", "1.5"], "expected a height (a number) or a block hash"),
        (["block", "get", "12ab"], "expected a height (a number) or a block hash"),
        (["block", "get", "9" * 40], "expected a height (a number) or a block hash"),
    ],
)
def test_malformed_ids_are_refused_with_exit_2_before_reaching_the_node(
    home: Path, args: list[str], fragment: str
) -> None:
    result = CliRunner().invoke(cli, [*args, "--home", str(home)])
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr


def test_tx_submit_of_an_empty_file_exits_2(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    result = CliRunner().invoke(cli, ["tx", "submit", str(path), "--home", str(home)])
    assert result.exit_code == 2 and "input is empty" in result.stderr


def test_the_home_may_come_from_the_environment(home: Path) -> None:
    result = CliRunner().invoke(cli, ["peers"], env={"P2PMED_HOME": str(home)})
    assert result.exit_code == 1 and str(home) in result.stderr
