"""The ``p2pmed`` commands that drive a running node through its RPC socket:
``status``, ``peers``, ``tx submit|get``, ``block get`` and ``watch``.

Each prints for people by default and JSON with ``--json`` (``watch``: one JSON
object per line). Exit codes: 0 done, 1 the node is not running or refused the
request (the message says why), 2 bad input on the command line.
"""

from __future__ import annotations

import collections
import datetime
import json
import re
import time
from pathlib import Path
from typing import Any, BinaryIO

import click

from p2pmed.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    HOME_OPTION,
    JSON_OPTION,
    emit,
    fail,
    node,
    socket_of,
    utc_time,
)
from p2pmed.codec import TX_SIZE_MAX
from p2pmed.rpc.client import NodeNotRunning, RpcClient, RpcError, Subscription

__all__ = ["CHAIN_COMMANDS", "TxRate", "read_transaction"]

RATE_WINDOW_S = 10.0
_HASH = re.compile(r"[0-9a-fA-F]{64}")
_HEX = re.compile(rb"(?:[0-9a-fA-F]{2})+")


# -- status and peers -------------------------------------------------------------


@click.command()
@HOME_OPTION
@JSON_OPTION
@click.option("--quiet", is_flag=True, help="Print nothing; exit 0 only if the node answers (a health check).")
def status(home: Path, as_json: bool, quiet: bool) -> None:
    """Show the node's height, view, role and peers."""
    try:
        with RpcClient(socket_of(home), timeout=5) as client:
            result = client.call("node.status")
    except (NodeNotRunning, RpcError, OSError) as error:
        if quiet:
            raise SystemExit(EXIT_FAILURE) from None
        fail(str(error))
    if not quiet:
        emit(result, as_json, human_status)


def human_status(result: dict[str, Any]) -> str:
    if result["role"] == "observer":
        who = f"observer of {result['validators']} validators"
        consensus = f"  role observer  {_sync(result)}\n"
    else:
        who = f"validator {result['validator_index']} of {result['validators']}"
        consensus = f"  view {result['view']}  primary {result['primary']}  role {result['role']}  {_sync(result)}\n"
    return (
        f"{result['moniker']} ({who}) on {result['chain_id']}\n"
        f"  height {result['height']}  last block {result['last_block_hash'][:16]}…\n"
        f"{consensus}"
        f"  peers {result['peers']}  mempool {result['mempool_size']}  up {result['uptime_s']} s  version "
        f"{result['version']}"
    )


def _sync(result: dict[str, Any]) -> str:
    if result["sync"] == "synced":
        return "synced"
    return f"catching up (peers are at height {result['peer_height']} or more)"


@click.command()
@HOME_OPTION
@JSON_OPTION
def peers(home: Path, as_json: bool) -> None:
    """List the network's validators and whether this node is connected to each, then the
    observers (this node, if it is one, and the other peers connected that are not validators)."""
    with node(home) as client:
        result = client.call("net.peers")
    emit(result, as_json, human_peers)


def human_peers(result: list[dict[str, Any]]) -> str:
    lines = []
    for peer in result:
        state = "this node" if peer["self"] else "connected" if peer["connected"] else "NOT CONNECTED"
        index = "-" if peer["index"] is None else peer["index"]
        address = peer["address"] or "-"
        lines.append(
            f"{index:>3}  {peer['role']:<9} {peer['moniker'] or '-':<16} {state:<14} {address}  {peer['node_id']}"
        )
    validators = [peer for peer in result if peer["role"] == "validator"]
    others = len(validators) - any(peer["self"] for peer in validators)
    connected = sum(peer["connected"] for peer in validators)
    lines.append(f"connected to {connected} of {others} other validators")
    return "\n".join(lines)


# -- transactions ---------------------------------------------------------------------


@click.group()
def tx() -> None:
    """Submit a signed transaction, or look one up."""


@tx.command("submit")
@HOME_OPTION
@JSON_OPTION
@click.argument("source", type=click.File("rb"), metavar="FILE|-")
def tx_submit(home: Path, as_json: bool, source: BinaryIO) -> None:
    """Submit the signed transaction in FILE (or standard input with -): its canonical
    CBOR, as raw bytes or as hex text. Prints its id; it is then pending."""
    try:
        data = read_transaction(source)
    except ValueError as error:
        fail(str(error), EXIT_BAD_INPUT)
    with node(home) as client:
        try:
            result = client.call("tx.submit", tx=data)
        except RpcError as error:
            reason = error.data.get("reason") if isinstance(error.data, dict) else None
            fail(f"{error.message} [{reason}]" if reason else error.message)
    emit(result, as_json, lambda r: f"{r['tx_id']} {r['status']}")


def read_transaction(source: BinaryIO) -> bytes:
    """A transaction's bytes from a file holding them raw or as hex (whitespace around
    hex is ignored). Raw CBOR is never mistaken for hex: a transaction's encoding
    starts with a map header byte, which is not an ASCII hex digit."""
    data = source.read(2 * TX_SIZE_MAX + 3)  # hex of the largest transaction, a newline
    if len(data) > 2 * TX_SIZE_MAX + 2:
        raise ValueError(f"the input is larger than any transaction may be ({TX_SIZE_MAX} bytes)")
    stripped = data.strip()
    if not stripped:
        raise ValueError("the input is empty: expected a signed transaction, raw CBOR or hex")
    return bytes.fromhex(stripped.decode("ascii")) if _HEX.fullmatch(stripped) else data


