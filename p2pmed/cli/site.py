"""``p2pmed init``, ``testnet`` and ``node``: create sites and run the daemon."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, HOME_OPTION
from p2pmed.cli.key_protection import given_protection_files, protection_options
from p2pmed.crypto import Kem
from p2pmed.ledger.contracts.identity import ORGANISATION_KINDS

__all__ = ["SITE_COMMANDS"]

SITE_KEM_OPTION = click.option(
    "--kem",
    type=click.Choice([kem.value for kem in Kem]),
    default=Kem.X25519.value,
    show_default=True,
    help="The site's encryption key algorithm: record key shares it keeps as a custodian are sealed to it"
    " (mlkem768-x25519: post-quantum hybrid).",
)


@click.command()
@click.option(
    "--home", type=click.Path(path_type=Path), required=True, help="Directory for the node's key, config and data."
)
@click.option("--moniker", default="node", show_default=True, help="A name for this site, shown to its peers.")
@click.option("--listen", default="/ip4/0.0.0.0/tcp/26656", show_default=True, help="Multiaddr to listen on for peers.")
@click.option(
    "--kind",
    type=click.Choice(sorted(ORGANISATION_KINDS)),
    default="hospital",
    show_default=True,
    help="What kind of organisation this site is.",
)
@click.option(
    "--observer",
    is_flag=True,
    help="An observer: it follows the validators' certified blocks and votes on nothing (config role).",
)
@SITE_KEM_OPTION
@protection_options("the node's keys")
def init(home: Path, moniker: str, listen: str, kind: str, observer: bool, kem: str) -> None:
    """Create a node: its Ed25519 and encryption keys (mode 0600; encrypted under a passphrase
    or master key file if one is given, which config.toml then names) and a commented
    config.toml, and print the entry that the network's genesis.json needs for it (for an
    observer: the peer id the validators admit in their [p2p] gossip_peers)."""
    from p2pmed.keys_at_rest import KeyFileError
    from p2pmed.net.identity import peer_id_of
    from p2pmed.site.home import HomeError, init_home

    try:
        node = init_home(
            home,
            moniker,
            listen,
            protection_files=given_protection_files(),
            kem=Kem(kem),
            role="observer" if observer else "validator",
        )
    except (HomeError, KeyFileError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if observer:
        click.echo(f"created observer {home}; put the network's genesis.json there.")
        click.echo("the validators admit it by its peer id, in their config.toml [p2p] gossip_peers:")
        click.echo(str(peer_id_of(node.key.public_key)))
        return
    entry = {
        "moniker": moniker,
        "public_key": node.key.public_key.hex(),
        "address": "/ip4/<public IP>/tcp/<port>",
        "kind": kind,
        "encryption_key": node.encryption_key.public_key.key.hex(),
        "encryption_kem": kem,
    }
    click.echo(f"created {home}; edit {home / 'config.toml'}, then put the network's genesis.json there.")
    click.echo("this node's entry for the validators list of genesis.json (fill in the address others reach it at):")
    click.echo(json.dumps(entry, indent=2))


@click.command()
@click.option(
    "--nodes", type=int, default=4, show_default=True, help="How many validators (n = 3f+1 tolerates f faults)."
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory for the node homes.")
@click.option("--base-port", type=int, default=26656, show_default=True, help="Node i listens on 127.0.0.1:base+i.")
@click.option("--chain-id", default="p2pmed-testnet", show_default=True)
@click.option(
    "--ip",
    "ips",
    multiple=True,
    metavar="IPV4",
    help="One per node, for nodes on separate hosts or containers: node i is reached at IPV4:base-port.",
)
@SITE_KEM_OPTION
def testnet(nodes: int, out: Path, base_port: int, chain_id: str, ips: tuple[str, ...], kem: str) -> None:
    """Create homes for a network of validators sharing one genesis (by default all on 127.0.0.1)."""
    from p2pmed.site.genesis import load_genesis
    from p2pmed.site.home import GENESIS, HomeError, create_testnet

    try:
        homes = create_testnet(out, nodes, base_port, chain_id, ips, Kem(kem))
    except HomeError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    genesis = load_genesis(homes[0] / GENESIS)
    click.echo(f"created {len(homes)} homes in {out} for chain {chain_id} (genesis {genesis.hash.hex()[:16]}…)")


@click.command()
@HOME_OPTION
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="Overrides [log] level in config.toml.",
)
@click.option(
    "--exit-with-parent",
    is_flag=True,
    help="Also stop when the process that started this node exits (harnesses: demo, sim, bench, tests).",
)
@protection_options("the node's keys", envvar=True, note=" Overrides [keys] in config.toml.")
def node(home: Path, log_level: str | None, exit_with_parent: bool) -> None:
    """Run the node in the foreground until SIGINT or SIGTERM. Exit 2 on a bad home, config,
    genesis or key file (encrypted keys and nothing to open them, a wrong passphrase, plain
    keys but a passphrase given); 1 if it cannot run (port in use, unreadable store) or stops
    because a store write failed (disk full: the node never runs with memory ahead of its disk)."""
    import trio

    from p2pmed.crypto import KeyFileError
    from p2pmed.input_error import KeyedInputError
    from p2pmed.node.compose import serve
    from p2pmed.node.core import StorageFailed, leaf_errors
    from p2pmed.node.logs import configure_logging
    from p2pmed.rpc import RpcSocketInUse
    from p2pmed.site.home import HomeError, load_home
    from p2pmed.store import StoreError

    try:
        loaded = load_home(home, given_protection_files())
    except (KeyedInputError, KeyFileError, HomeError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    configure_logging(loaded.config.log_format, log_level or loaded.config.log_level)
    try:
        trio.run(functools.partial(serve, loaded, exit_with_parent=exit_with_parent))
    except* (StoreError, StorageFailed, OSError, RpcSocketInUse) as group:  # trio may wrap them in a group
        for failure in leaf_errors(group):
            click.echo(f"error: {failure}", err=True)
        sys.exit(EXIT_FAILURE)


SITE_COMMANDS = [init, testnet, node]
