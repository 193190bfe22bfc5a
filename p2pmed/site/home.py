"""A node's home directory: its key, its config, the network's genesis and its data.

<home>/node_key.pem   Ed25519 node key, mode 0600 (also its libp2p identity); a validator's
                      is in genesis.json, an observer's (config ``role``) must not be
<home>/encryption_key the site's key (X25519 or ML-KEM-768 + X25519) for the key shares
                      of the records it keeps, mode 0600
                      (both plain, or both sealed under a passphrase or master key
                      file the operator supplies: see p2pmed.keys_at_rest)
<home>/config.toml    operator settings (see p2pmed.site.config)
<home>/genesis.json   chain id and validator set, identical on every node
<home>/data/          the SQLite store, the records kept as a custodian (blobs/) and the
                      signed site audit log (site-audit.log, p2pmed.store.audit_log)
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p2pmed import crypto
from p2pmed.consensus.sizes import new_view_fits
from p2pmed.keys_at_rest import KeyFileLocked, KeyProtectionFiles
from p2pmed.quorum import quorum_size
from p2pmed.site.config import NodeConfig, load_config, render_config
from p2pmed.site.genesis import Genesis, ValidatorInfo, load_genesis, write_genesis

__all__ = ["HomeError", "LoadedHome", "NewNode", "create_testnet", "init_home", "load_home"]

NODE_KEY = "node_key.pem"
ENCRYPTION_KEY = "encryption_key"
TESTNET_KINDS = ("hospital", "laboratory", "pharmacy", "distributor")
CONFIG = "config.toml"
GENESIS = "genesis.json"
DATA = "data"
NODES_MAX = 100
UNIX_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


class HomeError(Exception):
    """A home directory that cannot be created without destroying something."""


@dataclass(frozen=True)
class NewNode:
    """What ``init_home`` created that the network's genesis.json must list."""

    key: crypto.SigningKey
    encryption_key: crypto.EncryptionPrivateKey


def init_home(
    home: Path,
    moniker: str,
    listen: str,
    *,
    test_network: bool = False,
    protection_files: KeyProtectionFiles | None = None,
    kem: crypto.Kem = crypto.Kem.X25519,
    role: str = "validator",
) -> NewNode:
    """Create a node's keys and commented config; refuse to touch an existing node. A test
    network's nodes admit load probes from anyone (``NodeConfig.probes_from_anyone``).
    ``role`` is config.toml's: a validator's or an observer's.
    With ``protection_files`` the keys are sealed under what they hold, and config.toml's
    ``[keys]`` names them (as absolute paths) for the daemon. Raises ``KeyFileError`` for
    an unusable passphrase or master key file, before anything is written."""
    for name in (NODE_KEY, ENCRYPTION_KEY, CONFIG):
        if (home / name).exists():
            raise HomeError(f"{home / name} already exists; refusing to overwrite a node's {name}")
    protection_files = protection_files or KeyProtectionFiles()
    protection = protection_files.read()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (home / DATA).mkdir(mode=0o700, exist_ok=True)
    node = NewNode(crypto.SigningKey.generate(), crypto.EncryptionPrivateKey.generate(kem))
    crypto.save_signing_key(home / NODE_KEY, node.key, protection)
    crypto.save_encryption_key(home / ENCRYPTION_KEY, node.encryption_key, protection)
    config = NodeConfig(
        moniker=moniker,
        role=role,
        listen=listen,
        probes_from_anyone=test_network,
        passphrase_file=_absolute(protection_files.passphrase_file),
        master_key_file=_absolute(protection_files.master_key_file),
    )
    (home / CONFIG).write_text(render_config(config))
    return node


def _absolute(path: Path | None) -> str:
    return str(path.absolute()) if path is not None else ""


def create_testnet(
    out: Path, nodes: int, base_port: int, chain_id: str, ips: Sequence[str] = (), kem: crypto.Kem = crypto.Kem.X25519
) -> list[Path]:
    """Homes for ``nodes`` validators sharing one genesis. Without ``ips`` they all run
    on 127.0.0.1, node i on ``base_port + i``; with one IPv4 address per node (each in
    its own container, say) every node listens on all interfaces at ``base_port``.
    The sites' kinds take turns through ``TESTNET_KINDS``; their encryption keys use ``kem``."""
    if not 1 <= nodes <= NODES_MAX:
        raise HomeError(f"--nodes must be 1..{NODES_MAX}")
    if not 1024 <= base_port <= 65_535 - nodes:
        raise HomeError(f"--base-port must leave room for {nodes} ports between 1024 and 65535")
    if ips and len(ips) != nodes:
        raise HomeError(f"give one --ip per node: {len(ips)} for {nodes} nodes")
    for ip in ips:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise HomeError(f"--ip {ip!r} is not an IPv4 address") from None
    homes, validators = [], []
    for index in range(nodes):
        home, moniker = out / f"node{index}", f"node{index}"
        if ips:
            listen, address = f"/ip4/0.0.0.0/tcp/{base_port}", f"/ip4/{ips[index]}/tcp/{base_port}"
        else:
            listen = address = f"/ip4/127.0.0.1/tcp/{base_port + index}"
        node = init_home(home, moniker, listen, test_network=True, kem=kem)
        homes.append(home)
        kind = TESTNET_KINDS[index % len(TESTNET_KINDS)]
        validators.append(ValidatorInfo(moniker, node.key.public_key, address, kind, node.encryption_key.public_key))
    genesis = Genesis(chain_id, int(time.time() * 1000), tuple(validators))
    for home in homes:
        write_genesis(home / GENESIS, genesis)
    return homes


