"""Strict JSON for documents from outside: what ``json`` accepts, minus its leniencies.

Refused, each with a message that says what is wrong: bytes that are not UTF-8
(a leading byte-order mark is allowed), syntax errors, a key repeated in one
object (``json`` would silently keep the last), ``NaN`` and ``Infinity`` (not
JSON), numbers too long to read, and nesting deeper than a bound (checked
without recursion, and Python's own recursion limit caught). Size limits differ
per format, so callers check them first.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JsonProblem", "loads"]


class JsonProblem(ValueError):
    """Why a document is not strict JSON; the caller adds where it came from."""


def loads(data: bytes | str, depth_max: int) -> Any:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise JsonProblem(f"not UTF-8 text (byte {error.start})") from None
    try:
        value = json.loads(data.removeprefix("\ufeff"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise JsonProblem(f"not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise JsonProblem(f"nested more than {depth_max} levels deep") from None
    except ValueError as error:  # e.g. an integer with more digits than Python will read
        raise JsonProblem(f"not JSON: {error}") from None
    _check_depth(value, depth_max)
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise JsonProblem(f"the key {name[:40]!r} appears twice in one object")
        found[name] = value
    return found


def _no_constant(name: str) -> Any:
    raise JsonProblem(f"{name} is not a JSON number")


def _check_depth(value: Any, depth_max: int) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > depth_max:
                    raise JsonProblem(f"nested more than {depth_max} levels deep")
                stack.append((child, depth + 1))
