"""The error shape shared by every file an operator or researcher writes by hand."""

from __future__ import annotations

__all__ = ["KeyedInputError"]


class KeyedInputError(Exception):
    """A bad input file; ``key`` is the dotted path of the entry at fault ("" for the
    whole file) and ``reason`` says what is wrong and what is expected."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason
