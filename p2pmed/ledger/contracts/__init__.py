"""The healthcare rules, one module per domain; ``ALL_TX_TYPES`` is what a chain runs."""

from p2pmed.ledger.contracts import consent, identity, membership, probe, records, supply, trials
from p2pmed.ledger.rules import TxType

ALL_TX_TYPES: tuple[TxType, ...] = (
    *identity.TX_TYPES,
    *membership.TX_TYPES,
    *consent.TX_TYPES,
    *records.TX_TYPES,
    *trials.TX_TYPES,
    *supply.TX_TYPES,
    *probe.TX_TYPES,
)
