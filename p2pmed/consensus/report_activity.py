"""A site's activity beyond the audit trail, for a site's compliance report: state records
the bundle proves one by one (``p2pmed.consensus.report_bundle``).

Two kinds, each named by its state key prefix (the contracts' own key layouts):

- ``supply-event``: one entry of a drug pack's history (``supply.PackEvent``) made by the
  site: commissioned, shipped, received, dispensed, decommissioned, reported missing;
- ``trial``: a clinical trial the site sponsors (``trials.Trial``), as it stands: its
  protocol versions, enrolment, results and any outcome-switching flag.

Unlike audit entries these have no per-site index or count on the ledger, so a bundle
proves each record it carries, never that it carries all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2pmed import codec
from p2pmed.ledger.contracts.supply import PackEvent
from p2pmed.ledger.contracts.trials import Trial
from p2pmed.ledger.state import STATE_VALUE_SIZE_MAX

__all__ = ["ACTIVITY_PREFIXES", "Activity", "activity_fields", "decode_activity"]

SUPPLY_EVENT_PREFIX = "supply/event/"
"""``supply._store.event_key``: ``supply/event/<gtin>/<serial, escaped>/<index>``."""
TRIAL_PREFIX = "trial/"
"""``trials._trial_key``: ``trial/<trial id>``."""
ACTIVITY_PREFIXES = (SUPPLY_EVENT_PREFIX, TRIAL_PREFIX)


@dataclass(frozen=True)
class Activity:
    """A proved record, decoded: ``subject`` is the organisation it belongs to."""

    key: str
    kind: str
    subject: bytes
    time_ms: int | None
    """When it happened (None for a trial, which is current state)."""
    value: PackEvent | Trial


def decode_activity(key: str, value: bytes) -> Activity:
    """The record at ``key``; raise ``ValueError`` naming what is wrong."""
    try:
        if key.startswith(SUPPLY_EVENT_PREFIX) and key.count("/") == 4:
            event = codec.decode(PackEvent, value, STATE_VALUE_SIZE_MAX)
            return Activity(key, "supply-event", event.organisation, event.time_ms, event)
        if key.startswith(TRIAL_PREFIX):
            trial = codec.decode(Trial, value, STATE_VALUE_SIZE_MAX)
            if key != TRIAL_PREFIX + trial.trial_id:
                raise ValueError("the trial is not the one its key names")
            return Activity(key, "trial", trial.sponsor, None, trial)
    except codec.CodecError as error:
        raise ValueError(f"malformed: {error}") from None
    raise ValueError(f"{key[:80]!r} is not a supply event or a trial")


def activity_fields(activity: Activity) -> dict[str, Any]:
    """The readable fields of a record in a bundle."""
    value = activity.value
    if isinstance(value, PackEvent):
        gtin, serial = activity.key.removeprefix(SUPPLY_EVENT_PREFIX).rsplit("/", 1)[0].split("/", 1)
        return {
            "kind": activity.kind,
            "event": value.kind,
            "time_ms": value.time_ms,
            "gtin": gtin,
            "serial": serial,
            "organisation": value.organisation.hex(),
            "party": None if value.party is None else value.party.hex(),
            "detail": value.detail,
            "height": value.height,
            "tx_id": value.tx_id.hex(),
        }
    return {
        "kind": activity.kind,
        "trial_id": value.trial_id,
        "sponsor": value.sponsor.hex(),
        "registered_ms": value.versions[0].time_ms if value.versions else None,
        "protocol_versions": len(value.versions),
        "enrolled": value.enrolled,
        "withdrawn": value.withdrawn,
        "results": len(value.results),
        "outcome_switching_flagged": value.flagged,
    }
