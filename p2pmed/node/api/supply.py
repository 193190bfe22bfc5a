"""JSON-RPC methods for containers and suspect products on the supply ledger.

Reads only, like the other health methods (``p2pmed.node.api.health`` holds the pack
reads: trace, lot, verify, alerts): changes are signed transactions sent with
``tx.submit``. Bytes are lowercase hex; ledger objects are their fields as plain JSON.
A malformed code is INVALID_PARAMS in the ledger's words; an SSCC or pack nothing was
ever recorded for is NOT_FOUND.
"""

from __future__ import annotations

from typing import Any

from p2pmed.interop.epcis import export_aggregations
from p2pmed.ledger.contracts import supply
from p2pmed.node.api.health import plain
from p2pmed.node.api.port import NodePort
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param

__all__ = ["CONTAINER_FORMATS", "supply_methods"]

CONTAINER_FORMATS = ("entries", "epcis")


def _invalid(method: str, message: str) -> RpcError:
    return RpcError(ErrorCode.INVALID_PARAMS, f"{method}: {message}")


def supply_methods(node: NodePort) -> dict[str, Method]:
    store = node.store

    async def container(params: dict[str, Any]) -> dict[str, Any]:
        """A container, what is in it at every depth, and its history; with ``format`` "epcis",
        its aggregation history as an EPCIS 2.0 JSON-LD document instead."""
        if params["format"] not in CONTAINER_FORMATS:
            raise _invalid("supply.container", f'"format" must be one of {", ".join(CONTAINER_FORMATS)}')
        try:
            found = supply.container(store, params["sscc"])
        except ValueError as error:
            raise _invalid("supply.container", str(error)) from None
        if found is None:
            raise RpcError(ErrorCode.NOT_FOUND, f"nothing was ever packed in SSCC {params['sscc']}")
        history = supply.container_history(store, found.sscc)
        if params["format"] == "epcis":
            return export_aggregations(found.sscc, history, node.ledger_time_ms)
        packs, containers = supply.container_contents(store, found)
        return {
            "container": plain(found),
            "packs": plain(packs),
            "containers": [inner.sscc for inner in containers[1:]],
            "history": plain(history),
        }

    return {
        "supply.container": Method(container, {"sscc": str, "format": Param(str, optional=True, default="entries")}),
    }
