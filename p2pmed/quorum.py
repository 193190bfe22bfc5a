"""Vote-counting math for n replicas, kept apart so it can be read and tested alone.

PBFT needs any two quorums to intersect in at least f+1 replicas, so that every
pair of quorums shares an honest one: 2q - n >= f + 1, hence
q = floor((n + f) / 2) + 1. For n = 3f+1 that is the familiar 2f+1; for other n
it stays safe (n = 5 tolerates f = 1 and needs 4).
"""

from __future__ import annotations

__all__ = ["fault_tolerance", "quorum_size", "weak_quorum_size"]


def fault_tolerance(n: int) -> int:
    """The largest f with n >= 3f + 1."""
    assert n >= 1, "a network needs at least one replica"
    return (n - 1) // 3


def quorum_size(n: int) -> int:
    """Votes that make a certificate: any two such sets share an honest replica."""
    return (n + fault_tolerance(n)) // 2 + 1


def weak_quorum_size(n: int) -> int:
    """Votes that include at least one honest replica: f + 1."""
    return fault_tolerance(n) + 1
