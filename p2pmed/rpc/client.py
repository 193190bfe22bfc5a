"""A small blocking JSON-RPC client for the CLI: one call at a time over the node's socket.

``RpcClient.call`` keeps one connection open between calls and reconnects after
any failure (a timeout leaves the connection in an unknown state, so it is
closed rather than reused). ``subscribe`` opens a connection of its own, since
its notifications may arrive at any moment; closing that ``Subscription``
closes the connection, which ends the subscription on the server.

``bytes`` params are sent as hex strings, the form ``Param(bytes)`` expects;
results come back as plain JSON values. Not thread-safe: one client per thread.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from p2pmed.rpc.errors import RpcError

__all__ = ["NodeNotRunning", "RpcClient", "RpcError", "Subscription"]

REPLY_SIZE_MAX = 64 << 20
_READ_CHUNK = 64 * 1024


class NodeNotRunning(ConnectionError):
    """Nothing listens on the socket: no file there, or a stale one left by a dead node."""

    def __init__(self, socket_path: Path) -> None:
        super().__init__(f"no node is running at {socket_path}: start it with `p2pmed node --home DIR`")
        self.socket_path = socket_path


class RpcClient:
    """Calls into the server at ``socket_path``, each bounded by ``timeout`` seconds (``None``: no bound)."""

    def __init__(self, socket_path: Path | str, timeout: float | None = 30.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._connection: _Connection | None = None

    def call(self, method: str, /, **params: Any) -> Any:
        """The method's result; raises ``RpcError``, ``NodeNotRunning``, ``TimeoutError``
        or ``ConnectionError`` (the node closed the connection without answering)."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        if self._connection is None:
            self._connection = _Connection(self.socket_path, deadline)
        try:
            return self._connection.request(next(self._ids), method, params, deadline)
        except BaseException:
            self.close()
            raise

    def subscribe(self, method: str, /, **params: Any) -> Subscription:
        """Start a subscription; iterate the result to get its items as they come."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        connection = _Connection(self.socket_path, deadline)
        try:
            subscription = connection.request(next(self._ids), method, params, deadline)
        except BaseException:
            connection.close()
            raise
        return Subscription(connection, method, subscription)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Subscription:
    """The items of one subscription, in order, as an iterator.

    Iterating waits as long as it takes for the next item; ``next(timeout_s)``
    waits at most that long, then raises ``TimeoutError`` (nothing is lost: a
    later call picks up where it left off). It stops when the server ends the
    subscription, raises ``RpcError`` if it ended with an error and
    ``ConnectionError`` if the connection was lost (the node stopped, or
    dropped this client for not reading fast enough).
    """

    def __init__(self, connection: _Connection, method: str, subscription: Any) -> None:
        self.id = subscription
        self.method = method
        self._connection: _Connection | None = connection

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout_s: float | None = None) -> Any:
        """The next item; ``StopIteration`` once the subscription has ended."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._connection is not None:
            message = self._connection.receive(deadline, self.method)
            params = message.get("params")
            if message.get("method") != self.method or not isinstance(params, dict):
                continue
            if params.get("subscription") != self.id:
                continue
            if "result" in params:
                return params["result"]
            self.close()
            if "error" in params:
                raise RpcError.from_json(params["error"])
        raise StopIteration

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Connection:
    def __init__(self, socket_path: Path, deadline: float | None) -> None:
        self.socket_path = socket_path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._buffer = bytearray()
        try:
            self._socket.settimeout(_remaining(deadline))
            self._socket.connect(os.fspath(socket_path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            self._socket.close()
            raise NodeNotRunning(socket_path) from None
        except TimeoutError:
            self._socket.close()
            raise TimeoutError(f"the node at {socket_path} did not accept a connection in time") from None
        except PermissionError:
            self._socket.close()
            raise PermissionError(
                f"cannot connect to {socket_path}: permission denied (only the user running the node may)"
            ) from None
        except BaseException:
            self._socket.close()
            raise

    def request(self, request_id: int, method: str, params: dict[str, Any], deadline: float | None) -> Any:
        values = {name: _jsonable(value) for name, value in params.items()}
        line = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": values}) + "\n"
        try:
            self._socket.settimeout(_remaining(deadline))
            self._socket.sendall(line.encode())
        except TimeoutError:
            raise TimeoutError(f"the node at {self.socket_path} took too long to accept {method}") from None
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection; its reason, if it gave one, is read below
        while True:
            reply = self.receive(deadline, method)
            if "method" in reply:  # a notification: none are expected here
                continue
            if reply.get("id") not in (request_id, None):  # None: an error about the line or the connection
                raise ConnectionError(f"the node at {self.socket_path} answered another request: {reply!r:.200}")
            if "error" in reply:
                raise RpcError.from_json(reply["error"])
            return reply.get("result")

    def receive(self, deadline: float | None, method: str = "") -> dict[str, Any]:
        """The next JSON object from the server."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > REPLY_SIZE_MAX:
                raise ConnectionError(f"reply from the node at {self.socket_path} larger than {REPLY_SIZE_MAX} bytes")
            try:
                self._socket.settimeout(_remaining(deadline))
                chunk = self._socket.recv(_READ_CHUNK)
            except TimeoutError:
                raise TimeoutError(f"no answer to {method} from the node at {self.socket_path} in time") from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionError(f"the node at {self.socket_path} closed the connection")
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        try:
            message = json.loads(line)
        except ValueError:
            raise ConnectionError(f"malformed line from the node at {self.socket_path}: {line!r:.200}") from None
        if not isinstance(message, dict):
            raise ConnectionError(f"malformed line from the node at {self.socket_path}: {line!r:.200}")
        return message

    def close(self) -> None:
        self._socket.close()


def _jsonable(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes | bytearray) else value


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out")
    return remaining
