"""``site.audit``: this site's local audit log (``p2pmed.node.site_audit``), for its operator.

``site.audit {since_ms, limit, format}``: entries written at ``since_ms`` (the site's wall
clock) or later, oldest first, at most ``limit`` (1..``SITE_AUDIT_QUERY_MAX``), each as
its fields and hash (``entries``) or as a FHIR R5 AuditEvent (``fhir``; a refusal has
outcome minor failure). The answer names the site's key and chain id, which is what
``p2pmed audit site-verify`` checks the files against. It lists what is readable and does
not verify: verification reads every file and is done offline.
"""

from __future__ import annotations

from typing import Any

import trio

from p2pmed.node.api.port import NodePort
from p2pmed.node.site_audit import fhir_event, plain_entry
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param

__all__ = ["SITE_AUDIT_QUERY_MAX", "site_methods"]

SITE_AUDIT_QUERY_MAX = 1_000
FORMATS = ("entries", "fhir")


def site_methods(node: NodePort) -> dict[str, Method]:
    site = node.node_key

    async def audit(params: dict[str, Any]) -> dict[str, Any]:
        since_ms, limit, format = params["since_ms"], params["limit"], params["format"]
        if since_ms < 0:
            raise RpcError(ErrorCode.INVALID_PARAMS, f'site.audit: "since_ms" must be 0 or more, got {since_ms}')
        if not 1 <= limit <= SITE_AUDIT_QUERY_MAX:
            raise RpcError(
                ErrorCode.INVALID_PARAMS, f'site.audit: "limit" must be 1..{SITE_AUDIT_QUERY_MAX}, got {limit}'
            )
        if format not in FORMATS:
            raise RpcError(
                ErrorCode.INVALID_PARAMS, f'site.audit: "format" must be entries or fhir, got {format[:40]!r}'
            )

        def render() -> list[dict[str, Any]]:
            found = node.site_audit.entries(since_ms, limit)
            if format == "fhir":
                return [fhir_event(sha256, entry, site) for sha256, entry in found]
            return [plain_entry(sha256, entry) for sha256, entry in found]

        return {
            "site": site.hex(),
            "chain_id": node.chain_id,
            "format": format,
            "entries": await trio.to_thread.run_sync(render),
        }

    return {
        "site.audit": Method(
            audit,
            {
                "since_ms": Param(int, optional=True, default=0),
                "limit": Param(int, optional=True, default=100),
                "format": Param(str, optional=True, default="entries"),
            },
        )
    }
