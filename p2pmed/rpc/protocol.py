"""JSON-RPC 2.0 messages as this server reads and writes them; no I/O.

Wire format: one JSON text per line, UTF-8, ended by ``\\n``. Reading is strict,
because every rule bent here is a guess about what a client meant:

- the line must be UTF-8 and JSON without ``NaN``/``Infinity`` and without
  duplicate keys (which of two ``"params"`` would win?): else ``PARSE_ERROR``;
- it must be one request object: ``"jsonrpc": "2.0"``, a string ``"method"``,
  ``"params"`` an object or an array if present, ``"id"`` a string, an integer
  or ``null`` if present, and no other member (a typo such as ``"param"`` is
  caught rather than ignored): else ``INVALID_REQUEST``;
- batches (a JSON array of requests) are refused with ``INVALID_REQUEST``.
  Pipelining gives what a batch would: write many lines, read the replies, which
  come in request order on a connection. One reply shape keeps clients simple.

A request without an ``"id"`` member is a notification and gets no reply, not
even an error, as JSON-RPC 2.0 requires. ``"id": null`` is a request (answered
with ``"id": null``). When a line is not a valid request at all, the error
reply carries the id if one could be read, else ``null``.

Replies are ASCII-only JSON (other characters escaped), so they are valid UTF-8
whatever strings a handler returns, even a lone surrogate from ``"\\ud800"``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from p2pmed import strict_json
from p2pmed.rpc.errors import ErrorCode, RpcError

__all__ = ["BadRequest", "Request", "encode_error", "encode_notification", "encode_result", "parse_request"]

RequestId = str | int | None

_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})
REQUEST_DEPTH_MAX = 64


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    params: dict[str, Any] | list[Any] | None  # None: absent
    id: RequestId
    notification: bool  # no "id" member: no reply


class BadRequest(Exception):
    """A line that is not a valid request; reply ``error`` to ``request_id``."""

    def __init__(self, error: RpcError, request_id: RequestId = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.request_id = request_id


def parse_request(line: bytes) -> Request:
    """The request on one line (without its ``\\n``); raises ``BadRequest``."""
    try:
        message = strict_json.loads(line, REQUEST_DEPTH_MAX)
    except strict_json.JsonProblem as problem:
        raise BadRequest(RpcError(ErrorCode.PARSE_ERROR, f"unreadable request: {problem}")) from None
    if isinstance(message, list):
        raise BadRequest(_invalid("batch requests are not supported: send one request object per line"))
    if not isinstance(message, dict):
        raise BadRequest(_invalid("a request must be a JSON object"))
    request_id = message.get("id")
    if not (request_id is None or isinstance(request_id, str) or type(request_id) is int):
        raise BadRequest(_invalid('"id" must be a string, an integer or null'))
    if message.get("jsonrpc") != "2.0":
        raise BadRequest(_invalid('expected "jsonrpc": "2.0"'), request_id)
    method = message.get("method")
    if not isinstance(method, str):
        complaint = '"method" must be a string' if "method" in message else 'missing "method"'
        raise BadRequest(_invalid(complaint), request_id)
    params = message.get("params")
    if "params" in message and not isinstance(params, dict | list):
        raise BadRequest(_invalid('"params" must be an object or an array'), request_id)
    unknown = sorted(message.keys() - _MEMBERS)
    if unknown:
        raise BadRequest(_invalid(f'unknown member "{unknown[0]}" in request'), request_id)
    return Request(method, params, request_id, notification="id" not in message)


def encode_result(request_id: RequestId, result: Any) -> bytes:
    """A success reply line; raises ``TypeError``/``ValueError`` if ``result`` is not JSON."""
    return _encode({"jsonrpc": "2.0", "id": request_id, "result": result})


def encode_error(request_id: RequestId, error: RpcError) -> bytes:
    return _encode({"jsonrpc": "2.0", "id": request_id, "error": error.to_json()})


def encode_notification(method: str, params: Any) -> bytes:
    return _encode({"jsonrpc": "2.0", "method": method, "params": params})


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


def _invalid(message: str) -> RpcError:
    return RpcError(ErrorCode.INVALID_REQUEST, message)
