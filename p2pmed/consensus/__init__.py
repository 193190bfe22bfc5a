"""PBFT (Castro & Liskov) as a pure state machine: the replica, its messages and certificates.

The replica does no I/O: it takes messages and the time as inputs and returns
actions (send, persist, commit, set a timer), so the same code runs in the
seeded simulator and in the daemon. ``replica``'s docstring is the theory of
operation; ``view_phase`` tabulates the view-change transitions and ``timers``
holds the liveness timers. May import only the foundation and ``p2pmed.ledger``.
"""

from p2pmed.consensus.view_phase import ViewPhase

__all__ = ["ViewPhase"]
