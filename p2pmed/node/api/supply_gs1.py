"""JSON-RPC methods for GS1 identifiers on the supply ledger: who holds a GTIN's company prefix.

Reads only; grants are ``supply.prefix.grant`` transactions sent with ``tx.submit``.
A malformed GTIN or prefix is INVALID_PARAMS in the ledger's words; one that carries no
granted prefix is NOT_FOUND.
"""

from __future__ import annotations

from typing import Any

from p2pmed.ledger.contracts import supply
from p2pmed.node.api.port import NodePort
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method

__all__ = ["gs1_methods"]


def gs1_methods(node: NodePort) -> dict[str, Method]:
    store = node.store

    async def prefix(params: dict[str, Any]) -> dict[str, Any]:
        """The granted company prefix a GTIN-14 (or a prefix, 6..12 digits) carries, and its holder's id."""
        code = params["code"]
        problem = supply.gtin_problem(code) if len(code) == 14 else supply.prefix_problem(code)
        if problem is not None:
            raise RpcError(ErrorCode.INVALID_PARAMS, f"supply.prefix: {problem}")
        if len(code) == 14:
            found = supply.prefix_of(store, code)
        else:
            owner = supply.prefix_owner(store, code)
            found = None if owner is None else (code, owner)
        if found is None:
            raise RpcError(ErrorCode.NOT_FOUND, f"supply.prefix: no company prefix granted covers {code}")
        return {"prefix": found[0], "organisation": found[1].hex()}

    return {"supply.prefix": Method(prefix, {"code": str})}
