"""A small healthcare world in a real SQLite store, shared by the RPC and CLI tests:
sites, people, consents, a record read twice (once breaking the glass), a trial with
switched outcomes and drug packs, each committed in a block of its own."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import trio

from ledger_harness import CHAIN, LedgerHarness, glass, key
from p2pmed.crypto import SigningKey
from p2pmed.ledger.block import make_block
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.consent import ConsentDelegate, ConsentGrant
from p2pmed.ledger.contracts.records import RecordRead
from p2pmed.ledger.contracts.trials import Protocol, TrialConsent, TrialEnroll, TrialRegister, TrialResults
from p2pmed.ledger.machine import TxResult, next_nonce
from p2pmed.ledger.tx import Transaction, decode_transaction, sign_transaction
from p2pmed.node.api.health import health_methods
from p2pmed.node.api.supply import supply_methods
from p2pmed.node.mempool import Mempool
from p2pmed.node.site_audit import LOG_FILE, SiteAudit
from p2pmed.rpc.params import Method
from p2pmed.store import Store
from p2pmed.store.audit_log import SignedLog

HOSPITAL, LAB, SPONSOR = key("hospital"), key("lab"), key("sponsor")
MAKER, PHARMACY = key("maker"), key("pharmacy")
PATIENT, DOCTOR, NURSE = key("patient"), key("doctor"), key("nurse")
P, D = PATIENT.public_key, DOCTOR.public_key
RECORD_ID = hashlib.sha256(b"record-1").digest()
DATASET = hashlib.sha256(b"results-1").digest()
GTIN = "0950110153000" + supply.gs1_check_digit("0950110153000")
FAR_MS = 4_102_444_800_000
TRIAL = "NCT01234567"
CASE = "00" + "9501101" + "00000001" + supply.gs1_check_digit("00950110100000001")
PALLET = "00" + "9501101" + "00000002" + supply.gs1_check_digit("00950110100000002")


class StoreHarness(LedgerHarness):
    """The rule harness, but every block goes into a real ``Store``, which the methods read."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.store = Store.open(path, CHAIN, genesis_state=self.ledger.genesis_state)

    def run(self, signer: SigningKey, tx_type: str, body: Any) -> TxResult:
        return self.commit(sign_transaction(signer, CHAIN, tx_type, next_nonce(self.store, signer.public_key), body))

    def commit(self, tx: Transaction) -> TxResult:
        """Order ``tx`` alone in the next block, a second after the last."""
        self.height += 1
        self.time_ms += 1_000
        parent = self.store.commitment(self.height - 1)
        assert parent is not None
        key = self.validators[0].public_key
        block = make_block(CHAIN, self.height, self.previous_hash, (tx,), key, self.time_ms, parent)
        execution = self.ledger.execute_block(self.store, block)
        self.store.append_block(block, execution)
        self.previous_hash = block.hash
        return execution.results[0]


