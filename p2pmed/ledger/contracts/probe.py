"""``load.probe``: a transaction that changes nothing but its sender's nonce.

``p2pmed load``, the benchmark and the fault-injection harness submit these to
measure ordering and commit on a live network without touching health data or
needing registered identities. They cost what any transaction costs (a
signature check, a nonce, block space) and give a sender nothing it could not
get by sending a transaction the rules refuse, which also takes a nonce.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay

__all__ = ["PROBE_TYPE", "TX_TYPES", "Probe"]

LABEL_LENGTH_MAX = 64
PROBE_TYPE = "load.probe"


@dataclass(frozen=True)
class Probe:
    label: str


def apply_probe(state: StateOverlay, context: TxContext, probe: Probe) -> None:
    if len(probe.label) > LABEL_LENGTH_MAX:
        raise TxRejected(RejectReason.INVALID, f"a probe label has at most {LABEL_LENGTH_MAX} characters")


TX_TYPES = (TxType(PROBE_TYPE, Probe, apply_probe),)
