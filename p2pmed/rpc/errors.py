"""JSON-RPC error codes and the one exception that carries them.

Codes from -32768 to -32000 are reserved by JSON-RPC 2.0; the spec assigns the
five standard ones below and leaves -32099..-32000 to the server. Ours start at
-32000 and count down; a client may rely on them, so a code, once published,
keeps its meaning. Add new ones at the end.
"""

from __future__ import annotations

import enum
import json
from typing import Any

__all__ = ["ErrorCode", "RpcError"]


class ErrorCode(enum.IntEnum):
    # -- JSON-RPC 2.0 ---------------------------------------------------------
    PARSE_ERROR = -32700  # not JSON, not UTF-8, or nested too deeply
    INVALID_REQUEST = -32600  # not a JSON-RPC 2.0 request object (a batch, a line over the size limit...)
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602  # the message names the parameter and what was expected
    INTERNAL_ERROR = -32603  # a bug on the server; the details are in its log, never in the reply
    # -- p2pmed -----------------------------------------------------------------
    SERVER_BUSY = -32000  # rate limited, or too many connections or subscriptions; retry later
    NOT_FOUND = -32001  # the thing asked for (block, transaction, record...) does not exist
    REJECTED_TRANSACTION = -32002  # the ledger refused a submitted transaction; the message says why
    NOT_READY = -32003  # the node cannot answer yet (starting, catching up)
    DISABLED = -32004  # the method is turned off in this node's config.toml
    REFUSED = -32005  # a custodian refused to keep or serve a record; the message says why


class RpcError(Exception):
    """An error reply: raised by method handlers on the server, and by the client
    when the server answers with an error.

    ``code`` is an ``ErrorCode`` where the code is one we know, else the plain
    int (a newer server may send codes this client does not know). ``message``
    is for people; ``data`` (any JSON value, else ``TypeError``/``ValueError``)
    is for programs, e.g. the ``retry_after`` seconds of a ``SERVER_BUSY`` reply.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (error {int(code)})")
        json.dumps(data, allow_nan=False)  # fail where a bad ``data`` is raised, not when the reply is written
        try:
            self.code: int = ErrorCode(code)
        except ValueError:
            self.code = int(code)
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The ``error`` member of a JSON-RPC response."""
        error: dict[str, Any] = {"code": int(self.code), "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error

    @classmethod
    def from_json(cls, error: Any) -> RpcError:
        """Read an ``error`` member; a malformed one becomes an ``INTERNAL_ERROR``
        that says so, rather than a ``KeyError`` far from the cause."""
        if isinstance(error, dict) and type(error.get("code")) is int and isinstance(error.get("message"), str):
            return cls(error["code"], error["message"], error.get("data"))
        return cls(ErrorCode.INTERNAL_ERROR, f"malformed error from the server: {error!r:.200}")
