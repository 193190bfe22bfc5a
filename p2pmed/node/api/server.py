"""The node's JSON-RPC server: every method group on ``<home>/p2pmed.sock``."""

from __future__ import annotations

from pathlib import Path

from p2pmed import codec
from p2pmed.node.api.chain import chain_methods
from p2pmed.node.api.devices import device_methods
from p2pmed.node.api.health import health_methods
from p2pmed.node.api.port import NodePort
from p2pmed.node.api.proofs import proof_methods
from p2pmed.node.api.records import record_methods
from p2pmed.node.api.report import report_methods
from p2pmed.node.api.research import research_methods
from p2pmed.node.api.site import site_methods
from p2pmed.node.api.supply import supply_methods
from p2pmed.rpc.params import Method
from p2pmed.rpc.server import RpcServer

__all__ = ["REQUEST_SIZE_MAX", "methods", "rpc_server"]

REQUEST_SIZE_MAX = 2 * codec.TX_SIZE_MAX + 4096
"""A ``tx.submit`` line carries the transaction as hex: twice its size, plus the JSON around it."""


def methods(node: NodePort) -> dict[str, Method]:
    return {
        **chain_methods(node),
        **device_methods(node),
        **health_methods(node),
        **record_methods(node),
        **research_methods(node),
        **site_methods(node),
        **supply_methods(node),
        **proof_methods(node),
        **report_methods(node),
    }


def rpc_server(node: NodePort, socket_path: Path) -> RpcServer:
    return RpcServer(
        socket_path, methods(node), line_size_max=REQUEST_SIZE_MAX, requests_per_second=20_000, burst=40_000
    )
