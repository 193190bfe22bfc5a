"""Where a replica stands in its view (Castro & Liskov §4.4): one number and one phase.

A replica is always in exactly one view, ``Replica.view``, and in one of two phases of it:

- ``ACTIVE``: the view has started (it is view 0, or the replica accepted or sent its
  NEW-VIEW). The replica runs the normal case: it accepts pre-prepares and votes of this
  view and, as its primary, proposes. A backup with pending transactions runs the request timer.
- ``CHANGING``: the replica sent VIEW-CHANGE for this view and waits for its NEW-VIEW. It
  accepts no pre-prepare or vote, proposes nothing, retransmits its VIEW-CHANGE and follows
  blocks decided without it. The view-change timer runs once a quorum wants the view.

The transitions, with the view number they lead to:

    from      event                                                to
    ACTIVE    request timer expired, and a probe for blocks        CHANGING  v + 1
              brought nothing in time
    ACTIVE    f+1 peers want or vote in views above v              CHANGING  a view v' > v they want
    ACTIVE    a valid NEW-VIEW for a view v' > v                   ACTIVE    v'
    CHANGING  view-change timer expired                            CHANGING  v + 1
    CHANGING  f+1 peers want or vote in views above v              CHANGING  a view v' > v they want
    CHANGING  q VIEW-CHANGEs for v, and this replica is v's        ACTIVE    v  (it sends NEW-VIEW)
              primary
    CHANGING  a valid NEW-VIEW for a view v' >= v                  ACTIVE    v'

Any other event leaves view and phase as they are: the view number never decreases, and a
view is entered (CHANGING -> ACTIVE, or ACTIVE -> ACTIVE of a later view) only with a NEW-VIEW.
"""

from __future__ import annotations

import enum

__all__ = ["ViewPhase"]


class ViewPhase(enum.Enum):
    """The phase of the replica's current view; the value is how logs and reports spell it."""

    ACTIVE = "active"
    CHANGING = "changing"
