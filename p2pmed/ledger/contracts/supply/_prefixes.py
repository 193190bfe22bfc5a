"""GS1 company prefixes: who may commission which GTINs.

A GTIN-14 is an indicator digit, the brand owner's GS1 company prefix (6..12 digits,
licensed by a GS1 member organisation), an item reference and a check digit. The ledger
holds which organisation each prefix was granted to, and ``supply.commission`` is refused
for a GTIN whose digits 2..13 do not start with a prefix granted to the sender: a rogue
manufacturer cannot commission, and so cannot come to own, another brand's GTINs.

Nobody claims a prefix for itself. ``supply.prefix.grant`` names a manufacturer in force
and a prefix, and takes effect when

- a ``regulator`` organisation in force sends it (the role that vouches for licences), or
- 2f+1 validators send the same grant (each one a vote, as organisations are admitted),
  so that f Byzantine validators alone grant nothing.

``supply.prefix.revoke`` takes a prefix back, by the same authority (a regulator at once,
2f+1 identical validator votes otherwise): a grant made in error, or a licence GS1 withdrew.
Packs already commissioned stay their brand owner's; nobody commissions new ones under the
prefix until it is granted again.

GS1 allocates company prefixes so that none is the start of another (the digits read
left to right say where a prefix ends); a grant keeps that true on the ledger, refusing
a prefix that starts a granted one or that a granted one starts, whoever holds it. Rules
only look keys up, so each grant also counts itself under the shorter prefixes it extends
(``_under_key``): whether a prefix starts a granted one is then one lookup too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from p2pmed.ledger.contracts.identity import organisation_in_force, organisation_of
from p2pmed.ledger.contracts.supply._codes import short
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader
from p2pmed.ledger.votes import quorum_agrees

__all__ = [
    "GRANTOR_KIND",
    "PREFIX_LENGTH_MAX",
    "PREFIX_LENGTH_MIN",
    "PREFIX_TX_TYPES",
    "PrefixGrant",
    "PrefixRevoke",
    "prefix_of",
    "prefix_owner",
    "prefix_problem",
    "require_prefix",
]

PREFIX_LENGTH_MIN = 6
PREFIX_LENGTH_MAX = 12
GRANTOR_KIND = "regulator"
_PREFIX = re.compile(r"[0-9]{6,12}")


@dataclass(frozen=True)
class PrefixGrant:
    """Grant the GS1 company ``prefix`` to the manufacturer whose id is ``organisation``."""

    organisation: bytes
    prefix: str


@dataclass(frozen=True)
class PrefixRevoke:
    """Take the GS1 company ``prefix`` back from whoever holds it."""

    prefix: str


def _prefix_key(prefix: str) -> str:
    return f"supply/prefix/{prefix}"


def _under_key(prefix: str) -> str:
    """How many granted prefixes are longer than ``prefix`` and start with it."""
    return f"supply/prefix-under/{prefix}"


def _vote_key(action: str, prefix: str, validator: bytes) -> str:
    return f"supply/prefix-{action}-vote/{prefix}/{validator.hex()}"


def prefix_problem(prefix: str) -> str | None:
    if not _PREFIX.fullmatch(prefix):
        return f"a GS1 company prefix is {PREFIX_LENGTH_MIN}..{PREFIX_LENGTH_MAX} digits, not {prefix[:40]!r}"
    return None


def prefix_owner(state: StateReader, prefix: str) -> bytes | None:
    """The organisation the prefix was granted to, if any."""
    return StateOverlay(state).get(bytes, _prefix_key(prefix))


def prefix_of(state: StateReader, gtin: str) -> tuple[str, bytes] | None:
    """The granted company prefix a GTIN-14 carries, and its holder; None if it carries none."""
    company = gtin[1:-1]
    for length in range(PREFIX_LENGTH_MIN, PREFIX_LENGTH_MAX + 1):
        owner = prefix_owner(state, company[:length])
        if owner is not None:
            return company[:length], owner
    return None


def require_prefix(state: StateReader, manufacturer: bytes, gtin: str) -> None:
    """Refuse unless ``gtin`` (a valid GTIN-14) carries a company prefix granted to ``manufacturer``."""
    found = prefix_of(state, gtin)
    if found is None:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"GTIN {gtin} carries no GS1 company prefix granted on this ledger: a regulator or 2f+1 validators"
            " grant the brand owner its prefix (supply.prefix.grant) before it commissions",
        )
    prefix, owner = found
    if owner != manufacturer:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"GTIN {gtin} carries company prefix {prefix}, granted to {short(owner)}: only it commissions the GTIN",
        )


def _check_grant(state: StateOverlay, grant: PrefixGrant) -> None:
    problem = prefix_problem(grant.prefix)
    if problem is not None:
        raise TxRejected(RejectReason.INVALID, problem)
    holder = organisation_in_force(state, grant.organisation)
    if holder is None or holder.kind != "manufacturer":
        raise TxRejected(RejectReason.INVALID, "a company prefix is granted to a manufacturer in force, named by id")
    owner = prefix_owner(state, grant.prefix)
    if owner is not None:
        reason = RejectReason.DUPLICATE if owner == grant.organisation else RejectReason.INVALID
        raise TxRejected(reason, f"company prefix {grant.prefix} was already granted to {short(owner)}")
    for length in range(PREFIX_LENGTH_MIN, len(grant.prefix)):
        shorter = prefix_owner(state, grant.prefix[:length])
        if shorter is not None:
            raise TxRejected(
                RejectReason.INVALID,
                f"company prefix {grant.prefix[:length]}, granted to {short(shorter)}, starts {grant.prefix}:"
                " prefixes never overlap",
            )
    if state.state_get(_under_key(grant.prefix)) is not None:
        raise TxRejected(
            RejectReason.INVALID, f"{grant.prefix} starts a company prefix already granted: prefixes never overlap"
        )


def _decided(state: StateOverlay, context: TxContext, action: str, prefix: str, organisation: bytes) -> bool:
    """Whether the sender decides alone (a regulator), else record its vote: True once 2f+1 validators voted
    the same ``action`` on ``prefix`` for ``organisation``."""
    sender = organisation_of(state, context.sender)
    if sender is not None and sender.kind == GRANTOR_KIND:
        return True
    return quorum_agrees(
        state, context.validators, context.sender, lambda validator: _vote_key(action, prefix, validator), organisation
    )


def _require_authority(state: StateOverlay, context: TxContext, does: str) -> None:
    sender = organisation_of(state, context.sender)
    if (sender is None or sender.kind != GRANTOR_KIND) and context.sender not in context.validators:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED, f"only a {GRANTOR_KIND} or the validators {does} company prefixes"
        )


def _count_under(state: StateOverlay, prefix: str, change: int) -> None:
    for length in range(PREFIX_LENGTH_MIN, len(prefix)):
        count = (state.get(int, _under_key(prefix[:length])) or 0) + change
        assert count >= 0, "a revoked prefix was counted when it was granted"
        if count:
            state.put(_under_key(prefix[:length]), count)
        else:
            state.delete(_under_key(prefix[:length]))


def apply_grant(state: StateOverlay, context: TxContext, grant: PrefixGrant) -> None:
    _require_authority(state, context, "grant")
    _check_grant(state, grant)
    if _decided(state, context, "grant", grant.prefix, grant.organisation):
        state.put(_prefix_key(grant.prefix), grant.organisation)
        _count_under(state, grant.prefix, 1)


def apply_revoke(state: StateOverlay, context: TxContext, revoke: PrefixRevoke) -> None:
    _require_authority(state, context, "revoke")
    problem = prefix_problem(revoke.prefix)
    if problem is not None:
        raise TxRejected(RejectReason.INVALID, problem)
    owner = prefix_owner(state, revoke.prefix)
    if owner is None:
        raise TxRejected(RejectReason.INVALID, f"company prefix {revoke.prefix} is not granted")
    if _decided(state, context, "revoke", revoke.prefix, owner):
        state.delete(_prefix_key(revoke.prefix))
        _count_under(state, revoke.prefix, -1)


PREFIX_TX_TYPES = (
    TxType("supply.prefix.grant", PrefixGrant, apply_grant),
    TxType("supply.prefix.revoke", PrefixRevoke, apply_revoke),
)
