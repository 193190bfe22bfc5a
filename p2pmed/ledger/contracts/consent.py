"""Patient-controlled consent, shaped after FHIR R5 ``Consent.provision``.

A patient (the transaction's sender) grants a grantee (a person's or an
organisation's public key, FHIR ``provision.actor``) access to data categories
(``provision.class``) for a purpose of use (``provision.purpose``, HL7 v3
PurposeOfUse codes) until an expiry (``provision.period.end``). Only the patient
can grant or revoke their own consent; a revoke takes effect from the block
that orders it. One state entry per (patient, grantee, category), so a later
grant for the same category replaces the earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmed.crypto import PUBLIC_KEY_SIZE
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = ["CATEGORIES", "PURPOSES", "ConsentGrant", "ConsentProvision", "ConsentRevoke", "TX_TYPES", "valid_consent"]

CATEGORIES = frozenset(
    {"condition", "genomics", "imaging", "laboratory", "medication", "mental-health", "procedure", "vital-signs"}
)
PURPOSES = frozenset({"TREAT", "ETREAT", "HRESCH", "CLINTRL", "PUBHLTH", "HPAYMT", "PATRQT"})
CATEGORIES_MAX = len(CATEGORIES)


@dataclass(frozen=True)
class ConsentGrant:
    grantee: bytes
    categories: tuple[str, ...]
    purpose: str
    expires_ms: int


@dataclass(frozen=True)
class ConsentRevoke:
    grantee: bytes
    categories: tuple[str, ...]


@dataclass(frozen=True)
class ConsentProvision:
    """A consent in force, as the ledger keeps it."""

    patient: bytes
    grantee: bytes
    category: str
    purpose: str
    granted_ms: int
    expires_ms: int
    tx_id: bytes


def _key(patient: bytes, grantee: bytes, category: str) -> str:
    return f"consent/{patient.hex()}/{grantee.hex()}/{category}"


def _check_categories(categories: tuple[str, ...]) -> None:
    if not 0 < len(categories) <= CATEGORIES_MAX:
        raise TxRejected(RejectReason.INVALID, f"give 1..{CATEGORIES_MAX} categories")
    unknown = sorted(set(categories) - CATEGORIES)
    if unknown:
        raise TxRejected(RejectReason.INVALID, f"unknown data category {unknown[0]!r}; known: {', '.join(sorted(CATEGORIES))}")
    if len(set(categories)) != len(categories):
        raise TxRejected(RejectReason.INVALID, "a category is listed twice")


def _check_grantee(grantee: bytes, patient: bytes) -> None:
    if len(grantee) != PUBLIC_KEY_SIZE:
        raise TxRejected(RejectReason.INVALID, f"grantee must be a {PUBLIC_KEY_SIZE}-byte public key")
    if grantee == patient:
        raise TxRejected(RejectReason.INVALID, "a patient does not need consent to their own records")


def apply_grant(state: StateOverlay, context: TxContext, grant: ConsentGrant) -> None:
    _check_grantee(grant.grantee, context.sender)
    _check_categories(grant.categories)
    if grant.purpose not in PURPOSES:
        raise TxRejected(RejectReason.INVALID, f"unknown purpose {grant.purpose!r}; known: {', '.join(sorted(PURPOSES))}")
    if grant.expires_ms <= context.time_ms:
        raise TxRejected(RejectReason.INVALID, "consent would already have expired at this block's time")
    for category in grant.categories:
        provision = ConsentProvision(
            context.sender, grant.grantee, category, grant.purpose, context.time_ms, grant.expires_ms, context.tx_id
        )
        state.put(_key(context.sender, grant.grantee, category), provision)


def apply_revoke(state: StateOverlay, context: TxContext, revoke: ConsentRevoke) -> None:
    _check_grantee(revoke.grantee, context.sender)
    _check_categories(revoke.categories)
    keys = [_key(context.sender, revoke.grantee, category) for category in revoke.categories]
    if all(state.state_get(key) is None for key in keys):
        raise TxRejected(RejectReason.INVALID, "no consent in force for this grantee and these categories")
    for key in keys:
        state.delete(key)


def valid_consent(state: StateReader, patient: bytes, grantee: bytes, category: str, now_ms: int) -> ConsentProvision | None:
    """The consent that lets ``grantee`` see ``patient``'s ``category`` data at ``now_ms``, if any."""
    provision = StateOverlay(state).get(ConsentProvision, _key(patient, grantee, category))
    if provision is None or provision.expires_ms <= now_ms:
        return None
    return provision


TX_TYPES = (
    TxType("consent.grant", ConsentGrant, apply_grant),
    TxType("consent.revoke", ConsentRevoke, apply_revoke),
)
