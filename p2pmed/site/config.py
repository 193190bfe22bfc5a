"""The node's ``config.toml``: what an operator sets, checked before the daemon starts.

``CONFIG_TEMPLATE`` is written by ``p2pmed init`` and documents every key with
its default. ``load_config`` reads it strictly: an unknown key (a typo), a wrong
type or a value out of range raises ``ConfigError`` naming the key, and the
daemon exits with code 2 rather than run with a setting the operator did not mean.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libp2p.peer.id import ID

from p2pmed.codec import TX_SIZE_MAX
from p2pmed.consensus.messages import PROPOSAL_BYTES_MAX
from p2pmed.input_error import KeyedInputError

__all__ = ["CONFIG_TEMPLATE", "ROLES", "ConfigError", "NodeConfig", "load_config", "render_config"]

CONFIG_SIZE_MAX = 1 << 16
PATH_LENGTH_MAX = 4096
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
GOSSIP_PUBLISHERS = ("validators", "organisations", "any")
GOSSIP_PEERS_MAX = 256
ROLES = ("validator", "observer")


class ConfigError(KeyedInputError):
    """A bad config.toml."""


@dataclass(frozen=True)
class NodeConfig:
    moniker: str = "node"
    role: str = "validator"
    listen: str = "/ip4/127.0.0.1/tcp/26656"
    gossip_publishers: str = "validators"
    gossip_peers: tuple[str, ...] = ()
    """Peer ids admitted as gossip publishers besides those ``gossip_publishers`` names."""
    rpc_socket: str = "p2pmed.sock"
    metrics_port: int = 0
    batch_size_max: int = 500
    block_bytes_max: int = 2 << 20
    batch_delay_ms: int = 0
    pipeline_max: int = 1
    block_time_skew_max_ms: int = 10_000
    request_timeout_ms: int = 2_000
    view_change_timeout_ms: int = 2_000
    checkpoint_interval: int = 16
    log_format: str = "auto"
    log_level: str = "info"
    fault_injection: bool = False
    probes_from_anyone: bool = False
    heartbeat_interval_ms: int = 60_000
    passphrase_file: str = ""
    master_key_file: str = ""
    fast_start: bool = False
    snapshot_interval_blocks: int = 1_000

    @property
    def watermark_window(self) -> int:
        """PBFT's log window L: four checkpoint intervals."""
        return 4 * self.checkpoint_interval


