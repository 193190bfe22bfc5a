"""JSON-RPC methods for GS1 identifiers, EPCIS and DSCSA documents on the supply ledger: who
holds a GTIN's company prefix, packs' histories as EPCIS 2.0 documents, queries over committed
events, and a shipment's transaction information and statement (TI/TS).

Reads only; grants are ``supply.prefix.grant`` transactions sent with ``tx.submit``.
A malformed GTIN, prefix, serial or lot is INVALID_PARAMS in the ledger's words; a prefix,
pack or lot nothing was granted or commissioned for is NOT_FOUND.

A query walks at most ``QUERY_PACKS_MAX`` packs (one pack, a lot, a GTIN's packs or all
packs, in key order) and answers at most ``limit`` events, saying whether it left any out
(``more``): its cost is bounded whatever a client asks.
"""

from __future__ import annotations

from typing import Any

from p2pmed.interop.dscsa import transaction_information
from p2pmed.interop.epcis_export import PackHistory, export_histories
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.identity import organisation
from p2pmed.node.api.health import plain
from p2pmed.node.api.port import NodePort
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param

__all__ = ["QUERY_EVENTS_MAX", "QUERY_FORMATS", "QUERY_PACKS_MAX", "gs1_methods"]

QUERY_PACKS_MAX = 10_000
QUERY_EVENTS_MAX = 10_000
QUERY_FORMATS = ("entries", "epcis")


def _invalid(method: str, message: str) -> RpcError:
    return RpcError(ErrorCode.INVALID_PARAMS, f"{method}: {message}")


def gs1_methods(node: NodePort) -> dict[str, Method]:
    store = node.store

    async def prefix(params: dict[str, Any]) -> dict[str, Any]:
        """The granted company prefix a GTIN-14 (or a prefix, 6..12 digits) carries, and its holder's id."""
        code = params["code"]
        problem = supply.gtin_problem(code) if len(code) == 14 else supply.prefix_problem(code)
        if problem is not None:
            raise _invalid("supply.prefix", problem)
        if len(code) == 14:
            found = supply.prefix_of(store, code)
        else:
            owner = supply.prefix_owner(store, code)
            found = None if owner is None else (code, owner)
        if found is None:
            raise RpcError(ErrorCode.NOT_FOUND, f"supply.prefix: no company prefix granted covers {code}")
        return {"prefix": found[0], "organisation": found[1].hex()}

    def _histories(method: str, params: dict[str, Any], packs_max: int) -> tuple[list[PackHistory], bool]:
        try:
            packs, more = supply.packs_matching(store, params["gtin"], params["serial"], params["lot"], packs_max)
        except ValueError as error:
            raise _invalid(method, str(error)) from None
        histories = []
        for found in packs:
            lot = supply.lot_record(store, found.gtin, found.lot)
            assert lot is not None, "a pack's lot is written when it is commissioned"
            events = supply.trace(store, found.gtin, found.serial)
            histories.append(PackHistory(supply.PackRef(found.gtin, found.serial), found.lot, lot.expiry, events))
        return histories, more

    async def export(params: dict[str, Any]) -> dict[str, Any]:
        """A pack's history (``gtin`` and ``serial``) or a lot's (``gtin`` and ``lot``) as an EPCIS 2.0
        JSON-LD document, which ``p2pmed supply import-epcis`` imports back."""
        if params["gtin"] is None or (params["serial"] is None) == (params["lot"] is None):
            raise _invalid("supply.export_epcis", 'give "gtin" and one of "serial" and "lot"')
        histories, _ = _histories("supply.export_epcis", params, supply.LOT_PACKS_MAX)
        if not histories:
            raise RpcError(ErrorCode.NOT_FOUND, "supply.export_epcis: no such pack or lot was commissioned")
        return export_histories(histories, node.ledger_time_ms)

    async def query(params: dict[str, Any]) -> dict[str, Any]:
        """Committed events of packs (one, a lot, a GTIN's, or all), by or with ``site`` (an organisation id)
        and between ``since_ms`` and ``until_ms`` (ledger time, inclusive), in ledger order."""
        if not 1 <= params["limit"] <= QUERY_EVENTS_MAX or params["format"] not in QUERY_FORMATS:
            raise _invalid(
                "supply.query", f'"limit" must be 1..{QUERY_EVENTS_MAX} and "format" one of {", ".join(QUERY_FORMATS)}'
            )
        histories, more = _histories("supply.query", params, QUERY_PACKS_MAX)
        site, since, until = params["site"], params["since_ms"], params["until_ms"]
        chosen: list[PackHistory] = []
        count = 0
        for history in histories:
            events = [
                event
                for event in history.events
                if since <= event.time_ms <= until and (site is None or site in (event.organisation, event.party))
            ]
            events = events[: params["limit"] - count]
            count += len(events)
            more = more or count == params["limit"]
            if events:
                chosen.append(PackHistory(history.pack, history.lot, history.expiry, events))
        if params["format"] == "epcis":
            return export_histories(chosen, node.ledger_time_ms)
        rows = [
            {"gtin": history.pack.gtin, "serial": history.pack.serial, **plain(event)}
            for history in chosen
            for event in history.events
        ]
        rows.sort(key=lambda row: row["height"])
        return {"events": rows, "more": more}

    async def ti_ts(params: dict[str, Any]) -> dict[str, Any]:
        """The DSCSA transaction information and statement of a shipment (a change of ownership)."""
        found = supply.shipment(store, params["shipment"])
        if found is None:
            raise RpcError(ErrorCode.NOT_FOUND, f"supply.ti_ts: no shipment has id {params['shipment'].hex()}")
        refs = list(found.packs)
        for sscc in found.containers:
            top = supply.container(store, sscc)
            assert top is not None, "a shipment lists containers that were packed"
            refs += supply.container_contents(store, top)[0]
        packs = [supply.pack(store, ref.gtin, ref.serial) for ref in refs]
        expiries: dict[tuple[str, str], str] = {}
        for each in packs:
            assert each is not None, "a shipment lists commissioned packs"
            lot = supply.lot_record(store, each.gtin, each.lot)
            assert lot is not None
            expiries[(each.gtin, each.lot)] = lot.expiry
        seller, buyer = organisation(store, found.source), organisation(store, found.destination)
        return transaction_information(found, [each for each in packs if each is not None], expiries, seller, buyer)

    optional_str = Param(str, optional=True)
    return {
        "supply.prefix": Method(prefix, {"code": str}),
        "supply.ti_ts": Method(ti_ts, {"shipment": bytes}),
        "supply.export_epcis": Method(export, {"gtin": optional_str, "serial": optional_str, "lot": optional_str}),
        "supply.query": Method(
            query,
            {
                "gtin": optional_str,
                "serial": optional_str,
                "lot": optional_str,
                "site": Param(bytes, optional=True),
                "since_ms": Param(int, optional=True, default=0),
                "until_ms": Param(int, optional=True, default=(1 << 63) - 1),
                "limit": Param(int, optional=True, default=1000),
                "format": Param(str, optional=True, default="entries"),
            },
        ),
    }
