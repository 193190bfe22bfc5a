"""The metrics endpoint's HTTP handling and the store-size reading, without a node.

A running node's metrics (values checked against the chain) are in
``test_operator.py``. Every test here is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from p2pmed.node.metrics import store_size_bytes
from p2pmed.node.metrics_http import CONNECTIONS_MAX, HEAD_SIZE_MAX, respond, serve_metrics

TEST_TIMEOUT_S = 20


def render() -> bytes:
    return b"# TYPE up gauge\nup 1.0\n"


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def header(response: bytes, name: str) -> str | None:
    head = response.split(b"\r\n\r\n", 1)[0].decode()
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(": ")
        if key.lower() == name.lower():
            return value
    return None


def body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


def test_get_metrics_returns_the_text_format_with_its_length() -> None:
    response = respond(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", render)
    assert status_of(response) == 200
    assert (header(response, "Content-Type") or "").startswith("text/plain; version=")
    assert body_of(response) == render()
    assert header(response, "Content-Length") == str(len(render()))
    assert header(response, "Connection") == "close"


def test_head_gets_the_headers_only_and_a_query_string_is_ignored() -> None:
    response = respond(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n", render)
    assert status_of(response) == 200 and body_of(response) == b""
    assert header(response, "Content-Length") == str(len(render()))


@pytest.mark.parametrize(
    ("head", "status", "fragment"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 404, b"/metrics"),
        (b"GET /metricsx HTTP/1.1\r\n\r\n", 404, b"/metrics"),
        (b"POST /metrics HTTP/1.1\r\n\r\n", 405, b"GET and HEAD"),
        (b"GET /metrics\r\n\r\n", 400, b"request line"),
        (b"\x00\xff garbage\r\n\r\n", 400, b"request line"),
        (b"GET /metrics SPDY/3\r\n\r\n", 400, b"request line"),
    ],
)
def test_other_requests_get_a_4xx_that_says_what_is_served(head: bytes, status: int, fragment: bytes) -> None:
    response = respond(head, render)
    assert status_of(response) == status
    assert fragment in body_of(response)


def test_a_failing_collector_costs_one_scrape_a_500_and_nothing_more() -> None:
    def broken() -> bytes:
        raise RuntimeError("collector bug")

    response = respond(b"GET /metrics HTTP/1.1\r\n\r\n", broken)
    assert status_of(response) == 500 and b"collector bug" not in response


def test_store_size_counts_the_database_and_its_write_ahead_log(tmp_path: Path) -> None:
    database = tmp_path / "chain.sqlite3"
    assert store_size_bytes(database) == 0
    database.write_bytes(b"x" * 4096)
    assert store_size_bytes(database) == 4096
    (tmp_path / "chain.sqlite3-wal").write_bytes(b"y" * 1000)
    assert store_size_bytes(database) == 5096


# -- the server, over real sockets ----------------------------------------------------------


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    Counter("p2pmed_test_events", "Events.", registry=registry).inc(3)
    yield registry


@asynccontextmanager
async def serving(registry: CollectorRegistry) -> AsyncIterator[int]:
    """The port of a running endpoint for the body of the ``with``."""
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve_metrics, registry, 0)
            yield listeners[0].socket.getsockname()[1]
            nursery.cancel_scope.cancel()


async def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and end our side, then read until the server closes the connection
    (a reset counts as closing: a server that closes without reading our bytes causes one)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    response = bytearray()
    async with stream:
        try:
            await stream.send_all(request)
            await stream.send_eof()
            while chunk := await stream.receive_some(65536):
                response += chunk
        except trio.BrokenResourceError:
            pass
    return bytes(response)


async def scrape(port: int) -> dict[str, float]:
    response = await exchange(port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_of(response) == 200
    samples = {}
    for family in text_string_to_metric_families(body_of(response).decode()):
        for sample in family.samples:
            samples[sample.name] = sample.value
    return samples


async def test_the_endpoint_serves_the_registry_in_the_text_format(registry: CollectorRegistry) -> None:
    async with serving(registry) as port:
        assert (await scrape(port))["p2pmed_test_events_total"] == 3


async def test_an_oversized_request_head_gets_431_and_the_server_serves_on(registry: CollectorRegistry) -> None:
    async with serving(registry) as port:
        request = b"GET /metrics HTTP/1.1\r\nX: "
        # one byte over, all of which the server reads (unread bytes would make the kernel reset the connection)
        response = await exchange(port, request + b"a" * (HEAD_SIZE_MAX + 1 - len(request)))
        assert status_of(response) == 431
        assert (await scrape(port))["p2pmed_test_events_total"] == 3


async def test_clients_that_send_nothing_or_vanish_do_not_stop_the_server(registry: CollectorRegistry) -> None:
    async with serving(registry) as port:
        assert await exchange(port, b"") == b""  # no request, no answer
        half = await trio.open_tcp_stream("127.0.0.1", port)
        await half.send_all(b"GET /metr")
        await half.aclose()
        assert (await scrape(port))["p2pmed_test_events_total"] == 3


async def test_connections_over_the_limit_are_closed_without_an_answer(registry: CollectorRegistry) -> None:
    async with serving(registry) as port:
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(CONNECTIONS_MAX)]
        try:
            with trio.fail_after(TEST_TIMEOUT_S):
                while True:  # the server may not have counted every idle one yet: bounded by fail_after
                    response = await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
                    if response == b"":
                        break
                    await trio.sleep(0.01)
        finally:
            for stream in idle:
                await stream.aclose()
        with trio.fail_after(TEST_TIMEOUT_S):
            while True:  # the idle ones are let go as the server notices they closed
                response = await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
                if response:
                    assert status_of(response) == 200
                    break
                await trio.sleep(0.01)


async def test_a_taken_port_is_an_os_error(registry: CollectorRegistry) -> None:
    async with serving(registry) as port:
        with pytest.raises(OSError):
            await serve_metrics(registry, port)
