"""Planted bugs: research controls that prove a sweep finds, shrinks and replays a real bug.

Test-only. ``P2PMED_TEST_WEAK_QUORUM=1`` in the environment makes every
sim-mode run in the process count f + 1 votes as a quorum instead of 2f + 1,
so two sides of a partition can both commit and fork. ``sim run`` and
``sim sweep`` honour it, every report made under it says so in
``planted_bug``, and the replay commands a sweep prints carry it. Never set it
for a run whose results matter.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from p2pmed import quorum

__all__ = ["WEAK_QUORUM_ENV", "planted_quorum", "replay_prefix"]

WEAK_QUORUM_ENV = "P2PMED_TEST_WEAK_QUORUM"


def planted_quorum(nodes: int, environ: Mapping[str, str] = os.environ) -> int | None:
    """The weakened quorum for ``nodes`` replicas if the planted bug is on, else None."""
    if environ.get(WEAK_QUORUM_ENV) != "1":
        return None
    return quorum.weak_quorum_size(nodes)


def replay_prefix(environ: Mapping[str, str] = os.environ) -> str:
    """What a printed replay command must start with to plant the same bug."""
    return f"{WEAK_QUORUM_ENV}=1 " if environ.get(WEAK_QUORUM_ENV) == "1" else ""