CONFIG_TEMPLATE = """\
# p2pmed node configuration. A key left out takes its default (the value `p2pmed init` writes).
moniker = {moniker}
# "validator": this node's key is in genesis.json and it votes. "observer": it
# votes on nothing; it follows the validators' certified blocks and the
# transaction topic, serves every read and relays its clients' transactions
# (the validators must admit its peer id: their [p2p] gossip_peers).
role = {role}

[p2p]
# Multiaddr this node listens on for its peers (TCP, Noise encryption, Yamux
# streams). The peers themselves come from genesis.json.
listen = {listen}
# Whose transaction batches this node checks and relays on the gossip topic:
# "validators" (the genesis validators' node keys), "organisations" (also every
# organisation in force whose signing key is its node's libp2p key), or "any"
# libp2p peer. Publishers other than validators are held to 16 MiB/s of batches.
gossip_publishers = {gossip_publishers}
# Peer ids admitted besides, e.g. an observer's or a client's: ["12D3KooW..."].
gossip_peers = {gossip_peers}

[mempool]
# Admit load.probe transactions (they change nothing but a nonce) from keys that
# are registered nowhere: `p2pmed testnet` sets it, since `p2pmed load` and the
# benchmark sign with throwaway keys. Every other transaction, and every probe
# when this is false, needs a sender that is a validator, or an organisation or
# person in force; others are refused with "unknown-sender".
probes_from_anyone = {probes_from_anyone}

[rpc]
# Unix socket of the local JSON-RPC interface, relative to the home directory.
# It is created with mode 0600: only this user can drive the node.
socket = {rpc_socket}

[metrics]
# Port for Prometheus metrics on 127.0.0.1; 0 turns metrics off.
port = {metrics_port}

[consensus]
# Most transactions and most bytes of transactions in one proposal (1 MiB to
# 4 MiB), and how long the primary waits to fill one (0: not at all; it proposes
# once the block before is done, and under load blocks grow by themselves).
batch_size_max = {batch_size_max}
block_bytes_max = {block_bytes_max}
batch_delay_ms = {batch_delay_ms}
# Proposals the primary may have in flight at once. 1 suits a LAN or a busy CPU:
# the next block waits for the last and carries everything that came meanwhile.
# Raise it when round trips, not CPU, are what limit throughput (sites far apart).
pipeline_max = {pipeline_max}
# How long a transaction may wait before the primary is suspected, and how long
# a view change may take before the next one; both in milliseconds.
request_timeout_ms = {request_timeout_ms}
view_change_timeout_ms = {view_change_timeout_ms}
# A backup prepares a new block only if it is dated within this many
# milliseconds of its own clock (block time is the ledger's clock for expiries).
block_time_skew_max_ms = {block_time_skew_max_ms}
# Blocks between checkpoints; the log is garbage-collected at each one. A view
# change carries certificates for up to 4 intervals, so with many validators
# this must stay small (the node says so at start if it is too large).
checkpoint_interval = {checkpoint_interval}
# An idle primary proposes an empty block this long after the last one, so
# that consents, grants and other expiries take effect without traffic.
heartbeat_interval_ms = {heartbeat_interval_ms}

[sync]
# A node with an empty store starts from a recent state that f+1 validators offer
# and a quorum certified, instead of replaying every block since genesis; it then
# has no blocks or transactions from before that state (docs/operators.md).
fast_start = {fast_start}
# Every this many blocks this node offers its state to nodes that start fast.
snapshot_interval_blocks = {snapshot_interval_blocks}

[keys]
# What node_key.pem and encryption_key are encrypted under, if they are (see
# `p2pmed keys` and docs/operators.md, "Keys at rest"): a file holding the
# passphrase, or a master key file of at least 32 random bytes; at most one.
# A relative path is relative to this home; "" means none. The environment
# variables P2PMED_PASSPHRASE_FILE and P2PMED_MASTER_KEY_FILE take precedence.
passphrase_file = {passphrase_file}
master_key_file = {master_key_file}

[log]
# "auto" (readable on a terminal, JSON lines otherwise), "json" or "console".
format = {log_format}
# "debug", "info", "warning" or "error".
level = {log_level}

[fault_injection]
# Test harness only: lets the transport drop, delay and partition traffic on
# command. Never enable this on a production node.
enabled = {fault_injection}
"""


def render_config(config: NodeConfig) -> str:
    """``config`` as a commented config.toml that ``load_config`` reads back unchanged."""
    values = {
        # JSON strings, booleans and arrays of strings are TOML ones
        name: json.dumps(list(value) if isinstance(value, tuple) else value)
        if isinstance(value, (str, bool, tuple))
        else str(value)
        for name, value in dataclasses.asdict(config).items()
    }
    return CONFIG_TEMPLATE.format(**values)