@tx.command("get")
@HOME_OPTION
@JSON_OPTION
@click.argument("tx_id", metavar="TX_ID")
def tx_get(home: Path, as_json: bool, tx_id: str) -> None:
    """Show whether transaction TX_ID (64 hex digits) is pending, committed or rejected."""
    if not _HASH.fullmatch(tx_id):
        fail(f"TX_ID must be 64 hex digits, got {tx_id[:80]!r}", EXIT_BAD_INPUT)
    with node(home) as client:
        result = client.call("tx.get", tx_id=tx_id.lower())
    emit(result, as_json, human_tx)


def human_tx(result: dict[str, Any]) -> str:
    if result["status"] == "pending":
        return f"{result['tx_id']} pending: waiting in this node's mempool"
    where = f"at height {result['height']} (position {result['position']})"
    if result["status"] == "committed":
        head = f"{result['tx_id']} committed {where}"
    else:
        detail = f": {result['detail']}" if result["detail"] else ""
        head = f"{result['tx_id']} rejected {where}, reason {result['reason']}{detail}"
    return f"{head}\n  type {result['type']}  sender {result['sender']}  nonce {result['nonce']}"


# -- blocks -----------------------------------------------------------------------------


@click.group()
def block() -> None:
    """Look up committed blocks."""


@block.command("get")
@HOME_OPTION
@JSON_OPTION
@click.argument("which", metavar="HEIGHT|HASH")
def block_get(home: Path, as_json: bool, which: str) -> None:
    """Show the block at HEIGHT, or with HASH (64 hex digits), with its commit certificate."""
    if _HASH.fullmatch(which):
        params: dict[str, Any] = {"hash": which.lower()}
    elif which.isascii() and which.isdigit() and len(which) <= 18:
        params = {"height": int(which)}
    else:
        fail(f"expected a height (a number) or a block hash (64 hex digits), got {which[:80]!r}", EXIT_BAD_INPUT)
    with node(home) as client:
        result = client.call("chain.block", **params)
    emit(result, as_json, human_block)


def human_block(result: dict[str, Any]) -> str:
    certificate = result["commit_certificate"]
    lines = [
        f"block {result['height']}  {result['hash']}",
        f"  time {utc_time(result['time_ms'], 'milliseconds')}  proposer {result['proposer']}",
        f"  previous {result['previous_hash']}",
        f"  commit certificate: {'none' if certificate is None else f'{len(certificate) // 2} bytes'}",
        f"  {result['tx_count']} transaction{'' if result['tx_count'] == 1 else 's'}",
    ]
    lines.extend(f"    {tx_id}" for tx_id in result["tx_ids"])
    return "\n".join(lines)


# -- watch ---------------------------------------------------------------------------------


class TxRate:
    """Transactions per second over the last ``window_s`` seconds (or since the start, if shorter)."""

    def __init__(self, now_s: float, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self.started_s = now_s
        self._blocks: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, now_s: float, txs: int) -> None:
        self._blocks.append((now_s, txs))

    def per_second(self, now_s: float) -> float:
        while self._blocks and self._blocks[0][0] < now_s - self.window_s:
            self._blocks.popleft()
        span_s = min(self.window_s, now_s - self.started_s)
        return sum(txs for _, txs in self._blocks) / span_s if span_s > 0 else 0.0


@click.command()
@HOME_OPTION
@JSON_OPTION
@click.option(
    "--interval", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True, help="Seconds between updates."
)
@click.option("--count", type=click.IntRange(1), default=None, help="Stop after COUNT updates [default: until Ctrl-C].")
def watch(home: Path, as_json: bool, interval: float, count: int | None) -> None:
    """A live view of the node: height, view, peers, mempool and committed tx/s, one line
    per update. Blocks come from chain.subscribe as they commit; the rest from node.status."""
    updates = 0
    try:
        with node(home) as client, client.subscribe("chain.subscribe") as blocks:
            rate = TxRate(time.monotonic())
            while count is None or updates < count:
                committed = _blocks_until(blocks, time.monotonic() + interval, rate)
                if committed is None:
                    fail("the node ended the block subscription")
                update = _watch_update(client.call("node.status"), committed, rate.per_second(time.monotonic()))
                click.echo(json.dumps(update) if as_json else human_update(update))
                updates += 1
    except KeyboardInterrupt:
        pass


def _blocks_until(blocks: Subscription, deadline_s: float, rate: TxRate) -> int | None:
    """Read blocks until ``deadline_s``, counting their transactions in ``rate``;
    returns how many blocks came, or ``None`` if the subscription ended."""
    received = 0
    while (remaining_s := deadline_s - time.monotonic()) > 0:
        try:
            block = blocks.next(remaining_s)
        except TimeoutError:
            break
        except StopIteration:
            return None
        rate.add(time.monotonic(), block["tx_count"])
        received += 1
    return received


def _watch_update(status: dict[str, Any], blocks: int, tx_per_s: float) -> dict[str, Any]:
    return {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "height": status["height"],
        "view": status["view"],
        "primary": status["primary"],
        "role": status["role"],
        "peers": status["peers"],
        "validators": status["validators"],
        "mempool_size": status["mempool_size"],
        "blocks": blocks,
        "tx_per_s": round(tx_per_s, 1),
    }


def human_update(update: dict[str, Any]) -> str:
    return (
        f"{update['time']}  height {update['height']} (+{update['blocks']})  view {update['view']} "
        f"({update['role']}, primary {update['primary']})  peers {update['peers']}/{update['validators'] - 1}  "
        f"mempool {update['mempool_size']}  {update['tx_per_s']:.1f} tx/s"
    )


CHAIN_COMMANDS = [status, peers, tx, block, watch]
