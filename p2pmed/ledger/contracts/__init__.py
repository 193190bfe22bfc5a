"""The healthcare rules, one module per domain; ``ALL_TX_TYPES`` is what a chain runs."""

from p2pmed.ledger.contracts import (
    consent,
    devices,
    identity,
    membership,
    probe,
    records,
    research,
    studies,
    supply,
    trials,
)
from p2pmed.ledger.rules import TxType

ALL_TX_TYPES: tuple[TxType, ...] = (
    *identity.TX_TYPES,
    *membership.TX_TYPES,
    *consent.TX_TYPES,
    *records.TX_TYPES,
    *devices.TX_TYPES,
    *studies.TX_TYPES,
    *research.TX_TYPES,
    *trials.TX_TYPES,
    *supply.TX_TYPES,
    *probe.TX_TYPES,
)