def _text(limit: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            return f"expected a non-empty string of at most {limit} characters"
        return None

    return check


def _integer(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if type(value) is not int or not low <= value <= high:
            return f"expected an integer from {low} to {high}"
        return None

    return check


def _choice(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in options else f"expected one of {', '.join(repr(o) for o in options)}"

    return check


def _peer_ids(value: Any) -> str | None:
    if not isinstance(value, list) or len(value) > GOSSIP_PEERS_MAX:
        return f"expected a list of at most {GOSSIP_PEERS_MAX} libp2p peer ids"
    for item in value:
        try:
            ID.from_base58(item)
        except (TypeError, ValueError):
            return f"{str(item)[:80]!r} is not a libp2p peer id (base58, like 12D3KooW...)"
    return None


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "expected true or false"


def _path_or_none(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > PATH_LENGTH_MAX or "\0" in value:
        return f'expected a file path of at most {PATH_LENGTH_MAX} characters, or "" for none'
    return None


def _multiaddr(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith("/ip") or "/tcp/" not in value or len(value) > 256:
        return "expected a TCP multiaddr such as /ip4/127.0.0.1/tcp/26656"
    return None


# (table, key) -> (NodeConfig field, check)
_SCHEMA: dict[tuple[str, str], tuple[str, Callable[[Any], str | None]]] = {
    ("", "moniker"): ("moniker", _text(64)),
    ("", "role"): ("role", _choice(ROLES)),
    ("p2p", "listen"): ("listen", _multiaddr),
    ("p2p", "gossip_publishers"): ("gossip_publishers", _choice(GOSSIP_PUBLISHERS)),
    ("p2p", "gossip_peers"): ("gossip_peers", _peer_ids),
    ("mempool", "probes_from_anyone"): ("probes_from_anyone", _boolean),
    ("rpc", "socket"): ("rpc_socket", _text(100)),
    ("metrics", "port"): ("metrics_port", _integer(0, 65_535)),
    ("consensus", "batch_size_max"): ("batch_size_max", _integer(1, 10_000)),
    ("consensus", "block_bytes_max"): ("block_bytes_max", _integer(TX_SIZE_MAX, PROPOSAL_BYTES_MAX)),
    ("consensus", "batch_delay_ms"): ("batch_delay_ms", _integer(0, 10_000)),
    ("consensus", "pipeline_max"): ("pipeline_max", _integer(1, 64)),
    ("consensus", "request_timeout_ms"): ("request_timeout_ms", _integer(100, 600_000)),
    ("consensus", "view_change_timeout_ms"): ("view_change_timeout_ms", _integer(100, 600_000)),
    ("consensus", "block_time_skew_max_ms"): ("block_time_skew_max_ms", _integer(1_000, 3_600_000)),
    ("consensus", "checkpoint_interval"): ("checkpoint_interval", _integer(1, 10_000)),
    ("consensus", "heartbeat_interval_ms"): ("heartbeat_interval_ms", _integer(1_000, 86_400_000)),
    ("sync", "fast_start"): ("fast_start", _boolean),
    ("sync", "snapshot_interval_blocks"): ("snapshot_interval_blocks", _integer(16, 1_000_000)),
    ("keys", "passphrase_file"): ("passphrase_file", _path_or_none),
    ("keys", "master_key_file"): ("master_key_file", _path_or_none),
    ("log", "format"): ("log_format", _choice(LOG_FORMATS)),
    ("log", "level"): ("log_level", _choice(LOG_LEVELS)),
    ("fault_injection", "enabled"): ("fault_injection", _boolean),
}
_TABLES = sorted({table for table, _ in _SCHEMA if table})


def load_config(path: Path) -> NodeConfig:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError("", f"{path}: cannot read config: {error.strerror}") from None
    if len(data) > CONFIG_SIZE_MAX:
        raise ConfigError("", f"{path}: larger than {CONFIG_SIZE_MAX} bytes")
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError("", f"{path}: not valid TOML: {error}") from None
    return parse_config(document)


def parse_config(document: dict[str, Any]) -> NodeConfig:
    values: dict[str, Any] = {}
    for name, value in document.items():
        if name in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(name, "expected a table")
            for key, item in value.items():
                field = _field(name, key)
                values[field] = _checked(name, key, item)
        else:
            field = _field("", name)
            values[field] = _checked("", name, value)
    if values.get("passphrase_file") and values.get("master_key_file"):
        raise ConfigError("keys", "set passphrase_file or master_key_file, not both")
    return NodeConfig(**values)


def _field(table: str, key: str) -> str:
    entry = _SCHEMA.get((table, key))
    if entry is None:
        dotted = f"{table}.{key}" if table else key
        known = [f"{t}.{k}" if t else k for t, k in _SCHEMA] + _TABLES
        close = difflib.get_close_matches(dotted, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(dotted, f"unknown key{hint}")
    return entry[0]


def _checked(table: str, key: str, value: Any) -> Any:
    problem = _SCHEMA[(table, key)][1](value)
    if problem:
        raise ConfigError(f"{table}.{key}" if table else key, f"{problem}, got {value!r}")
    return tuple(value) if isinstance(value, list) else value