@dataclass(frozen=True)
class LoadedHome:
    """Everything the daemon reads from a home directory, checked."""

    path: Path
    config: NodeConfig
    genesis: Genesis
    key: crypto.SigningKey
    encryption_key: crypto.EncryptionPrivateKey
    index: int | None
    """This node's position among the genesis validators; None for an observer."""

    @property
    def is_observer(self) -> bool:
        return self.index is None

    @property
    def store_path(self) -> Path:
        return self.path / DATA / "chain.sqlite3"

    @property
    def socket_path(self) -> Path:
        return self.path / self.config.rpc_socket


def load_home(home: Path, protection_files: KeyProtectionFiles | None = None) -> LoadedHome:
    """Read and check a node's config, genesis and keys. The keys open with
    ``protection_files`` if any is given (the environment's), else with config.toml's
    ``[keys]``; sealed and plain keys are not mixed. Raises ``ConfigError``,
    ``GenesisError``, ``KeyFileError`` or ``HomeError`` saying what to fix."""
    if not home.is_dir():
        raise HomeError(f"{home} is not a node home directory; create one with `p2pmed init --home {home}`")
    config = load_config(home / CONFIG)
    genesis = load_genesis(home / GENESIS)
    protection = (protection_files or _configured_protection_files(home, config)).read()
    try:
        key = crypto.load_signing_key(home / NODE_KEY, protection)
        encryption_key = crypto.load_encryption_key(home / ENCRYPTION_KEY, protection)
    except KeyFileLocked as error:
        raise KeyFileLocked(
            f"{error}: set [keys] passphrase_file or master_key_file in {home / CONFIG},"
            " or P2PMED_PASSPHRASE_FILE or P2PMED_MASTER_KEY_FILE in the environment"
        ) from None
    index = _validator_index(home, config, genesis, key.public_key)
    if index is not None and encryption_key.public_key != genesis.validators[index].encryption_key:
        raise HomeError(
            f"{home / ENCRYPTION_KEY} does not match this node's encryption_key in {home / GENESIS};"
            " the genesis must list the public half of this file's key"
        )
    loaded = LoadedHome(home, config, genesis, key, encryption_key, index)
    if len(os.fsencode(loaded.socket_path.absolute())) > UNIX_SOCKET_PATH_MAX:
        raise HomeError(
            f"the RPC socket path {loaded.socket_path.absolute()} is longer than {UNIX_SOCKET_PATH_MAX} bytes,"
            " which Unix sockets do not allow; move the home or set [rpc] socket to a shorter path"
        )
    (home / DATA).mkdir(mode=0o700, exist_ok=True)
    return loaded


def _validator_index(home: Path, config: NodeConfig, genesis: Genesis, public_key: bytes) -> int | None:
    """A validator's position in the genesis; None for an observer, whose key must not be there."""
    listed = public_key in genesis.validator_keys
    if config.role == "observer":
        if listed:
            raise HomeError(
                f"this node's key {public_key.hex()[:16]}… is a validator's in {home / GENESIS}, but config.toml"
                ' says role = "observer"; a validator\'s key votes, so run it as a validator'
            )
        return None
    if not listed:
        raise HomeError(
            f"this node's key {public_key.hex()[:16]}… is not among the validators in {home / GENESIS};"
            ' add it there (every node needs the same genesis.json), or set role = "observer" in config.toml'
        )
    if not new_view_fits(quorum_size(len(genesis.validators)), config.watermark_window):
        raise HomeError(
            f"[consensus] checkpoint_interval = {config.checkpoint_interval} is too large for"
            f" {len(genesis.validators)} validators: a view change over {config.watermark_window} blocks"
            " could exceed a 16 MiB frame; lower it"
        )
    return genesis.validator_keys.index(public_key)


def _configured_protection_files(home: Path, config: NodeConfig) -> KeyProtectionFiles:
    """config.toml's ``[keys]``, relative paths taken from ``home``."""
    return KeyProtectionFiles(
        home / config.passphrase_file if config.passphrase_file else None,
        home / config.master_key_file if config.master_key_file else None,
    )
