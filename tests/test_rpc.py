"""The JSON-RPC layer: wire rules, errors, limits, subscriptions, the socket file, the sync client.

Servers listen in a short temporary directory (a Unix socket path may hold at
most 107 bytes; pytest's ``tmp_path`` can be longer). Protocol tests speak raw
lines over trio sockets, so they see exactly what goes over the wire; the sync
client runs in a worker thread. Every test is bounded by ``trio.fail_after``
(inside ``serve``). Nothing asserts on timing: a test waits for the event that
proves a step happened, or polls a counter within that bound.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

from p2pmed.rpc import (
    UNSUBSCRIBE,
    ErrorCode,
    Method,
    NodeNotRunning,
    Param,
    RpcClient,
    RpcError,
    RpcServer,
    RpcSocketInUse,
)
from p2pmed.rpc.lines import LineReader, LineTooLong
from p2pmed.token_bucket import PeerBudgets, TokenBucket

TEST_TIMEOUT = 10
MiB = 1 << 20


@pytest.fixture
def socket_path() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rpc") as directory:
        yield Path(directory) / "node.sock"


class Handlers:
    """The test methods, with the events through which tests watch and steer them."""

    def __init__(self) -> None:
        self.entered = trio.Event()  # "wait" started
        self.release = trio.Event()  # lets "wait" return
        self.gathered = 0
        self.gather_target = 0
        self.all_gathered = trio.Event()
        self.items_in, self.items_out = trio.open_memory_channel[Any](100)
        self.items_closed = trio.Event()  # the "items" source ran its finally block
        self.flood_closed = trio.Event()

    def methods(self) -> dict[str, Method]:
        return {
            "echo": Method(
                self.echo,
                {
                    "text": str,
                    "count": Param(int, optional=True, default=1),
                    "flag": Param(bool, optional=True, default=False),
                    "blob": Param(bytes, optional=True),
                },
            ),
            "chain.getBlock": Method(self.get_block, {"height": int}),
            "fail": Method(self.fail),
            "unserializable": Method(self.unserializable, {"where": str}),
            "wait": Method(self.wait),
            "gather": Method(self.gather),
            "big": Method(self.big),
            "items": Method(self.items, subscription=True),
            "countdown": Method(self.countdown, {"start": int}, subscription=True),
            "blocks.from": Method(self.blocks_from, {"height": int}, subscription=True),
            "broken": Method(self.broken, subscription=True),
            "unserializable.items": Method(self.unserializable_items, subscription=True),
            "flood": Method(self.flood, subscription=True),
        }

    async def echo(self, params: dict[str, Any]) -> dict[str, Any]:
        blob = params["blob"]
        return {**params, "blob": None if blob is None else f"{len(blob)} bytes: {blob!r}"}

    async def get_block(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["height"] > 10:
            raise RpcError(ErrorCode.NOT_FOUND, f"no block at height {params['height']}", {"tip": 10})
        return {"height": params["height"]}

    async def fail(self, params: dict[str, Any]) -> None:
        raise RuntimeError("secret detail 1234")

    async def unserializable(self, params: dict[str, Any]) -> object:
        if params["where"] == "error data":
            raise RpcError(ErrorCode.NOT_FOUND, "not found", {"key": b"bytes are not JSON"})
        return object()

    async def wait(self, params: dict[str, Any]) -> str:
        self.entered.set()
        await self.release.wait()
        return "released"

    async def gather(self, params: dict[str, Any]) -> int:
        self.gathered += 1
        if self.gathered == self.gather_target:
            self.all_gathered.set()
        await self.all_gathered.wait()
        return self.gathered

    async def big(self, params: dict[str, Any]) -> str:
        return "x" * (4 * MiB)

    async def items(self, params: dict[str, Any]) -> AsyncIterator[Any]:
        try:
            async for item in self.items_out:
                yield item
        finally:
            self.items_closed.set()

    async def countdown(self, params: dict[str, Any]) -> AsyncIterator[int]:
        for value in range(params["start"], 0, -1):
            yield value

    async def blocks_from(self, params: dict[str, Any]) -> AsyncIterator[int]:
        """Checks its params before the subscription exists, then hands over an iterator."""
        if params["height"] > 10:
            raise RpcError(ErrorCode.NOT_FOUND, f"no block at height {params['height']}")
        return self.countdown({"start": params["height"]})

    async def broken(self, params: dict[str, Any]) -> AsyncIterator[int]:
        yield 1
        raise RpcError(ErrorCode.NOT_READY, "the source went away")

    async def unserializable_items(self, params: dict[str, Any]) -> AsyncIterator[object]:
        yield object()

    async def flood(self, params: dict[str, Any]) -> AsyncIterator[str]:
        try:
            while True:
                await trio.lowlevel.checkpoint()
                yield "y" * 8192
        finally:
            self.flood_closed.set()


@asynccontextmanager
async def serve(socket_path: Path, handlers: Handlers | None = None, **options: Any) -> AsyncIterator[RpcServer]:
    """A running server for the body of the ``with``, which is bounded by ``TEST_TIMEOUT``."""
    server = RpcServer(socket_path, (handlers or Handlers()).methods(), **options)
    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            yield server
            nursery.cancel_scope.cancel()
    assert not socket_path.exists(), "the socket file must be removed on exit"


@pytest.fixture
async def connect(socket_path: Path) -> AsyncIterator[Callable[[], Awaitable[RawClient]]]:
    """``await connect()``: a new raw client of the test's server, closed after the test."""
    clients: list[RawClient] = []

    async def connect_one() -> RawClient:
        clients.append(await RawClient.connect(socket_path))
        return clients[-1]

    yield connect_one
    for client in clients:
        await client.aclose()


