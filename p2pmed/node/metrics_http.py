"""The metrics endpoint: ``GET /metrics`` on 127.0.0.1, Prometheus text format.

Why a small trio server rather than prometheus-client's ``start_http_server``:
that one answers from a thread of its own, and a scrape would then read the
node's state from that thread while the trio thread changes it. sqlite3 refuses
a connection used from another thread (the height comes from the store), and
iterating a dict that grows meanwhile raises. Served here, a scrape is a task in
the node's nursery: it runs on the trio thread between two calls into the core,
so it sees one consistent state and needs no locks. Rendering a few dozen
series takes well under a millisecond.

One request per connection, answered with ``Connection: close``: a scraper needs
nothing more. Every request is untrusted: its head must fit in
``HEAD_SIZE_MAX`` bytes and arrive within ``REQUEST_TIMEOUT_S``, and at most
``CONNECTIONS_MAX`` connections are served at once (others are closed at once).
Anything but ``GET``/``HEAD /metrics`` gets a 4xx with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONNECTIONS_MAX", "HEAD_SIZE_MAX", "REQUEST_TIMEOUT_S", "respond", "serve_metrics"]

HEAD_SIZE_MAX = 8 * 1024
REQUEST_TIMEOUT_S = 10.0
CONNECTIONS_MAX = 16
METRICS_PATH = b"/metrics"
_READ_CHUNK = 4096
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}

log = structlog.get_logger(__name__)


async def serve_metrics(registry: CollectorRegistry, port: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``registry`` on 127.0.0.1:``port`` until cancelled; ``task_status.started``
    gets the listeners (port 0 picks a free port). Raises ``OSError`` if the port is taken."""
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    active = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal active
        try:
            if active >= CONNECTIONS_MAX:
                return
            active += 1
            try:
                await _serve_one(stream, lambda: generate_latest(registry))
            finally:
                active -= 1
        finally:
            await trio.aclose_forcefully(stream)

    bound = listeners[0].socket.getsockname()[1]
    log.info("metrics listening", address=f"http://127.0.0.1:{bound}{METRICS_PATH.decode()}")
    await trio.serve_listeners(handle, listeners, task_status=task_status)


class _HeadTooLarge(Exception):
    pass


async def _serve_one(stream: trio.SocketStream, render: Callable[[], bytes]) -> None:
    with trio.move_on_after(REQUEST_TIMEOUT_S):
        try:
            try:
                head = await _read_head(stream)
            except _HeadTooLarge:
                await stream.send_all(_response(431, f"request head larger than {HEAD_SIZE_MAX} bytes\n".encode()))
                return
            if head is not None:
                await stream.send_all(respond(head, render))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the scraper went away


async def _read_head(stream: trio.SocketStream) -> bytes | None:
    """The request up to its blank line, or ``None`` if the client closed first."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer and b"\n\n" not in buffer:
        if len(buffer) > HEAD_SIZE_MAX:
            raise _HeadTooLarge
        chunk = await stream.receive_some(min(_READ_CHUNK, HEAD_SIZE_MAX + 1 - len(buffer)))
        if not chunk:
            return None
        buffer += chunk
    return bytes(buffer)


def respond(head: bytes, render: Callable[[], bytes]) -> bytes:
    """The whole HTTP response to a request ``head``; ``render`` makes the metrics text."""
    parts = head.split(b"\n", 1)[0].rstrip(b"\r").split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return _response(400, b"expected a request line like: GET /metrics HTTP/1.1\n")
    method, target, _ = parts
    if method not in (b"GET", b"HEAD"):
        return _response(405, b"only GET and HEAD are served\n", {"Allow": "GET, HEAD"})
    if target.split(b"?", 1)[0] != METRICS_PATH:
        return _response(404, b"metrics are at /metrics\n")
    try:
        body = render()
    except Exception:  # a bug in a collector must cost one scrape, not the node
        log.exception("metrics rendering failed")
        return _response(500, b"rendering the metrics failed; the details are in the node's log\n")
    response = _response(200, body, {"Content-Type": CONTENT_TYPE_LATEST})
    return response[: response.index(b"\r\n\r\n") + 4] if method == b"HEAD" else response


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    fields = {
        "Content-Type": "text/plain; charset=utf-8",
        **(headers or {}),
        "Content-Length": str(len(body)),
        "Connection": "close",
    }
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}", *(f"{name}: {value}" for name, value in fields.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body
