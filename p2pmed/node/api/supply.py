"""JSON-RPC methods for containers, suspect products, diversion flags and the signals' week
on the supply ledger.

Reads only, like the other health methods (``p2pmed.node.api.health`` holds the pack
reads: trace, lot, verify, alerts): changes are signed transactions sent with
``tx.submit``. Bytes are lowercase hex; ledger objects are their fields as plain JSON.
A malformed code is INVALID_PARAMS in the ledger's words; an SSCC or pack nothing was
ever recorded for is NOT_FOUND.
"""

from __future__ import annotations

from typing import Any

from p2pmed.interop.epcis import export_aggregations
from p2pmed.interop.fda3911 import form_3911
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.identity import organisation_in_force
from p2pmed.node.api.health import plain
from p2pmed.node.api.port import NodePort
from p2pmed.node.api.supply_gs1 import gs1_methods
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param

__all__ = ["CONTAINER_FORMATS", "supply_methods"]

CONTAINER_FORMATS = ("entries", "epcis")
CANDIDATE_WEEKS_MAX = 12


def _invalid(method: str, message: str) -> RpcError:
    return RpcError(ErrorCode.INVALID_PARAMS, f"{method}: {message}")


def supply_methods(node: NodePort) -> dict[str, Method]:
    store = node.store

    async def container(params: dict[str, Any]) -> dict[str, Any]:
        """A container, what is in it at every depth, and its history; with ``format`` "epcis",
        its aggregation history as an EPCIS 2.0 JSON-LD document instead."""
        if params["format"] not in CONTAINER_FORMATS:
            raise _invalid("supply.container", f'"format" must be one of {", ".join(CONTAINER_FORMATS)}')
        try:
            found = supply.container(store, params["sscc"])
        except ValueError as error:
            raise _invalid("supply.container", str(error)) from None
        if found is None:
            raise RpcError(ErrorCode.NOT_FOUND, f"nothing was ever packed in SSCC {params['sscc']}")
        history = supply.container_history(store, found.sscc)
        if params["format"] == "epcis":
            return export_aggregations(found.sscc, history, node.ledger_time_ms)
        packs, containers = supply.container_contents(store, found)
        return {
            "container": plain(found),
            "packs": plain(packs),
            "containers": [inner.sscc for inner in containers[1:]],
            "history": plain(history),
        }

    def _case(method: str, case_id: bytes) -> supply.SuspectCase:
        found = supply.suspect_case(store, case_id)
        if found is None:
            raise RpcError(ErrorCode.NOT_FOUND, f"{method}: no suspect case has id {case_id.hex()}")
        return found

    def _with_overdue(case: supply.SuspectCase) -> dict[str, Any]:
        return {**plain(case), "overdue": supply.overdue(case, node.ledger_time_ms)}

    async def suspect(params: dict[str, Any]) -> dict[str, Any]:
        """A suspect case, and the step that is overdue at ledger time, if any."""
        return _with_overdue(_case("supply.suspect", params["case"]))

    async def suspects(params: dict[str, Any]) -> dict[str, Any]:
        """Suspect cases in the order opened, from ``start``, each with its overdue step."""
        start, limit = params["start"], params["limit"]
        if start < 0 or not 1 <= limit <= supply.ALERTS_PAGE_MAX:
            raise _invalid("supply.suspects", f'"start" must be 0 or more and "limit" 1..{supply.ALERTS_PAGE_MAX}')
        cases = supply.suspect_cases(store, start, limit)
        return {"count": supply.suspect_count(store), "cases": [_with_overdue(case) for case in cases]}

    async def form(params: dict[str, Any]) -> dict[str, Any]:
        """The Form FDA 3911 fields of an illegitimate case, from the ledger."""
        case = _case("supply.form3911", params["case"])
        if case.status not in ("illegitimate", "notified"):
            raise _invalid("supply.form3911", f"case {case.id.hex()} is {case.status}: not determined illegitimate")
        lots: dict[tuple[str, str], supply.Lot] = {}
        for ref in case.packs:
            found = supply.pack(store, ref.gtin, ref.serial)
            assert found is not None, "a case lists commissioned packs"
            lot = supply.lot_record(store, found.gtin, found.lot)
            assert lot is not None
            lots[(found.gtin, found.lot)] = lot
        return form_3911(case, lots, organisation_in_force(store, case.organisation))

    async def flags(params: dict[str, Any]) -> dict[str, Any]:
        """Diversion flags in the order raised, from ``start``, each with its evidence."""
        start, limit = params["start"], params["limit"]
        if start < 0 or not 1 <= limit <= supply.ALERTS_PAGE_MAX:
            raise _invalid("supply.flags", f'"start" must be 0 or more and "limit" 1..{supply.ALERTS_PAGE_MAX}')
        return {"count": supply.flag_count(store), "flags": plain(supply.flags(store, start, limit))}

    async def flag(params: dict[str, Any]) -> dict[str, Any]:
        """One diversion flag: its subject, evidence and lifecycle."""
        found = supply.flag(store, params["flag"])
        if found is None:
            raise RpcError(ErrorCode.NOT_FOUND, f"supply.flag: no diversion flag has id {params['flag'].hex()}")
        return dict(plain(found))

    async def candidates(params: dict[str, Any]) -> dict[str, Any]:
        """The subjects whose evidence holds at ledger time and that no flag covers yet: what a
        validator raises (``p2pmed supply flag scan``). Walks the tallies of the recent weeks.
        With ``at_ms`` (ledger time up to CANDIDATE_WEEKS_MAX weeks ahead), a preview: what the
        same rules find on today's committed state once that time comes (a week closes)."""
        weeks_back, now_ms = params["weeks_back"], node.ledger_time_ms
        at_ms = now_ms if params["at_ms"] is None else params["at_ms"]
        if not 1 <= weeks_back <= CANDIDATE_WEEKS_MAX:
            raise _invalid("supply.flag_candidates", f'"weeks_back" must be 1..{CANDIDATE_WEEKS_MAX}')
        if not now_ms <= at_ms <= now_ms + CANDIDATE_WEEKS_MAX * supply.signal_week_ms(store):
            raise _invalid(
                "supply.flag_candidates", f'"at_ms" must be ledger time up to {CANDIDATE_WEEKS_MAX} weeks on'
            )
        found = supply.candidates(store, at_ms, weeks_back)
        fresh = [(subject, evidence) for subject, evidence in found if supply.flag_of(store, subject) is None]
        return {"candidates": [{"subject": plain(subject), "evidence": plain(evidence)} for subject, evidence in fresh]}

    async def signal_week(params: dict[str, Any]) -> dict[str, Any]:
        """The signals' week on this chain, whether the validators voted it, and why it can no
        longer be voted (null while it still can)."""
        return {
            "week_ms": supply.signal_week_ms(store),
            "voted": supply.voted_week_ms(store) is not None,
            "fixed": supply.clock_fixed(store),
        }

    return {
        "supply.signal_week": Method(signal_week),
        "supply.flags": Method(
            flags, {"start": Param(int, optional=True, default=0), "limit": Param(int, optional=True, default=100)}
        ),
        "supply.flag": Method(flag, {"flag": bytes}),
        "supply.flag_candidates": Method(
            candidates, {"weeks_back": Param(int, optional=True, default=1), "at_ms": Param(int, optional=True)}
        ),
        "supply.suspect": Method(suspect, {"case": bytes}),
        "supply.suspects": Method(
            suspects, {"start": Param(int, optional=True, default=0), "limit": Param(int, optional=True, default=100)}
        ),
        "supply.form3911": Method(form, {"case": bytes}),
        "supply.container": Method(container, {"sscc": str, "format": Param(str, optional=True, default="entries")}),
        **gs1_methods(node),
    }
