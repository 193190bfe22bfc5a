"""Custodians that missed a record's upload fetch it from a fellow custodian.

A writer hands the ciphertext to each custodian right after the anchor commits.
A custodian that was down or cut off then has a gap, and the record rests on
fewer copies than the f+1 that make losing f sites harmless. So each node keeps
the set of records it should hold but does not (anchors naming it, not erased,
not here): filled from the ledger when the node starts and from every committed
``record.add``. The scan at start also shreds copies of records the ledger says
were erased, so an erasure survives a crash at any point. After a grace period (the writer's own upload usually arrives
first) and then with growing pauses, it asks the other custodians for a copy of
each (the ciphertext and every custodian's sealed key share, as the fellow
custodian holds them) and keeps one whose ciphertext and own share match the
anchor. The set lives in memory: a restart rebuilds it from the ledger.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from p2pmed import codec
from p2pmed.ledger.contracts.records import Record, record
from p2pmed.ledger.state import STATE_VALUE_SIZE_MAX, ScanState
from p2pmed.net.blob_protocol import BlobRequest, BlobResponse
from p2pmed.node.custodian import Custodian, CustodyRefused

__all__ = ["BlobRepair"]

log = structlog.get_logger(__name__)

GRACE_S = 5.0
CHECK_INTERVAL_S = 1.0
BACKOFF_MAX_S = 60.0

Ask = Callable[[bytes, BlobRequest], Awaitable[BlobResponse]]
"""Send a request to the custodian with this key and await its answer."""


@dataclass
class _Missing:
    custodians: tuple[bytes, ...]
    due: float
    pause: float


class BlobRepair:
    def __init__(self, custodian: Custodian, ask: Ask) -> None:
        self.custodian, self.ask = custodian, ask
        self.missing: dict[bytes, _Missing] = {}
        self.repaired = 0

    def scan(self, state: ScanState) -> None:
        """Find every anchored record this site should hold but does not; and shred what the
        ledger erased but this site still holds (the node stopped between committing the
        erasure and its commit listener deleting the copy)."""
        for _key, data in state.state_items("record/"):
            anchor = codec.decode(Record, data, STATE_VALUE_SIZE_MAX)
            if anchor.erased_ms is not None and self.custodian.erase(anchor.record_id):
                log.info("erased record shredded at start", record=anchor.record_id.hex()[:16])
            self.note(anchor, due=0.0)

    def note(self, anchor: Record, due: float) -> None:
        site = self.custodian.site_key
        if site in anchor.custodians and anchor.erased_ms is None and not self.custodian.blobs.holds(anchor.record_id):
            others = tuple(key for key in anchor.custodians if key != site)
            self.missing[anchor.record_id] = _Missing(others, due, GRACE_S)

    def on_commit(self, block: Any, execution: Any) -> None:
        """Commit listener: remember records newly anchored with this site as a custodian."""
        for tx, result in zip(block.txs, execution.results, strict=True):
            if tx.type == "record.add" and result.ok:
                anchor = record(self.custodian.state, tx.body["record_id"])
                if anchor is not None:
                    self.note(anchor, due=trio.current_time() + GRACE_S)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(CHECK_INTERVAL_S)
            now = trio.current_time()
            for record_id in [rid for rid, item in self.missing.items() if item.due <= now]:
                await self._repair(record_id)

    async def _repair(self, record_id: bytes) -> None:
        item = self.missing.get(record_id)
        anchor = record(self.custodian.state, record_id)
        if item is None or anchor is None or anchor.erased_ms is not None or self.custodian.blobs.holds(record_id):
            self.missing.pop(record_id, None)
            return
        reasons = []
        for other in item.custodians:
            response = await self.ask(other, BlobRequest("copy", record_id))
            if response.error:
                reasons.append(response.error)
                continue
            try:
                self.custodian.accept(record_id, response.sealed, response.wraps)
            except CustodyRefused as refused:
                reasons.append(str(refused))
                continue
            self.missing.pop(record_id, None)
            self.repaired += 1
            log.info("record copy repaired", record=record_id.hex()[:16])
            return
        item.pause = min(item.pause * 2, BACKOFF_MAX_S)
        item.due = trio.current_time() + item.pause
        log.info("record copy still missing", record=record_id.hex()[:16], reasons=reasons[:3], retry_s=item.pause)
