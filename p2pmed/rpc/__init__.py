"""The node's local JSON-RPC 2.0 interface: a server on a Unix socket and the CLI's client.

Generic: it knows nothing of the ledger. The node builds a ``{name: Method}``
table and runs ``RpcServer(socket_path, methods).run`` in its nursery; the CLI
uses ``RpcClient``. ``server`` explains the connection model and limits,
``protocol`` the wire format, ``params`` how methods declare their parameters,
``errors`` the error codes, ``socket_file`` how the socket is kept private.
"""

from p2pmed.rpc.client import NodeNotRunning, RpcClient, Subscription
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param
from p2pmed.rpc.server import UNSUBSCRIBE, RpcCounters, RpcServer
from p2pmed.rpc.socket_file import RpcSocketInUse

__all__ = [
    "UNSUBSCRIBE",
    "ErrorCode",
    "Method",
    "NodeNotRunning",
    "Param",
    "RpcClient",
    "RpcCounters",
    "RpcError",
    "RpcServer",
    "RpcSocketInUse",
    "Subscription",
]
