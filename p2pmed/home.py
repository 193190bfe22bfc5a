"""A node's home directory: its key, its config, the network's genesis and its data.

    <home>/node_key.pem   Ed25519 validator key, mode 0600 (also its libp2p identity)
    <home>/config.toml    operator settings (see p2pmed.config)
    <home>/genesis.json   chain id and validator set, identical on every node
    <home>/data/          the SQLite store
"""

from __future__ import annotations

import time
from pathlib import Path

from p2pmed import crypto
from p2pmed.config import render_config
from p2pmed.genesis import Genesis, ValidatorInfo, write_genesis

__all__ = ["HomeError", "create_testnet", "init_home"]

NODE_KEY = "node_key.pem"
CONFIG = "config.toml"
GENESIS = "genesis.json"
DATA = "data"
NODES_MAX = 100


class HomeError(Exception):
    """A home directory that cannot be created without destroying something."""


def init_home(home: Path, moniker: str, listen: str) -> crypto.SigningKey:
    """Create a node's key and commented config; refuse to touch an existing node."""
    for name in (NODE_KEY, CONFIG):
        if (home / name).exists():
            raise HomeError(f"{home / name} already exists; refusing to overwrite a node's {name}")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (home / DATA).mkdir(mode=0o700, exist_ok=True)
    key = crypto.SigningKey.generate()
    crypto.save_signing_key(home / NODE_KEY, key)
    (home / CONFIG).write_text(render_config(moniker, listen))
    return key


def create_testnet(out: Path, nodes: int, base_port: int, chain_id: str) -> list[Path]:
    """Homes for ``nodes`` local validators on 127.0.0.1 sharing one genesis."""
    if not 1 <= nodes <= NODES_MAX:
        raise HomeError(f"--nodes must be 1..{NODES_MAX}")
    if not 1024 <= base_port <= 65_535 - nodes:
        raise HomeError(f"--base-port must leave room for {nodes} ports between 1024 and 65535")
    homes, validators = [], []
    for index in range(nodes):
        home, moniker = out / f"node{index}", f"node{index}"
        address = f"/ip4/127.0.0.1/tcp/{base_port + index}"
        key = init_home(home, moniker, address)
        homes.append(home)
        validators.append(ValidatorInfo(moniker, key.public_key, address))
    genesis = Genesis(chain_id, int(time.time() * 1000), tuple(validators))
    for home in homes:
        write_genesis(home / GENESIS, genesis)
    return homes
