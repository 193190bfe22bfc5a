"""JSON-RPC 2.0 server on a Unix socket: the node's local control interface.

It knows nothing of the ledger: the node passes a ``{name: Method}`` table
(``p2pmed.rpc.params``) and runs ``RpcServer.run`` in its nursery. The wire
format and what counts as a valid request are in ``p2pmed.rpc.protocol``; how
the socket file is made private and kept from a live server, in
``p2pmed.rpc.socket_file``.

Theory of operation. Each connection is served by three kinds of task in its
own nursery:

- the reader reads a line, handles it and only then reads the next. Requests on
  one connection are therefore processed sequentially and answered in order; a
  client that wants several requests in flight opens several connections. The
  handler runs in the reader task, so a slow handler holds up only its own
  connection;
- the writer sends what the ``Outbox`` holds. A write that does not complete
  within ``send_timeout`` seconds drops the client: a peer that stops reading cannot
  hold a task, a buffer or any other client hostage;
- one pump per subscription moves items from the handler's async iterator into
  the outbox as notifications, without waiting: when the outbox is full the
  client is dropped rather than the source held up or memory grown.

When the client closes its side (end of input), its subscriptions end, the
replies already queued are sent, and the connection is closed. A client that
vanishes mid-request is noticed when its reply cannot be written, and leaves
quietly (a debug log line).

Limits, each with the behaviour on breach:

- ``line_size_max`` bytes per request line: an ``INVALID_REQUEST`` reply
  "request larger than N bytes", then the connection is closed (the rest of the
  line is never read, so it is never buffered);
- ``requests_per_second`` with bursts of ``burst``, per connection: a
  ``SERVER_BUSY`` reply with ``data.retry_after`` in seconds; notifications over
  the rate are dropped (they get no reply by definition);
- ``connections_max``: a further connection gets one ``SERVER_BUSY`` error line
  (``"id": null``) and is closed;
- ``send_buffer_max`` bytes of output per connection (plus one message), then
  replies wait and subscription items drop the client;
- ``subscriptions_max`` per connection: ``SERVER_BUSY`` on the next subscribe.

The socket is 0600 and reached only by the node's own user, so the rate limit
is generous: it stops a runaway script, not an attacker. Worst-case memory per
connection is about ``line_size_max + send_buffer_max`` plus what handlers hold.

Subscriptions. A call to a ``Method(subscription=True)`` is answered with a
subscription id (an integer, unique for the server's lifetime); then each item
arrives as ``{"jsonrpc": "2.0", "method": <name>, "params": {"subscription":
id, "result": item}}``. If the source ends, a last notification carries
``"end": true`` instead of ``"result"``; if it fails, ``"error": {code,
message}`` (an ``RpcError`` as raised, anything else as ``INTERNAL_ERROR``).
``rpc.unsubscribe`` with ``{"subscription": id}`` ends it early and returns
whether it was still running; closing the connection ends all of them. Names
beginning ``rpc.`` are reserved by JSON-RPC 2.0 for such built-ins.

A handler's ``RpcError`` becomes the error reply as is. Any other exception is
logged with its traceback and answered ``INTERNAL_ERROR`` with no detail: a bug
never kills the server and never leaks its internals to a client.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import structlog
import trio

from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.limits import Outbox
from p2pmed.rpc.lines import LineReader, LineTooLong
from p2pmed.rpc.params import Method, Param, bind_params, did_you_mean, shorten
from p2pmed.rpc.protocol import (
    BadRequest,
    Request,
    encode_error,
    encode_notification,
    encode_result,
    parse_request,
)
from p2pmed.rpc.socket_file import listen_private, remove_if_ours
from p2pmed.token_bucket import TokenBucket

__all__ = ["UNSUBSCRIBE", "RpcCounters", "RpcServer"]

UNSUBSCRIBE = "rpc.unsubscribe"
_UNSUBSCRIBE_PARAMS = {"subscription": Param(int)}
_REFUSE_TIMEOUT = 1.0  # to write the "server busy" line to a connection over the limit

log = structlog.get_logger(__name__)


@dataclasses.dataclass
class RpcCounters:
    """Monotonic counters for metrics and tests."""

    connections_accepted: int = 0
    connections_refused: int = 0  # over connections_max: told "server busy" and closed
    clients_dropped: int = 0  # output buffer full or a write stalled for send_timeout
    requests: int = 0  # lines received, valid or not, notifications included
    errors: int = 0  # requests that failed (answered with an error unless notifications), ended subscriptions
    rate_limited: int = 0
    internal_errors: int = 0  # handler bugs: each logged with its traceback


@dataclasses.dataclass(eq=False)
class _Connection:
    stream: trio.SocketStream
    outbox: Outbox
    bucket: TokenBucket
    counters: RpcCounters
    nursery: trio.Nursery | None = None
    subscriptions: dict[int, trio.CancelScope] = dataclasses.field(default_factory=dict)
    closed: bool = False

    def notify(self, method: str, params: dict[str, Any]) -> bool:
        """Queue a notification without waiting; drop the client if there is no room."""
        if self.closed:
            return False
        line = encode_notification(method, params)
        if self.outbox.put_nowait(line):
            return True
        self.close(f"send buffer full ({self.outbox.size} bytes waiting)", dropped=True)
        return False

    def unsubscribe(self, subscription: int) -> bool:
        scope = self.subscriptions.pop(subscription, None)
        if scope is not None:
            scope.cancel()
        return scope is not None

    def close(self, reason: str, *, dropped: bool = False) -> None:
        """End the connection: cancels every task of it."""
        if self.closed:
            return
        self.closed = True
        if dropped:
            self.counters.clients_dropped += 1
            log.info("rpc client dropped", reason=reason)
        else:
            log.debug("rpc connection closed", reason=reason)
        assert self.nursery is not None
        self.nursery.cancel_scope.cancel()


class RpcServer:
    """Serves ``methods`` on ``socket_path`` until cancelled; see the module docstring."""

    def __init__(
        self,
        socket_path: Path,
        methods: Mapping[str, Method],
        *,
        line_size_max: int = 1 << 20,
        requests_per_second: float = 1000.0,
        burst: int = 2000,
        connections_max: int = 64,
        send_buffer_max: int = 8 << 20,
        send_timeout: float = 10.0,
        subscriptions_max: int = 16,
        backlog: int = 128,
    ) -> None:
        for name, method in methods.items():
            if not isinstance(method, Method):
                raise TypeError(f"method {name!r} must be a p2pmed.rpc.Method, got {type(method).__name__}")
            if name.startswith("rpc."):
                raise ValueError(f"method {name!r}: names beginning with 'rpc.' are reserved by JSON-RPC 2.0")
        if connections_max < 1 or subscriptions_max < 0 or send_timeout <= 0:
            raise ValueError("connections_max must be positive, subscriptions_max not negative, send_timeout positive")
        TokenBucket(requests_per_second, burst, 0.0)  # checks the rate limit's arguments now, not per connection
        self.socket_path = Path(socket_path)
        self.methods = dict(methods)
        self.line_size_max = line_size_max
        self.requests_per_second = requests_per_second
        self.burst = burst
        self.connections_max = connections_max
        self.send_buffer_max = send_buffer_max
        self.send_timeout = send_timeout
        self.subscriptions_max = subscriptions_max
        self.backlog = backlog
        self.counters = RpcCounters()
        self._known = [*self.methods, UNSUBSCRIBE]
        self._connections: set[_Connection] = set()
        self._subscription_ids = itertools.count(1)
        self._started = False

    @property
    def connections(self) -> int:
        """How many clients are connected now."""
        return len(self._connections)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on ``socket_path`` until cancelled, then remove the socket file.

        Raises ``RpcSocketInUse`` if another server answers on that path,
        ``FileExistsError`` if something other than a socket is there.
        """
        if self._started:
            raise RuntimeError("an RpcServer runs once")
        self._started = True
        listener, identity = await listen_private(self.socket_path, self.backlog)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self._serve, [listener])
                log.info("rpc server listening", path=str(self.socket_path))
                task_status.started()
        finally:
            remove_if_ours(self.socket_path, identity)
            with trio.CancelScope(shield=True):
                await listener.aclose()

    # -- connections ------------------------------------------------------------

    async def _serve(self, stream: trio.SocketStream) -> None:
        """Handler for ``serve_listeners``: raises nothing but ``Cancelled``, so
        that no client, and no bug reached by a client, can stop the server."""
        try:
            if len(self._connections) >= self.connections_max:
                await self._refuse(stream)
                return
            self.counters.connections_accepted += 1
            bucket = TokenBucket(self.requests_per_second, self.burst, trio.current_time())
            connection = _Connection(stream, Outbox(self.send_buffer_max), bucket, self.counters)
            self._connections.add(connection)
            try:
                async with trio.open_nursery() as nursery:
                    connection.nursery = nursery
                    nursery.start_soon(self._write, connection)
                    await self._read(connection)
                    for subscription in list(connection.subscriptions):
                        connection.unsubscribe(subscription)
                    await connection.outbox.wait_empty()
                    connection.close("end of input")
            finally:
                self._connections.discard(connection)
        except Exception:
            log.exception("rpc connection failed")
        finally:
            await trio.aclose_forcefully(stream)

    async def _refuse(self, stream: trio.SocketStream) -> None:
        self.counters.connections_refused += 1
        log.info("rpc connection refused", connections=len(self._connections))
        error = RpcError(
            ErrorCode.SERVER_BUSY,
            f"server busy: {len(self._connections)} clients connected, the most it serves at once; retry later",
        )
        with trio.move_on_after(_REFUSE_TIMEOUT):
            try:
                await stream.send_all(encode_error(None, error))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _read(self, connection: _Connection) -> None:
        reader = LineReader(connection.stream, self.line_size_max)
        while True:
            try:
                line = await reader.read_line()
            except LineTooLong:
                self.counters.requests += 1
                self.counters.errors += 1
                error = RpcError(ErrorCode.INVALID_REQUEST, f"request larger than {self.line_size_max} bytes")
                await connection.outbox.put(encode_error(None, error))
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the client went away
            if line is None:
                return
            if line and not line.isspace():
                await self._handle(connection, line)
            # Lines already read are served without any I/O, so without this a client's
            # pipelined burst (a 64 KiB read is ~90 submissions) held the loop from consensus:
            # at twice the capacity the network then committed a quarter of what it can.
            await trio.lowlevel.checkpoint()

    async def _write(self, connection: _Connection) -> None:
        while True:
            data = await connection.outbox.take()
            with trio.move_on_after(self.send_timeout) as timer:
                try:
                    await connection.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    connection.close("client gone")
                    return
            if timer.cancelled_caught:
                connection.close(f"a write did not complete within {self.send_timeout} s", dropped=True)
                return
            connection.outbox.sent(len(data))

    # -- requests ----------------------------------------------------------------

    async def _handle(self, connection: _Connection, line: bytes) -> None:
        self.counters.requests += 1
        retry_after = connection.bucket.take(trio.current_time())
        try:
            request = parse_request(line)
        except BadRequest as bad:
            self.counters.errors += 1
            await connection.outbox.put(encode_error(bad.request_id, bad.error))
            return
        if retry_after:
            self.counters.rate_limited += 1
            reply: bytes | None = encode_error(request.id, self._rate_limited(retry_after))
        else:
            try:
                reply = await self._call(connection, request)
            except RpcError as error:
                self.counters.errors += 1
                reply = encode_error(request.id, error)
            except Exception:
                self.counters.errors += 1
                self.counters.internal_errors += 1
                log.exception("rpc method failed", method=request.method)
                message = f"internal error in {request.method}; the details are in the node's log"
                reply = encode_error(request.id, RpcError(ErrorCode.INTERNAL_ERROR, message))
        if reply is not None and not request.notification:
            await connection.outbox.put(reply)

    async def _call(self, connection: _Connection, request: Request) -> bytes | None:
        """The reply to ``request``; ``None`` if already sent (a subscription's id)."""
        if request.method == UNSUBSCRIBE:
            params = bind_params(UNSUBSCRIBE, _UNSUBSCRIBE_PARAMS, request.params)
            return encode_result(request.id, connection.unsubscribe(params["subscription"]))
        method = self.methods.get(request.method)
        if method is None:
            hint = did_you_mean(request.method, self._known)
            raise RpcError(ErrorCode.METHOD_NOT_FOUND, f'unknown method "{shorten(request.method)}"{hint}')
        params = method.bind(request.method, request.params)
        if method.subscription:
            if not request.notification:  # without an id, there is no one to tell the subscription id to
                await self._subscribe(connection, request, method, params)
            return None
        return encode_result(request.id, await method.handler(params))

    def _rate_limited(self, retry_after: float) -> RpcError:
        retry_after = math.ceil(retry_after * 1000) / 1000
        return RpcError(
            ErrorCode.SERVER_BUSY,
            f"rate limit exceeded: at most {self.requests_per_second:g} requests per second in bursts of "
            f"{self.burst} on one connection; retry in {retry_after:g} s",
            {"retry_after": retry_after},
        )

    # -- subscriptions ------------------------------------------------------------

    async def _subscribe(self, connection: _Connection, request: Request, method: Method, params: Any) -> None:
        if len(connection.subscriptions) >= self.subscriptions_max:
            raise RpcError(ErrorCode.SERVER_BUSY, f"at most {self.subscriptions_max} subscriptions on one connection")
        source = method.handler(params)
        if inspect.isawaitable(source):
            source = await source
        if not isinstance(source, AsyncIterator):
            raise TypeError(f"subscription handler of {request.method} returned {type(source).__name__}")
        subscription = next(self._subscription_ids)
        scope = trio.CancelScope()
        connection.subscriptions[subscription] = scope  # before the reply, so unsubscribe can never miss it
        try:
            await connection.outbox.put(encode_result(request.id, subscription))
        except BaseException:
            connection.subscriptions.pop(subscription, None)
            await _aclose(source)
            raise
        assert connection.nursery is not None
        connection.nursery.start_soon(self._pump, connection, request.method, subscription, source, scope)

    async def _pump(
        self,
        connection: _Connection,
        method: str,
        subscription: int,
        source: AsyncIterator[Any],
        scope: trio.CancelScope,
    ) -> None:
        last: dict[str, Any] | None = None  # the notification that ends the subscription, if any
        try:
            with scope:
                async for item in source:
                    if not connection.notify(method, {"subscription": subscription, "result": item}):
                        return
                last = {"subscription": subscription, "end": True}
        except RpcError as error:
            last = {"subscription": subscription, "error": error.to_json()}
        except Exception:
            self.counters.internal_errors += 1
            log.exception("rpc subscription failed", method=method)
            message = f"internal error in {method}; the details are in the node's log"
            last = {"subscription": subscription, "error": RpcError(ErrorCode.INTERNAL_ERROR, message).to_json()}
        finally:
            connection.subscriptions.pop(subscription, None)
            await _aclose(source)
        if last is None:  # unsubscribed
            return
        if "error" in last:
            self.counters.errors += 1
        connection.notify(method, last)


async def _aclose(source: AsyncIterator[Any]) -> None:
    """Let an async generator (or anything with ``aclose``) run its ``finally`` blocks."""
    aclose = getattr(source, "aclose", None)
    if aclose is None:
        return
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await aclose()
        except Exception:
            log.exception("rpc subscription source failed to close")
