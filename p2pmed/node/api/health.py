"""JSON-RPC methods for the healthcare rules: what the ledger says about identities,
consents, records, audit trails, trials and drug packs, and the next nonce to sign with.

Reads only: changes are signed transactions sent with ``tx.submit``. One
subscription, ``notices.subscribe``, is a patient's notification feed. Bytes travel as
lowercase hex, like everywhere on the socket; ledger objects are their fields as
plain JSON (``plain``).

"Now", for what the ledger decides by time (is a consent in force, is a pack
expired), is the time of the latest block: the time the ledger itself would use
for a transaction ordered next, the same on every node, and never ahead of the
chain as a node's clock may be (``NodeCore.ledger_time_ms``; 0 before the first
block, when nothing is in force yet).

Unknown things: a lookup by id (an organisation, a person, a record, a trial)
answers NOT_FOUND naming what was asked; a list answers empty; ``consent.get``
answers null, since "no consent" is an answer. A malformed id, range or choice is
INVALID_PARAMS saying what to send instead.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import trio

from p2pmed import codec
from p2pmed.interop.fhir import audit_event, consent_resource, deny_resource
from p2pmed.ledger.block import Block
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.audit import audit_trail, entries_at
from p2pmed.ledger.contracts.consent import (
    EVERYONE,
    consents_in_force,
    delegations_in_force,
    denies_in_force,
    valid_consent,
)
from p2pmed.ledger.contracts.identity import (
    Organisation,
    organisation_by_id_or_key,
    organisation_in_force,
    person,
    person_in_force,
    person_of,
)
from p2pmed.ledger.contracts.records import record
from p2pmed.ledger.contracts.trials import (
    FLAGGED_QUERY_MAX,
    TRIAL_ID_PATTERN,
    Trial,
    flagged_trials,
    trial,
    verify_dataset,
)
from p2pmed.ledger.machine import BlockExecution, next_nonce
from p2pmed.ledger.state import ScanState
from p2pmed.node.api.commits import each_commit
from p2pmed.node.api.port import NodePort
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param

__all__ = ["AUDIT_QUERY_MAX", "CONSENT_LIST_MAX", "health_methods", "plain"]

AUDIT_QUERY_MAX = 1_000
CONSENT_LIST_MAX = 1_000
ID_SIZE = 32  # person and organisation ids and keys, record ids and SHA-256 digests alike
FORMATS = ("entries", "fhir")
T = TypeVar("T")


def plain(value: Any) -> Any:
    """A ledger value (dataclass, tuple, enum...) as JSON: its fields, bytes as lowercase hex."""
    return _hex(codec.to_value(value))


def _hex(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: _hex(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_hex(item) for item in value]
    return value


# -- parameter checks beyond their JSON type ------------------------------------------------


def _invalid(method: str, message: str) -> RpcError:
    return RpcError(ErrorCode.INVALID_PARAMS, f"{method}: {message}")


def _id(method: str, name: str, value: bytes, what: str) -> bytes:
    if len(value) != ID_SIZE:
        raise _invalid(method, f'"{name}" must be {what}: {2 * ID_SIZE} hex digits, got {2 * len(value)}')
    return value


def _in_range(method: str, name: str, value: int, low: int, high: int | None = None) -> int:
    if value < low or (high is not None and value > high):
        bounds = f"{low} or more" if high is None else f"{low}..{high}"
        raise _invalid(method, f'"{name}" must be {bounds}, got {value}')
    return value


def _choice(method: str, name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _invalid(method, f'"{name}" must be one of {", ".join(choices)}, got {value[:40]!r}')
    return value


def _trial_id(method: str, value: str) -> str:
    if TRIAL_ID_PATTERN.fullmatch(value) is None:
        raise _invalid(
            method,
            f'"trial_id" {value[:60]!r} is not a registry-style id such as "NCT01234567" '
            "(3..40 capital letters, digits and '-', starting with a letter)",
        )
    return value


def _not_found(message: str) -> RpcError:
    return RpcError(ErrorCode.NOT_FOUND, message)


# -- shapes of the answers ---------------------------------------------------------------------


def _organisation(found: Organisation) -> dict[str, Any]:
    return {"id": found.id.hex(), **plain(found.profile), "active": found.active, "since_height": found.since_height}


def _trial(found: Trial) -> dict[str, Any]:
    return {
        **plain(found),
        "protocol": plain(found.protocol),
        "protocol_version": len(found.versions),
        "closed": found.closed,
        "flagged": found.flagged,
    }


def _in_force(store: ScanState, grantee: bytes) -> bool:
    """Whether a grantee is still a party in force: a consent to an organisation or a person
    since revoked lets nobody read, so it is not shown as in force, though the ledger keeps it
    (a deny of them likewise binds nobody; a deny of everyone always binds)."""
    return person_in_force(store, grantee) is not None or organisation_in_force(store, grantee) is not None


def _binds(store: ScanState, grantee: bytes) -> bool:
    return grantee == EVERYONE or _in_force(store, grantee)


def _first(found: Iterator[T], limit: int) -> tuple[list[T], bool]:
    """At most ``limit`` of ``found``, and whether more were left out."""
    first = list(itertools.islice(found, limit + 1))
    return first[:limit], len(first) > limit


def _pack_query(method: str, params: dict[str, Any]) -> tuple[str, str]:
    problem = supply.gtin_problem(params["gtin"]) or supply.code_problem(params["serial"], "serial")
    if problem is not None:
        raise _invalid(method, problem)
    return params["gtin"], params["serial"]


def health_methods(node: NodePort) -> dict[str, Method]:
    store = node.store

    async def nonce(params: dict[str, Any]) -> dict[str, Any]:
        """The sender's next nonce on the chain, and the one a new transaction should use
        (past any of theirs waiting in this node's mempool)."""
        committed = next_nonce(store, params["sender"])
        return {"committed": committed, "next": node.mempool.next_free_nonce(params["sender"], committed)}

    async def consent(params: dict[str, Any]) -> dict[str, Any] | None:
        """The consent in force now for (patient, grantee, category) that no deny overrides, or null."""
        provision = valid_consent(store, params["patient"], params["grantee"], params["category"], node.ledger_time_ms)
        return None if provision is None or not _in_force(store, provision.grantee) else plain(provision)

    async def consent_list(params: dict[str, Any]) -> dict[str, Any]:
        """Every consent and deny in force now that a patient gave (at most ``limit`` of each),
        and their delegates."""
        patient = _id("consent.list", "patient", params["patient"], "a patient's person id")
        limit = _in_range("consent.list", "limit", params["limit"], 1, CONSENT_LIST_MAX)
        fhir = _choice("consent.list", "format", params["format"], FORMATS) == "fhir"
        now_ms = node.ledger_time_ms
        consents, more_consents = _first(
            (each for each in consents_in_force(store, patient, now_ms) if _in_force(store, each.grantee)), limit
        )
        denies, more_denies = _first(
            (
                each
                for each in denies_in_force(store, patient, now_ms)
                if not each.grantee or _in_force(store, each.grantee)
            ),
            limit,
        )
        if fhir:  # validating FHIR takes milliseconds a resource: off the node's event loop
            rendered = await trio.to_thread.run_sync(
                lambda: ([consent_resource(each) for each in consents], [deny_resource(each) for each in denies])
            )
        else:
            rendered = plain(consents), plain(denies)
        return {
            "patient": patient.hex(),
            "time_ms": now_ms,
            "consents": rendered[0],
            "denies": rendered[1],
            "truncated": more_consents or more_denies,
            "delegates": plain(delegations_in_force(store, patient, now_ms)),
        }

    async def get_organisation(params: dict[str, Any]) -> dict[str, Any]:
        """An organisation by id (in force or revoked), else by current signing key."""
        wanted = _id("identity.organisation", "key", params["key"], "an organisation's id or signing key")
        found = organisation_by_id_or_key(store, wanted)
        if found is None:
            raise _not_found(f"no organisation has id or current key {wanted.hex()}")
        return _organisation(found)

    async def get_person(params: dict[str, Any]) -> dict[str, Any]:
        """A person by id (in force or revoked), else by current signing key."""
        wanted = _id("identity.person", "id_or_key", params["id_or_key"], "a person id or signing key")
        found = person(store, wanted) or person_of(store, wanted)
        if found is None:
            raise _not_found(f"no person has id or current key {wanted.hex()}")
        rendered: dict[str, Any] = plain(found)
        rendered["active"] = person_in_force(store, found.id) is not None  # staff lapse with their organisation
        return rendered

    async def get_record(params: dict[str, Any]) -> dict[str, Any]:
        record_id = _id("record.get", "record_id", params["record_id"], "a record id")
        found = record(store, record_id)
        if found is None:
            raise _not_found(f"no record has id {record_id.hex()}")
        return {**plain(found), "erased": found.erased_ms is not None}

    async def audit_query(params: dict[str, Any]) -> dict[str, Any]:
        """Audit entries oldest first, or as FHIR AuditEvents (converted off the node's event loop).
        A read of a patient's trail goes into the site audit log first."""
        by = _choice("audit.query", "by", params["by"], ("patient", "actor", "record"))
        subject = _id("audit.query", "subject", params["subject"], f"the {by}'s id")
        since_ms = _in_range("audit.query", "since_ms", params["since_ms"], 0)
        until_ms = params["until_ms"]
        if until_ms is not None and until_ms <= since_ms:
            raise _invalid("audit.query", f'"until_ms" ({until_ms}) must be after "since_ms" ({since_ms})')
        limit = _in_range("audit.query", "limit", params["limit"], 1, AUDIT_QUERY_MAX)
        fhir = _choice("audit.query", "format", params["format"], FORMATS) == "fhir"
        if by == "patient":
            node.site_audit.trail_read(subject, since_ms, until_ms, limit, params["format"])
        entries = audit_trail(store, by, subject, since_ms, until_ms, limit)
        if fhir:
            rendered = await trio.to_thread.run_sync(lambda: [audit_event(entry) for entry in entries])
        else:
            rendered = plain(entries)
        return {"by": by, "subject": subject.hex(), "format": params["format"], "entries": rendered}

    def subscribe_notices(params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """A patient's notification feed: each new entry of their audit trail (records written,
        read or refused, glass broken, consents changed) as its block commits."""
        patient = _id("notices.subscribe", "patient", params["patient"], "a patient's person id")

        def entries(block: Block, execution: BlockExecution) -> list[dict[str, Any]]:
            rendered: list[dict[str, Any]] = plain(entries_at(store, "patient", patient, block.height))
            return rendered

        return each_commit(node, entries)

    async def get_trial(params: dict[str, Any]) -> dict[str, Any]:
        trial_id = _trial_id("trial.get", params["trial_id"])
        found = trial(store, trial_id)
        if found is None:
            raise _not_found(f"no trial {trial_id!r} is registered")
        return _trial(found)

    async def verify_trial_dataset(params: dict[str, Any]) -> dict[str, Any]:
        trial_id = _trial_id("trial.verify", params["trial_id"])
        digest = _id("trial.verify", "sha256", params["sha256"], "the SHA-256 of the data set")
        verification = verify_dataset(store, trial_id, digest)
        if verification is None:
            raise _not_found(f"no trial {trial_id!r} is registered")
        rendered: dict[str, Any] = plain(verification)
        return rendered

    async def flagged(params: dict[str, Any]) -> dict[str, Any]:
        """Trials flagged for outcome switching, most recently flagged first, with what was switched."""
        limit = _in_range("trial.flagged", "limit", params["limit"], 1, FLAGGED_QUERY_MAX)
        found = [trial(store, trial_id) for trial_id in flagged_trials(store, limit)]
        return {
            "trials": [
                {
                    "trial_id": each.trial_id,
                    "sponsor": each.sponsor.hex(),
                    "switches": [
                        result.outcome_switching.summary for result in each.results if result.outcome_switching
                    ],
                }
                for each in found
                if each is not None
            ]
        }

    async def trace(params: dict[str, Any]) -> dict[str, Any]:
        """A pack's state, the container it is packed in, and its history; an unknown serial has no
        pack, and its scans as history."""
        gtin, serial = _pack_query("supply.trace", params)
        found = supply.pack(store, gtin, serial)
        return {
            "gtin": gtin,
            "serial": serial,
            "pack": None if found is None else plain(found),
            "container": supply.container_of(store, supply.PackRef(gtin, serial)),
            "events": plain(supply.trace(store, gtin, serial)),
        }

    async def lot(params: dict[str, Any]) -> dict[str, Any]:
        """A lot's packs and where they are now: who holds how many in which state (a recall's reach)."""
        limit = _in_range("supply.lot", "limit", params["limit"], 1, supply.LOT_PACKS_MAX)
        try:
            found = supply.lot_record(store, params["gtin"], params["lot"])
            packs, more = supply.lot_packs(store, params["gtin"], params["lot"], limit)
        except ValueError as error:
            raise _invalid("supply.lot", str(error)) from None
        if found is None:
            raise _not_found(f"no pack of lot {params['lot']!r} of GTIN {params['gtin']} was commissioned")
        holders = collections.Counter((pack.holder, pack.status) for pack in packs)
        return {
            "gtin": params["gtin"],
            "lot": params["lot"],
            "expiry": found.expiry,
            "recall": plain(found.recall),
            "packs": plain(packs),
            "more": more,
            "holders": [
                {"holder": holder.hex(), "status": status, "count": count}
                for (holder, status), count in sorted(holders.items())
            ],
        }

    async def verify_pack(params: dict[str, Any]) -> dict[str, Any]:
        """Is a pack genuine and dispensable now, by ``organisation`` (an id or current key) if
        given (else by its holder)? With ``lot`` and ``expiry`` as printed on the pack, all four
        elements of its product identifier must match what was commissioned."""
        gtin, serial = _pack_query("supply.verify", params)
        organisation = params["organisation"]
        if organisation is not None:
            _id("supply.verify", "organisation", organisation, "an organisation's id or key")
            found = organisation_by_id_or_key(store, organisation)
            organisation = organisation if found is None else found.id
        try:
            verdict = supply.verify(
                store, gtin, serial, node.ledger_time_ms, organisation, params["lot"], params["expiry"]
            )
        except ValueError as error:
            raise _invalid("supply.verify", str(error)) from None
        return {**plain(verdict), "dispensable": verdict.dispensable}

    async def alerts(params: dict[str, Any]) -> dict[str, Any]:
        """Supply alerts in the order they were raised, from ``start``; ``count`` is how many there are."""
        start = _in_range("supply.alerts", "start", params["start"], 0)
        limit = _in_range("supply.alerts", "limit", params["limit"], 1, supply.ALERTS_PAGE_MAX)
        return {"count": supply.alert_count(store), "alerts": plain(supply.alerts(store, start, limit))}

    return {
        "account.nonce": Method(nonce, {"sender": bytes}),
        "consent.get": Method(consent, {"patient": bytes, "grantee": bytes, "category": str}),
        "consent.list": Method(
            consent_list,
            {
                "patient": bytes,
                "limit": Param(int, optional=True, default=100),
                "format": Param(str, optional=True, default="entries"),
            },
        ),
        "identity.organisation": Method(get_organisation, {"key": bytes}),
        "identity.person": Method(get_person, {"id_or_key": bytes}),
        "notices.subscribe": Method(subscribe_notices, {"patient": bytes}, subscription=True),
        "record.get": Method(get_record, {"record_id": bytes}),
        "audit.query": Method(
            audit_query,
            {
                "by": str,
                "subject": bytes,
                "since_ms": Param(int, optional=True, default=0),
                "until_ms": Param(int, optional=True),
                "limit": Param(int, optional=True, default=100),
                "format": Param(str, optional=True, default="entries"),
            },
        ),
        "trial.get": Method(get_trial, {"trial_id": str}),
        "trial.verify": Method(verify_trial_dataset, {"trial_id": str, "sha256": bytes}),
        "trial.flagged": Method(flagged, {"limit": Param(int, optional=True, default=100)}),
        "supply.trace": Method(trace, {"gtin": str, "serial": str}),
        "supply.lot": Method(lot, {"gtin": str, "lot": str, "limit": Param(int, optional=True, default=1000)}),
        "supply.verify": Method(
            verify_pack,
            {
                "gtin": str,
                "serial": str,
                "organisation": Param(bytes, optional=True),
                "lot": Param(str, optional=True),
                "expiry": Param(str, optional=True),
            },
        ),
        "supply.alerts": Method(
            alerts, {"start": Param(int, optional=True, default=0), "limit": Param(int, optional=True, default=100)}
        ),
    }
