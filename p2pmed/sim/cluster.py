"""Seeds on a Dask distributed cluster: the pool a sweep uses instead of local processes.

``sim sweep --cluster ADDRESS`` connects to a Dask scheduler the operator runs
(``dask scheduler`` and ``dask worker ADDRESS`` on each machine, every one with
the same p2pmed installed) and submits one task per seed, or per failure to
shrink. Each task carries the parsed scenario (workers need no files) and runs
the same function a local process runs, so the outcomes, the summary and the
shrunk scenarios are the ones a local sweep gives.

Determinism across machines rests on two checks each task makes on its worker
before it runs: the worker's p2pmed sources hash to the client's
(``code_fingerprint``; another version would simulate something else), and
its environment does not plant the test-only weak quorum the client did not ask
for (``p2pmed.sim.planted``). A task that fails either raises ``ClusterError``
and the sweep stops with its message.

Trust. A Dask client unpickles what the scheduler sends back, so whoever runs
the scheduler or a worker can run code on the machine that sweeps: connect only
to a cluster you control, over ``tls://`` with Dask's TLS settings when it
spans networks. The address is the operator's own input; ``parse_address``
only refuses what cannot be a scheduler address, with the reason.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from p2pmed.sim.planted import WEAK_QUORUM_ENV

__all__ = ["CONNECT_TIMEOUT_S", "ClusterError", "ClusterPool", "code_fingerprint", "connect", "parse_address"]

CONNECT_TIMEOUT_S = 30
"""How long to wait for the scheduler to answer, and then for a first worker to join it."""

_ADDRESS = re.compile(r"(?:(?P<scheme>tcp|tls)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})")

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class ClusterError(Exception):
    """The cluster cannot run the sweep (unreachable, no workers, other code on a worker)."""


class Future(Protocol[R_co]):
    def result(self) -> R_co: ...


def parse_address(text: str) -> str:
    """``tcp://host:port``, ``tls://host:port`` or ``host:port`` (tcp), as Dask takes it;
    raises ``ValueError`` saying what is wrong."""
    match = _ADDRESS.fullmatch(text)
    if match is None:
        raise ValueError(
            f"expected a Dask scheduler address tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT; got {text!r}"
        )
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 1..65535 in {text!r}")
    return f"{match['scheme'] or 'tcp'}://{match['host']}:{port}"


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 over the p2pmed package's Python sources (paths and contents, in path order)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix().encode()
        content = path.read_bytes()
        digest.update(b"%d:%s%d:" % (len(relative), relative, len(content)) + content)
    return digest.hexdigest()


def _checked(fingerprint: str, planted: bool, task: Callable[..., R], *arguments: Any) -> R:
    """Run ``task`` on a worker, once it is known to simulate exactly what the client would."""
    if code_fingerprint() != fingerprint:
        raise ClusterError(
            f"a worker runs other p2pmed code (sources {code_fingerprint()[:12]}, the client's {fingerprint[:12]}): "
            "install the same version on every worker"
        )
    if not planted and os.environ.get(WEAK_QUORUM_ENV) == "1":
        raise ClusterError(f"a worker's environment sets {WEAK_QUORUM_ENV}=1 (a planted bug): unset it there")
    return task(*arguments)


class ClusterPool:
    """Submits tasks to a Dask client as ``ProcessPoolExecutor.submit`` does locally."""

    def __init__(self, client: Any, planted: bool) -> None:
        self._client = client
        self._planted = planted

    def submit(self, task: Callable[..., R], *arguments: Any) -> Future[R]:
        return _ClusterFuture(
            self._client.submit(_checked, code_fingerprint(), self._planted, task, *arguments, pure=False)
        )


class _ClusterFuture(Future[R]):
    """A Dask future whose loss (a worker killed, the scheduler gone) is a ``ClusterError``;
    what the task itself raises is raised as a local process would raise it."""

    def __init__(self, future: Any) -> None:
        self._future = future

    def result(self) -> R:
        import distributed

        try:
            result: R = self._future.result()
        except (distributed.KilledWorker, distributed.client.FutureCancelledError, OSError) as error:
            raise ClusterError(f"the cluster lost a task: {error}") from None
        return result


@contextmanager
def connect(address: str, planted: bool) -> Iterator[ClusterPool]:
    """A pool on the scheduler at ``address`` (from ``parse_address``) with at least one
    worker; ``planted``: whether the client plants the weak quorum (then every task says so)."""
    try:
        import distributed
    except ImportError:
        raise ClusterError("--cluster needs Dask distributed: pip install 'p2pmed[cluster]'") from None
    client_class: Any = distributed.Client  # untyped
    try:
        client = client_class(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {error}") from None
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError(
                f"no worker joined the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s"
            ) from None
        yield ClusterPool(client, planted)
    finally:
        client.close()