class RawClient:
    """Lines over a trio Unix socket, nothing added."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = LineReader(stream, 64 * MiB)

    @classmethod
    async def connect(cls, path: Path) -> RawClient:
        return cls(await trio.open_unix_socket(os.fspath(path)))

    async def send_line(self, line: bytes | str) -> None:
        await self.stream.send_all((line.encode() if isinstance(line, str) else line) + b"\n")

    async def receive(self) -> dict[str, Any]:
        line = await self.reader.read_line()
        assert line is not None, "the server closed the connection"
        return json.loads(line)

    async def call(self, method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
        request = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        await self.send_line(json.dumps(request))
        return await self.receive()

    async def closed_by_server(self) -> bool:
        """Read to the end; true once the server has closed the connection."""
        try:
            while await self.reader.read_line() is not None:
                pass
        except trio.BrokenResourceError:  # reset: the server closed with our unread bytes in its buffer
            pass
        return True

    async def aclose(self) -> None:
        await self.stream.aclose()


def error_of(reply: dict[str, Any]) -> tuple[int, str]:
    assert "result" not in reply, reply
    return reply["error"]["code"], reply["error"]["message"]


async def wait_until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await trio.sleep(0.005)


# -- requests and replies ------------------------------------------------------------


async def test_results_come_back_with_the_request_id_by_name_or_by_position(socket_path, connect):
    async with serve(socket_path):
        client = await connect()
        reply = await client.call("echo", {"text": "hé", "blob": "00ff"}, request_id="a")
        assert reply == {
            "jsonrpc": "2.0",
            "id": "a",
            "result": {"text": "hé", "count": 1, "flag": False, "blob": "2 bytes: b'\\x00\\xff'"},
        }
        reply = await client.call("echo", ["hi", 3, True], request_id=None)
        assert reply["id"] is None
        assert reply["result"] == {"text": "hi", "count": 3, "flag": True, "blob": None}
        reply = await client.call("echo", {"text": "x", "count": None}, request_id=7)  # null: the default
        assert reply["result"]["count"] == 1 and reply["id"] == 7


async def test_notifications_get_no_reply_even_when_they_fail(socket_path, connect):
    async with serve(socket_path) as server:
        client = await connect()
        await client.send_line('{"jsonrpc": "2.0", "method": "echo", "params": {"text": "x"}}')
        await client.send_line('{"jsonrpc": "2.0", "method": "no.such.method"}')
        await client.send_line('{"jsonrpc": "2.0", "method": "echo", "params": {"text": 5}}')
        await client.send_line("")  # blank lines are skipped
        reply = await client.call("echo", {"text": "after"}, request_id=9)
        assert reply["id"] == 9 and reply["result"]["text"] == "after"  # the first line we get back
        assert server.counters.requests == 4 and server.counters.errors == 2


async def test_replies_come_in_request_order_on_a_connection(socket_path, connect):
    async with serve(socket_path):
        client = await connect()
        lines = [json.dumps({"jsonrpc": "2.0", "id": i, "method": "echo", "params": [str(i)]}) for i in range(50)]
        await client.send_line("\n".join(lines))
        assert [(await client.receive())["id"] for _ in range(50)] == list(range(50))


async def test_a_pipelined_burst_of_requests_lets_other_tasks_run_between_them(socket_path, connect):
    """A node's consensus shares the event loop with its RPC clients: a burst of pipelined
    requests must not hold the loop until the whole burst is served (at twice the capacity,
    ``p2pmed bench`` saw consensus starved and a quarter of the capacity committed)."""
    events: list[str] = []

    class Noting(Handlers):
        def methods(self) -> dict[str, Method]:
            return {**super().methods(), "note": Method(self.note)}

        async def note(self, params: dict[str, Any]) -> None:
            events.append("request")

    async def other_task() -> None:
        while True:
            events.append("other")
            await trio.lowlevel.checkpoint()

    async with serve(socket_path, Noting()):
        client = await connect()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other_task)
            lines = [json.dumps({"jsonrpc": "2.0", "id": i, "method": "note"}) for i in range(50)]
            await client.send_line("\n".join(lines))
            assert [(await client.receive())["id"] for _ in range(50)] == list(range(50))
            nursery.cancel_scope.cancel()
    served = [position for position, event in enumerate(events) if event == "request"]
    assert len(served) == 50
    # The other task runs once per scheduling round (trio may order a round either way), so
    # it runs about once per request while the burst is served; without the yields, never.
    assert events[served[0] : served[-1]].count("other") >= 25


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        (b"{not json", "unreadable request: not JSON"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "echo"', "not JSON"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"text": "\xff"}}', "not UTF-8 text (byte 66)"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "echo", "params": [NaN]}', "NaN is not a JSON number"),
        (b'{"jsonrpc": "2.0", "id": 1, "id": 2, "method": "echo"}', "the key 'id' appears twice"),
        (b"[" * 100_000, "nested more than 64 levels deep"),
        (b"1" * 5000, "not JSON"),  # more digits than Python converts
    ],
)
async def test_unparsable_lines_get_a_parse_error_and_the_connection_stays_usable(
    socket_path, connect, line, complaint
):
    async with serve(socket_path):
        client = await connect()
        await client.send_line(line)
        reply = await client.receive()
        code, message = error_of(reply)
        assert code == ErrorCode.PARSE_ERROR and complaint in message and reply["id"] is None
        assert (await client.call("echo", ["still here"]))["result"]["text"] == "still here"


@pytest.mark.parametrize(
    ("request_", "reply_id", "complaint"),
    [
        ({"jsonrpc": "1.0", "id": 4, "method": "echo"}, 4, 'expected "jsonrpc": "2.0"'),
        ({"id": 4, "method": "echo"}, 4, 'expected "jsonrpc": "2.0"'),
        ({"jsonrpc": "2.0", "id": 4}, 4, 'missing "method"'),
        ({"jsonrpc": "2.0", "id": 4, "method": 12}, 4, '"method" must be a string'),
        ({"jsonrpc": "2.0", "id": 4, "method": "echo", "params": "x"}, 4, '"params" must be an object or an array'),
        ({"jsonrpc": "2.0", "id": 4, "method": "echo", "param": {}}, 4, 'unknown member "param"'),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "echo"}, None, '"id" must be a string, an integer or null'),
        ({"jsonrpc": "2.0", "id": True, "method": "echo"}, None, '"id" must be'),
        ({"jsonrpc": "2.0", "id": [1], "method": "echo"}, None, '"id" must be'),
        ([{"jsonrpc": "2.0", "id": 1, "method": "echo"}], None, "batch requests are not supported"),
        ([], None, "batch requests are not supported"),
        (42, None, "a request must be a JSON object"),
        ("echo", None, "a request must be a JSON object"),
    ],
)
async def test_invalid_requests_are_refused_with_the_id_when_one_could_be_read(
    socket_path, connect, request_, reply_id, complaint
):
    async with serve(socket_path):
        client = await connect()
        await client.send_line(json.dumps(request_))
        reply = await client.receive()
        code, message = error_of(reply)
        assert code == ErrorCode.INVALID_REQUEST and complaint in message and reply["id"] == reply_id


async def test_an_unknown_method_is_named_with_the_closest_known_one(socket_path, connect):
    async with serve(socket_path):
        client = await connect()
        code, message = error_of(await client.call("chain.getBlok"))
        assert code == ErrorCode.METHOD_NOT_FOUND
        assert message == 'unknown method "chain.getBlok"; did you mean "chain.getBlock"?'
        assert error_of(await client.call("rpc.unsubscrib"))[1].endswith('did you mean "rpc.unsubscribe"?')
        assert error_of(await client.call("zzz")) == (ErrorCode.METHOD_NOT_FOUND, 'unknown method "zzz"')
        code, message = error_of(await client.call("m" * 100_000))
        assert code == ErrorCode.METHOD_NOT_FOUND and len(message) < 200  # not echoed in full


async def test_bad_params_are_refused_naming_the_parameter_and_what_was_expected(socket_path, connect):
    cases = [
        ({"height": "ten"}, 'chain.getBlock: parameter "height": expected an integer, got a string'),
        ({"height": True}, 'parameter "height": expected an integer, got true'),
        ({"height": 1.0}, 'parameter "height": expected an integer, got a number'),
        ({"height": 1 << 63}, 'parameter "height": expected an integer, got an integer outside the signed 64-bit'),
        ({"height": None}, 'parameter "height": expected an integer, got null'),
        ({}, 'chain.getBlock: missing parameter "height" (an integer)'),
        ({"heigth": 1}, 'chain.getBlock: unknown parameter "heigth"; did you mean "height"?'),
        ({"height": 1, "zzz": 1}, 'chain.getBlock: unknown parameter "zzz" (it takes: height)'),
        ([1, 2], "chain.getBlock: takes at most 1 parameter, got 2"),
        ({"height" * 100_000: 1}, f'chain.getBlock: unknown parameter "{("height" * 17)[:100]}..." (it takes: height)'),
    ]
    echo_cases = [
        ({"text": 5}, 'echo: parameter "text": expected a string, got a number'),
        ({"text": "\ud800"}, 'parameter "text": expected a string, got a string with an unpaired surrogate'),
        ({"text": "x", "flag": "yes"}, 'parameter "flag": expected true or false, got a string'),
        ({"text": "x", "blob": "abc"}, 'parameter "blob": expected hex-encoded bytes'),
        ({"text": "x", "blob": "0x00"}, "not an even number of hex digits"),
        ({"text": "x", "blob": "00 11"}, "not an even number of hex digits"),
    ]
    async with serve(socket_path):
        client = await connect()
        for method, params, complaint in [("chain.getBlock", *case) for case in cases] + [
            ("echo", *case) for case in echo_cases
        ]:
            code, message = error_of(await client.call(method, params))
            assert code == ErrorCode.INVALID_PARAMS, (params, message)
            assert complaint in message, (params, message)


async def test_application_errors_keep_their_code_message_and_data(socket_path, connect):
    async with serve(socket_path):
        client = await connect()
        reply = await client.call("chain.getBlock", {"height": 11})
        assert reply["error"] == {"code": ErrorCode.NOT_FOUND, "message": "no block at height 11", "data": {"tip": 10}}


async def test_a_failing_handler_is_logged_and_answered_without_its_details(socket_path, connect):
    with structlog.testing.capture_logs() as logs:
        async with serve(socket_path) as server:
            client = await connect()
            for method, params in (("fail", None), ("unserializable", ["result"]), ("unserializable", ["error data"])):
                reply = await client.call(method, params)
                assert reply["error"] == {
                    "code": ErrorCode.INTERNAL_ERROR,
                    "message": f"internal error in {method}; the details are in the node's log",
                }
            assert (await client.call("echo", ["fine"]))["result"]["text"] == "fine"
            assert server.counters.internal_errors == 3
    failures = [entry for entry in logs if entry["event"] == "rpc method failed"]
    assert [entry["method"] for entry in failures] == ["fail", "unserializable", "unserializable"]
    assert all(entry["log_level"] == "error" and entry.get("exc_info") for entry in failures)


# -- limits ------------------------------------------------------------------------


async def test_a_10_mib_line_is_refused_and_the_connection_closed(socket_path, connect):
    async with serve(socket_path) as server:
        client = await connect()

        async def send_huge() -> None:
            try:
                await client.send_line(b'{"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["' + b"a" * 10 * MiB)
            except trio.BrokenResourceError:
                pass  # the server stopped reading and closed: expected

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_huge)
            reply = await client.receive()
            assert reply == {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": ErrorCode.INVALID_REQUEST, "message": f"request larger than {MiB} bytes"},
            }
            assert await client.closed_by_server()
        other = await connect()
        assert (await other.call("echo", ["ok"]))["result"]["text"] == "ok"
        assert server.counters.errors == 1


async def test_a_line_of_exactly_the_limit_is_served_and_one_byte_more_is_not(socket_path, connect):
    async with serve(socket_path, line_size_max=200):
        line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["x"]})
        padded = line[:-1] + " " * (200 - len(line)) + "}"
        assert len(padded) == 200
        client = await connect()
        await client.send_line(padded)
        assert (await client.receive())["result"]["text"] == "x"
        await client.send_line(padded + " ")
        assert error_of(await client.receive()) == (ErrorCode.INVALID_REQUEST, "request larger than 200 bytes")
        assert await client.closed_by_server()


async def test_a_client_that_disconnects_mid_request_is_let_go_quietly(socket_path, connect):
    handlers = Handlers()
    with structlog.testing.capture_logs() as logs:
        async with serve(socket_path, handlers) as server:
            client = await connect()
            await client.send_line('{"jsonrpc": "2.0", "id": 1, "method": "wait"}')
            await handlers.entered.wait()
            await client.aclose()
            handlers.release.set()  # the reply now has nowhere to go
            await wait_until(lambda: server.connections == 0)
            other = await connect()
            assert (await other.call("wait"))["result"] == "released"
            assert server.counters.clients_dropped == 0 and server.counters.internal_errors == 0
    assert [entry for entry in logs if entry["log_level"] in ("warning", "error", "critical")] == []


async def test_requests_over_the_rate_limit_get_server_busy_with_a_retry_hint(socket_path, connect):
    async with serve(socket_path, requests_per_second=0.001, burst=3) as server:
        client = await connect()
        lines = [json.dumps({"jsonrpc": "2.0", "id": i, "method": "echo", "params": ["x"]}) for i in range(5)]
        lines.insert(4, '{"jsonrpc": "2.0", "method": "echo", "params": ["dropped"]}')  # a notification
        await client.send_line("\n".join(lines))
        replies = [await client.receive() for _ in range(5)]
        assert [reply["id"] for reply in replies] == [0, 1, 2, 3, 4]
        assert all("result" in reply for reply in replies[:3])
        for reply in replies[3:]:
            code, message = error_of(reply)
            assert code == ErrorCode.SERVER_BUSY and "rate limit exceeded" in message and "retry in" in message
            assert reply["error"]["data"]["retry_after"] > 0
        assert server.counters.rate_limited == 3
        other = await connect()  # the limit is per connection
        assert "result" in await other.call("echo", ["x"])


class CountingStream(trio.abc.ReceiveStream):
    """Endless bytes without a newline; counts how many were asked for."""

    def __init__(self) -> None:
        self.bytes_read = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        size = min(max_bytes or 1 << 30, 1 << 20)
        self.bytes_read += size
        return b"a" * size

    async def aclose(self) -> None:
        pass


async def test_the_line_reader_stops_reading_just_past_the_limit():
    stream = CountingStream()
    with pytest.raises(LineTooLong):
        await LineReader(stream, 1000).read_line()
    assert stream.bytes_read == 1001
    stream = CountingStream()
    with pytest.raises(LineTooLong):
        await LineReader(stream, MiB).read_line()
    assert stream.bytes_read == MiB + 1


def test_token_bucket_allows_bursts_then_refills_at_the_rate():
    bucket = TokenBucket(rate=2.0, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)
    assert bucket.take(100.25) == pytest.approx(0.25)  # half a token came back
    assert bucket.take(100.5) == 0.0
    assert [bucket.take(1000.0) for _ in range(4)][-1] > 0  # a long pause refills to the burst, no more
    assert bucket.take(999.0) > 0  # time going backwards gives nothing


def test_a_charge_beyond_the_tokens_is_a_debt_that_takes_waits_out():
    budgets: PeerBudgets[str] = PeerBudgets(rate=10.0, burst=5)
    assert budgets.take("a", 0.0) == 0.0  # the bucket exists from its first take
    budgets.charge("a", 0.0, 24)  # 4 tokens left, 24 charged: 20 in debt
    assert budgets.take("a", 1.0) == pytest.approx(1.1)  # 10 repaid, 10 to go, then 1 token
    assert budgets.take("a", 2.1) == 0.0
    budgets.charge("nobody", 0.0, 100)  # a peer never seen has nothing to charge
    assert budgets.take("nobody", 0.0, 5) == 0.0


def test_peer_budgets_keep_one_bucket_per_peer_and_forget_the_least_recently_used():
    budgets: PeerBudgets[str] = PeerBudgets(rate=1.0, burst=10, peers_max=2)
    assert budgets.take("a", 0.0, 10) == 0.0 and budgets.take("a", 0.0, 1) > 0  # a's burst is spent
    assert budgets.take("b", 0.0, 10) == 0.0  # b has its own
    assert budgets.take("a", 0.0, 1) > 0  # a is used again, so b is now the least recent
    assert budgets.take("c", 0.0, 10) == 0.0  # a third peer: b is forgotten
    assert budgets.take("b", 0.0, 10) == 0.0, "a forgotten peer starts full again"
    with pytest.raises(ValueError):
        PeerBudgets(rate=0.0, burst=1)


async def test_fifty_concurrent_clients_are_all_answered(socket_path, connect):
    handlers = Handlers()
    handlers.gather_target = 50  # no handler returns before all fifty are running at once
    answers: list[int] = []
    async with serve(socket_path, handlers):

        async def one_client() -> None:
            client = await connect()
            answers.append((await client.call("gather"))["result"])
            await client.aclose()

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one_client)
    assert answers == [50] * 50


async def test_connections_over_the_maximum_get_server_busy_and_are_closed(socket_path, connect):
    async with serve(socket_path, connections_max=2) as server:
        first, second = await connect(), await connect()
        for client in (first, second):
            assert "result" in await client.call("echo", ["x"])
        extra = await connect()
        reply = await extra.receive()
        code, message = error_of(reply)
        assert code == ErrorCode.SERVER_BUSY and "server busy: 2 clients connected" in message and reply["id"] is None
        assert await extra.closed_by_server()
        assert server.counters.connections_refused == 1
        await first.aclose()
        await wait_until(lambda: server.connections < 2)
        again = await connect()
        assert "result" in await again.call("echo", ["x"])


async def test_a_client_that_does_not_read_a_big_reply_is_dropped_after_the_send_timeout(socket_path, connect):
    async with serve(socket_path, send_timeout=0.2) as server:
        stalled = await connect()
        await stalled.send_line('{"jsonrpc": "2.0", "id": 1, "method": "big"}')  # 4 MiB, more than a socket buffers
        other = await connect()
        assert "result" in await other.call("echo", ["served meanwhile"])
        await wait_until(lambda: server.counters.clients_dropped == 1)
        assert await stalled.closed_by_server()


# -- subscriptions -------------------------------------------------------------------


async def test_a_subscription_delivers_items_until_unsubscribed(socket_path, connect):
    handlers = Handlers()
    async with serve(socket_path, handlers) as server:
        client = await connect()
        subscription = (await client.call("items"))["result"]
        for item in (1, {"height": 2}, "three"):
            await handlers.items_in.send(item)
        for item in (1, {"height": 2}, "three"):
            assert await client.receive() == {
                "jsonrpc": "2.0",
                "method": "items",
                "params": {"subscription": subscription, "result": item},
            }
        assert (await client.call(UNSUBSCRIBE, {"subscription": subscription}, request_id=2))["result"] is True
        await handlers.items_closed.wait()
        assert (await client.call(UNSUBSCRIBE, [subscription], request_id=3))["result"] is False
        code, message = error_of(await client.call(UNSUBSCRIBE, {"subscription": "x"}))
        assert code == ErrorCode.INVALID_PARAMS and 'parameter "subscription"' in message
        assert server.counters.clients_dropped == 0


async def test_a_subscription_ends_when_its_client_disconnects(socket_path, connect):
    handlers = Handlers()
    async with serve(socket_path, handlers) as server:
        client = await connect()
        assert "result" in await client.call("items")
        await client.aclose()
        await handlers.items_closed.wait()
        await wait_until(lambda: server.connections == 0)


async def test_a_finished_or_failed_source_ends_its_subscription_with_a_last_notification(socket_path, connect):
    async with serve(socket_path):
        client = await connect()
        subscription = (await client.call("countdown", {"start": 2}))["result"]
        assert [(await client.receive())["params"] for _ in range(3)] == [
            {"subscription": subscription, "result": 2},
            {"subscription": subscription, "result": 1},
            {"subscription": subscription, "end": True},
        ]
        subscription = (await client.call("broken"))["result"]
        assert [(await client.receive())["params"] for _ in range(2)] == [
            {"subscription": subscription, "result": 1},
            {"subscription": subscription, "error": {"code": ErrorCode.NOT_READY, "message": "the source went away"}},
        ]
        subscription = (await client.call("unserializable.items"))["result"]
        message = "internal error in unserializable.items; the details are in the node's log"
        assert (await client.receive())["params"] == {
            "subscription": subscription,
            "error": {"code": ErrorCode.INTERNAL_ERROR, "message": message},
        }


async def test_a_subscription_can_refuse_before_it_starts(socket_path, connect):
    async with serve(socket_path):
        client = await connect()
        assert error_of(await client.call("blocks.from", {"height": 99})) == (
            ErrorCode.NOT_FOUND,
            "no block at height 99",
        )
        subscription = (await client.call("blocks.from", {"height": 1}))["result"]
        assert (await client.receive())["params"] == {"subscription": subscription, "result": 1}


async def test_subscriptions_per_connection_are_bounded(socket_path, connect):
    async with serve(socket_path, subscriptions_max=2):
        client = await connect()
        assert "result" in await client.call("items", request_id=1)
        assert "result" in await client.call("items", request_id=2)
        code, message = error_of(await client.call("items", request_id=3))
        assert code == ErrorCode.SERVER_BUSY and "at most 2 subscriptions" in message


async def test_a_subscriber_that_does_not_read_is_dropped_while_another_client_is_served(socket_path, connect):
    handlers = Handlers()
    async with serve(socket_path, handlers, send_buffer_max=64 * 1024) as server:
        slow = await connect()
        assert "result" in await slow.call("flood")  # then it reads nothing more
        other = await connect()
        await handlers.flood_closed.wait()  # the source was closed: its subscriber was dropped
        assert "result" in await other.call("echo", ["served"])
        assert server.counters.clients_dropped == 1
        assert await slow.closed_by_server()


# -- the socket file ---------------------------------------------------------------


async def test_the_socket_is_private_and_nothing_else_is_left_beside_it(socket_path):
    os.chmod(socket_path.parent, 0o755)
    async with serve(socket_path):
        assert stat.S_ISSOCK(os.lstat(socket_path).st_mode)
        assert stat.S_IMODE(os.lstat(socket_path).st_mode) == 0o600
        assert os.listdir(socket_path.parent) == [socket_path.name]  # the staging directory is gone
    assert os.listdir(socket_path.parent) == []


async def test_a_stale_socket_file_is_replaced(socket_path, connect):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(socket_path))
    dead.close()  # its file stays behind, with nobody listening
    with structlog.testing.capture_logs() as logs:
        async with serve(socket_path):
            client = await connect()
            assert "result" in await client.call("echo", ["x"])
            assert stat.S_IMODE(os.lstat(socket_path).st_mode) == 0o600
    assert any(entry["event"] == "removing stale rpc socket" for entry in logs)


async def test_a_live_socket_is_not_taken_over(socket_path, connect):
    async with serve(socket_path):
        identity = os.lstat(socket_path).st_ino
        with pytest.raises(RpcSocketInUse, match=f"another server is already listening on {socket_path}"):
            await RpcServer(socket_path, {}).run()
        assert os.lstat(socket_path).st_ino == identity
        client = await connect()
        assert "result" in await client.call("echo", ["still the first server"])
    assert os.listdir(socket_path.parent) == []


async def test_a_file_that_is_not_a_socket_is_left_alone(socket_path):
    socket_path.write_text("precious")
    with trio.fail_after(TEST_TIMEOUT), pytest.raises(FileExistsError, match="is not a socket"):
        await RpcServer(socket_path, {}).run()
    assert socket_path.read_text() == "precious"
    assert os.listdir(socket_path.parent) == [socket_path.name]


async def test_a_socket_path_too_long_for_unix_sockets_is_refused_clearly(socket_path):
    deep = socket_path.parent / ("d" * 120) / "node.sock"
    with trio.fail_after(TEST_TIMEOUT), pytest.raises(ValueError, match="socket path too long"):
        await RpcServer(deep, {}).run()


def test_method_tables_are_checked_when_the_server_is_built(socket_path):
    async def handler(params: dict[str, Any]) -> None:
        return None

    with pytest.raises(ValueError, match=r"reserved by JSON-RPC 2\.0"):
        RpcServer(socket_path, {"rpc.mine": Method(handler)})
    with pytest.raises(TypeError, match=r"must be a p2pmed\.rpc\.Method"):
        RpcServer(socket_path, {"x": handler})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="parameter type must be one of"):
        Method(handler, {"x": float})


# -- the sync client -----------------------------------------------------------------


def test_the_client_says_no_node_is_running_when_there_is_no_socket_or_a_stale_one(socket_path):
    expected = f"no node is running at {socket_path}: start it with `p2pmed node --home DIR`"
    with pytest.raises(NodeNotRunning) as caught:
        RpcClient(socket_path).call("echo", text="x")
    assert str(caught.value) == expected
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(socket_path))
    dead.close()  # a stale file: connections are refused
    with pytest.raises(NodeNotRunning) as caught:
        RpcClient(socket_path).subscribe("items")
    assert str(caught.value) == expected


async def test_the_client_calls_a_running_server(socket_path):
    async with serve(socket_path):
        with RpcClient(socket_path, timeout=5) as client:
            call = functools.partial(trio.to_thread.run_sync, abandon_on_cancel=True)
            result = await call(functools.partial(client.call, "echo", text="hi", blob=b"\x01\x02"))
            assert result == {"text": "hi", "count": 1, "flag": False, "blob": "2 bytes: b'\\x01\\x02'"}
            with pytest.raises(RpcError) as caught:
                await call(functools.partial(client.call, "chain.getBlock", height=12))
            assert (caught.value.code, caught.value.message, caught.value.data) == (
                ErrorCode.NOT_FOUND,
                "no block at height 12",
                {"tip": 10},
            )
            with pytest.raises(RpcError, match=r'did you mean "chain\.getBlock"') as caught:
                await call(functools.partial(client.call, "chain.getblock", height=1))
            assert caught.value.code == ErrorCode.METHOD_NOT_FOUND
            assert await call(functools.partial(client.call, "chain.getBlock", height=3)) == {"height": 3}


async def test_the_client_times_out_and_recovers(socket_path):
    handlers = Handlers()
    async with serve(socket_path, handlers):
        with RpcClient(socket_path, timeout=0.2) as client:
            with pytest.raises(TimeoutError, match="no answer to wait"):
                await trio.to_thread.run_sync(client.call, "wait", abandon_on_cancel=True)
            handlers.release.set()
            assert await trio.to_thread.run_sync(client.call, "wait", abandon_on_cancel=True) == "released"


async def test_the_client_reports_server_busy_on_a_connection_over_the_maximum(socket_path, connect):
    async with serve(socket_path, connections_max=1):
        holder = await connect()
        assert "result" in await holder.call("echo", ["x"])
        client = RpcClient(socket_path, timeout=5)
        with pytest.raises(RpcError, match="server busy") as caught:
            await trio.to_thread.run_sync(functools.partial(client.call, "echo", text="x"), abandon_on_cancel=True)
        assert caught.value.code == ErrorCode.SERVER_BUSY


async def test_the_client_iterates_a_subscription(socket_path):
    async with serve(socket_path):
        client = RpcClient(socket_path, timeout=5)

        def follow() -> list[Any]:
            with client.subscribe("countdown", start=3) as subscription:
                assert isinstance(subscription.id, int)
                return list(subscription)

        assert await trio.to_thread.run_sync(follow, abandon_on_cancel=True) == [3, 2, 1]

        def follow_broken() -> None:
            subscription = client.subscribe("broken")
            assert next(subscription) == 1
            with pytest.raises(RpcError, match="the source went away") as caught:
                next(subscription)
            assert caught.value.code == ErrorCode.NOT_READY
            assert list(subscription) == []  # ended, and its connection closed

        await trio.to_thread.run_sync(follow_broken, abandon_on_cancel=True)
        with pytest.raises(RpcError, match="no block at height 50"):
            await trio.to_thread.run_sync(functools.partial(client.subscribe, "blocks.from", height=50))


async def test_a_subscription_read_with_a_timeout_times_out_then_delivers_what_came(socket_path):
    handlers = Handlers()
    async with serve(socket_path, handlers):
        subscription = await trio.to_thread.run_sync(RpcClient(socket_path, timeout=5).subscribe, "items")
        with subscription:
            with pytest.raises(TimeoutError):
                await trio.to_thread.run_sync(subscription.next, 0.05, abandon_on_cancel=True)
            await handlers.items_in.send("first")
            assert await trio.to_thread.run_sync(subscription.next, 5, abandon_on_cancel=True) == "first"
            await handlers.items_in.aclose()

            def ended() -> bool:
                try:
                    subscription.next(5)
                except StopIteration:  # (it may not cross into trio: a coroutine cannot raise it)
                    return True
                return False

            assert await trio.to_thread.run_sync(ended, abandon_on_cancel=True)
