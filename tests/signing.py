"""Signing consensus messages as a validator would, honest or Byzantine: shared by the tests
that build messages by hand."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from p2pmed.consensus.messages import Checkpoint, NewView, ViewChange, Vote, signing_payload
from p2pmed.crypto import SigningKey

Signed = TypeVar("Signed", Vote, Checkpoint, ViewChange, NewView)


def signed(message: Signed, key: SigningKey, chain_id: str) -> Signed:
    """``message`` with its signature made by ``key`` over everything else in it."""
    unsigned = dataclasses.replace(message, signature=bytes(64))
    return dataclasses.replace(message, signature=key.sign(unsigned.domain, chain_id, signing_payload(unsigned)))
