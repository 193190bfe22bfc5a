"""RPC methods and the parameters they declare, checked before a handler runs.

A method lists its parameters by name, in order, each with its JSON type::

    Method(get_block, {"height": int, "verbose": Param(bool, optional=True, default=False)})

Types: ``str``; ``int`` (a JSON integer within signed 64 bits: not ``1.0``, not
``true``, not a 5,000-digit number that would fail later in SQLite); ``bool``;
``bytes`` (a hex string on the wire, even length, no prefix; ``bytes`` for the
handler). A bare type is a required parameter. ``Param(type, optional=True,
default=...)`` may be left out or sent as ``null``; the handler then gets the
default.

A request gives params as an object (by name) or an array (by position, in
declaration order), or leaves them out. Unknown names, surplus positions,
missing or mistyped parameters are ``INVALID_PARAMS`` errors whose message names
the method and the parameter and says what was expected, e.g.
``chain.getBlock: parameter "height": expected an integer, got a string``.

The handler receives a dict holding every declared parameter. Nothing more:
no nested schemas, no coercion. A handler that needs further checks (a height
not above the tip) raises ``RpcError(ErrorCode.INVALID_PARAMS, ...)`` itself.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from p2pmed.rpc.errors import ErrorCode, RpcError

__all__ = ["Handler", "Method", "Param", "bind_params", "did_you_mean", "shorten"]

Handler = Callable[[dict[str, Any]], Any]
"""``async def handler(params) -> result`` for a plain method. For a subscription,
an async generator function, or an async function returning an async iterator."""

INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1

_EXPECTED = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    bytes: 'hex-encoded bytes (a string like "0a1b")',
}
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_ABSENT = object()
NAME_ECHO_MAX = 100  # characters of a client's unknown name quoted back or compared to known ones


@dataclasses.dataclass(frozen=True)
class Param:
    """One declared parameter: its type and whether (and with what) it may be left out."""

    type: type
    optional: bool = False
    default: Any = None

    def __post_init__(self) -> None:
        if self.type not in _EXPECTED:
            raise TypeError(f"parameter type must be one of str, int, bool, bytes; got {self.type!r}")


@dataclasses.dataclass(frozen=True)
class Method:
    """A handler and its declared parameters.

    ``subscription=True`` makes it a subscription: the server answers the call
    with a subscription id, then pushes each item the handler's async iterator
    yields (see ``p2pmed.rpc.server``). Checks that should fail the call itself
    (an unknown starting height) belong in an async function that does them and
    then returns the iterator: the body of an async generator only starts after
    the id has been sent, so its errors end the subscription instead.
    """

    handler: Handler
    params: Mapping[str, type | Param] = dataclasses.field(default_factory=dict)
    subscription: bool = False

    def __post_init__(self) -> None:
        declared = {name: spec if isinstance(spec, Param) else Param(spec) for name, spec in self.params.items()}
        object.__setattr__(self, "params", MappingProxyType(declared))

    def bind(self, method: str, params: Any) -> dict[str, Any]:
        """The handler's params dict from a request's ``params`` member (see ``bind_params``)."""
        return bind_params(method, self.params, params)  # type: ignore[arg-type]  # normalized in __post_init__


def bind_params(method: str, declared: Mapping[str, Param], params: Any) -> dict[str, Any]:
    """Check a request's ``params`` member (absent: ``None``) against the declared
    parameters and return the handler's dict, defaults filled in.

    ``method`` is the name the method is registered under, for the messages.
    Raises ``RpcError(INVALID_PARAMS)``.
    """
    if params is None:
        given: dict[str, Any] = {}
    elif isinstance(params, list):
        if len(params) > len(declared):
            count = f"{len(declared)} parameter{'' if len(declared) == 1 else 's'}"
            raise _invalid(f"{method}: takes at most {count}, got {len(params)}")
        given = dict(zip(declared, params, strict=False))  # params may be fewer: the rest are optional
    elif isinstance(params, dict):
        given = params
        for name in given:
            if name not in declared:
                accepted = ", ".join(declared) or "none"
                hint = did_you_mean(name, declared) or f" (it takes: {accepted})"
                raise _invalid(f'{method}: unknown parameter "{shorten(name)}"{hint}')
    else:
        raise _invalid(f"{method}: params must be an object or an array, got {_json_type(params)}")
    return {name: _check(method, name, param, given.get(name, _ABSENT)) for name, param in declared.items()}


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``'; did you mean "x"?'`` for the closest of ``known`` to ``name``, or ``""``.

    Names longer than any real one are not compared: difflib would take most of
    a second over a megabyte-long name, blocking the whole server.
    """
    if len(name) > NAME_ECHO_MAX:
        return ""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def shorten(name: str) -> str:
    """A client's name, cut short enough to quote in an error message."""
    return name if len(name) <= NAME_ECHO_MAX else name[:NAME_ECHO_MAX] + "..."


def _check(method: str, name: str, param: Param, value: Any) -> Any:
    if param.optional and (value is None or value is _ABSENT):
        return param.default
    if value is _ABSENT:
        raise _invalid(f'{method}: missing parameter "{name}" ({_EXPECTED[param.type]})')
    problem = _problem(param.type, value)
    if problem:
        raise _invalid(f'{method}: parameter "{name}": expected {_EXPECTED[param.type]}, got {problem}')
    return bytes.fromhex(value) if param.type is bytes else value


def _problem(expected: type, value: Any) -> str:
    """What is wrong with ``value`` as the ``expected`` type, or ``""`` if nothing."""
    if expected is bool:
        return "" if isinstance(value, bool) else _json_type(value)
    if expected is int:
        if type(value) is not int:
            return _json_type(value)
        return "" if INT_MIN <= value <= INT_MAX else "an integer outside the signed 64-bit range"
    if not isinstance(value, str):
        return _json_type(value)
    if expected is bytes:
        return "" if _HEX.fullmatch(value) else "a string that is not an even number of hex digits"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # JSON "\ud800" decodes to a lone surrogate
        return "a string with an unpaired surrogate"
    return ""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _invalid(message: str) -> RpcError:
    return RpcError(ErrorCode.INVALID_PARAMS, message)
