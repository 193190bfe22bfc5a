"""The server's Unix socket file: private from birth, never stolen from a live server.

Who may connect to a Unix socket is decided by the file's mode at ``connect``
time, and a connection made once stays open after a later ``chmod``. So the
file must never exist with a looser mode, not even for a moment:

- ``bind`` then ``chmod`` leaves a window in which the file has the process's
  default mode (often 0755 or 0775); another local user who connects then keeps
  a working connection to the node.
- ``os.umask(0o177)`` around ``bind`` closes that window, but the umask is
  per process, not per thread: a file or directory created meanwhile by another
  thread (trio's worker threads, a library's) would silently get the wrong mode.

What we do instead: ``bind`` in a fresh private directory (``mkdtemp``: mode
0700, next to the final path, so on the same file system), ``chmod`` the socket
to 0600, ``listen``, then hard-link it to the final path and unlink the staging
name. Nobody else can reach the socket inside the private directory, and it
appears at its real name already 0600 and already listening (so a client, or a
second server probing for a live one, never sees it refuse a connection).

``os.link`` fails if the final path exists, where ``rename`` would silently
replace it; that gives the takeover rule. An existing socket is probed with
``connect``: refused means its server died without cleaning up, so the stale
file is removed and the link retried; accepted means another server is live,
and we refuse with ``RpcSocketInUse``. A file that is not a socket is never
touched. Two servers starting at the same instant on one stale file could still
both pass the probe; the node's home directory is not meant to be run twice,
and this check is there to catch the operator's mistake, not that race.

On exit the file is removed only if it is still ours (same device and inode).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import structlog
import trio

__all__ = ["SOCKET_PATH_BYTES_MAX", "RpcSocketInUse", "listen_private", "remove_if_ours"]

SOCKET_PATH_BYTES_MAX = 107  # sun_path is 108 bytes on Linux, one of them the terminating NUL
PROBE_TIMEOUT = 2.0
_STAGING_NAME = "s"
_STAGING_EXTRA_BYTES = len("/.XXXXXXXX/s")  # mkdtemp(prefix=".") adds 8 random characters

log = structlog.get_logger(__name__)

SocketIdentity = tuple[int, int]  # (st_dev, st_ino)


class RpcSocketInUse(Exception):
    """Another server is live on the socket path."""


async def listen_private(path: Path, backlog: int) -> tuple[trio.SocketListener, SocketIdentity]:
    """A listener on ``path``, mode 0600, and the identity to pass to ``remove_if_ours``."""
    for candidate, length in (
        (path, len(os.fsencode(path))),
        (path.parent, len(os.fsencode(path.parent)) + _STAGING_EXTRA_BYTES),
    ):
        if length > SOCKET_PATH_BYTES_MAX:
            raise ValueError(
                f"socket path too long: {candidate} needs {length} bytes as a Unix socket path, "
                f"at most {SOCKET_PATH_BYTES_MAX} are allowed; use a shorter directory"
            )
    staging_directory = Path(tempfile.mkdtemp(prefix=".", dir=path.parent))
    staging = staging_directory / _STAGING_NAME
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        await sock.bind(os.fspath(staging))
        os.chmod(staging, 0o600)
        sock.listen(backlog)
        staged = os.lstat(staging)
        await _publish(staging, path)
    except BaseException:
        sock.close()
        raise
    finally:
        staging.unlink(missing_ok=True)
        staging_directory.rmdir()
    return trio.SocketListener(sock), (staged.st_dev, staged.st_ino)


def remove_if_ours(path: Path, identity: SocketIdentity) -> None:
    try:
        current = os.lstat(path)
    except FileNotFoundError:
        return
    if (current.st_dev, current.st_ino) == identity:
        path.unlink(missing_ok=True)


async def _publish(staging: Path, path: Path) -> None:
    for _ in range(3):  # each retry follows the removal of a stale file
        try:
            os.link(staging, path)
            return
        except FileExistsError:
            await _remove_if_stale(path)
    raise RpcSocketInUse(f"{path} keeps reappearing: is another server starting on it?")


async def _remove_if_stale(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket; refusing to replace it")
    if await _answers(path):
        raise RpcSocketInUse(f"another server is already listening on {path}")
    log.info("removing stale rpc socket", path=str(path))
    path.unlink(missing_ok=True)


async def _answers(path: Path) -> bool:
    with trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM) as probe:
        with trio.move_on_after(PROBE_TIMEOUT):
            try:
                await probe.connect(os.fspath(path))
            except (ConnectionRefusedError, FileNotFoundError):
                return False
            except PermissionError:
                raise PermissionError(f"{path} belongs to another user; refusing to replace it") from None
            return True
    return True  # no answer in time: a live server with a full backlog