def build_world(ledger: StoreHarness) -> None:
    for organisation, kind in (
        (HOSPITAL, "hospital"),
        (LAB, "laboratory"),
        (SPONSOR, "sponsor"),
        (MAKER, "manufacturer"),
        (PHARMACY, "pharmacy"),
    ):
        ledger.admit_organisation(organisation, kind)
    ledger.grant_prefix(MAKER, "9501101")
    ledger.register_person(HOSPITAL, PATIENT, "patient")
    ledger.register_person(HOSPITAL, DOCTOR, "clinician")
    ledger.register_person(HOSPITAL, NURSE, "clinician")  # breaks the glass below: a care provider's
    ledger.ok(PATIENT, "consent.grant", ConsentGrant(P, D, ("imaging", "laboratory"), ("TREAT",), FAR_MS))
    ledger.ok(
        PATIENT, "consent.grant", ConsentGrant(P, LAB.public_key, ("laboratory",), ("TREAT",), ledger.time_ms + 1_500)
    )
    ledger.ok(PATIENT, "consent.delegate", ConsentDelegate(HOSPITAL.public_key, FAR_MS))
    ledger.ok(DOCTOR, "record.add", ledger.anchor(RECORD_ID, P))
    ledger.ok(DOCTOR, "record.read", RecordRead(RECORD_ID, "TREAT", False))
    ledger.ok(NURSE, "record.read", glass(RECORD_ID))
    protocol = Protocol(hashlib.sha256(b"protocol").digest(), ("hba1c at 12 weeks",), ("weight",), 100)
    ledger.ok(SPONSOR, "trial.register", TrialRegister(TRIAL, protocol))
    ledger.ok(PATIENT, "trial.consent", TrialConsent(TRIAL))
    ledger.ok(SPONSOR, "trial.enroll", TrialEnroll(TRIAL, P))
    ledger.ok(SPONSOR, "trial.results", TrialResults(TRIAL, DATASET, ("weight",), ()))
    ledger.ok(MAKER, "supply.commission", supply.SupplyCommission(GTIN, "LOT1", "2099-12-31", ("S1", "S2")))
    ledger.ok(MAKER, "supply.verify", supply.SupplyVerify(GTIN, "FAKE1", "LOT1", "2099-12-31"))
    ledger.ok(MAKER, "supply.commission", supply.SupplyCommission(GTIN, "LOT2", "2099-12-31", ("C1", "C2")))
    packed = (supply.PackRef(GTIN, "C1"), supply.PackRef(GTIN, "C2"))
    ledger.ok(MAKER, "supply.aggregate", supply.SupplyAggregate(CASE, packed, ()))
    ledger.ok(MAKER, "supply.aggregate", supply.SupplyAggregate(PALLET, (), (CASE,)))


class FakeNode:
    """What the health methods read of a ``NodePort``: the store, the mempool, the last block's time,
    and the site audit log that reads of a patient's trail go into."""

    def __init__(self, store: Store) -> None:
        self.store, self.mempool = store, Mempool()
        self.site_key = SigningKey.generate()
        log = SignedLog(store.path.parent / LOG_FILE, self.site_key, CHAIN, self.now_ms)
        self.site_audit = SiteAudit(log, self.now_ms, CHAIN)

    @property
    def ledger_time_ms(self) -> int:
        head = self.store.block(self.store.head()[0])
        return 0 if head is None else head.header.time_ms

    def now_ms(self) -> int:
        return FAR_MS + 1  # the node's clock runs far ahead of the chain: decisions must use the block time


def fake_node(store: Store) -> Any:
    return FakeNode(store)


class InProcessClient:
    """Stands in for ``RpcClient``: binds params and runs the handler as the server would,
    with JSON on both sides. ``node.status``, ``tx.submit`` and ``tx.get`` are the node's,
    so they are played here: a submitted transaction is ordered at once in its own block."""

    def __init__(self, ledger: StoreHarness) -> None:
        node = fake_node(ledger.store)
        self.methods = {
            **health_methods(node),  # type: ignore[arg-type]
            **supply_methods(node),
            "node.status": Method(self._status),
            "tx.submit": Method(self._submit, {"tx": bytes}),
            "tx.get": Method(self._get, {"tx_id": bytes}),
        }
        self.ledger = ledger
        self.calls: list[str] = []

    def __call__(self, socket_path: Path, timeout: float | None = None) -> InProcessClient:
        return self

    def __enter__(self) -> InProcessClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def call(self, method: str, /, **params: Any) -> Any:
        self.calls.append(method)
        bound = self.methods[method].bind(method, json.loads(json.dumps(params)))
        return json.loads(json.dumps(trio.run(self.methods[method].handler, bound)))

    async def _status(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"chain_id": CHAIN}

    async def _submit(self, params: dict[str, Any]) -> dict[str, Any]:
        tx = decode_transaction(params["tx"])
        self.ledger.commit(tx)
        return {"tx_id": tx.id.hex(), "status": "pending"}

    async def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self.ledger.store.transaction(params["tx_id"])
        assert stored is not None
        reason = None if stored.reject_reason is None else stored.reject_reason.value
        return {
            "tx_id": stored.tx.id.hex(),
            "status": "committed" if reason is None else "rejected",
            "height": stored.height,
            "position": stored.position,
            "reason": reason,
            "detail": stored.reject_detail or None,
            "type": stored.tx.type,
            "sender": stored.tx.sender.hex(),
            "nonce": stored.tx.nonce,
        }
