"""EPCIS import throughput: events per second read and mapped, and through the ledger rules.

Run ``python benchmarks/epcis_import.py [--lots 200] [--packs 10] [--inspections 2]``. It
writes one EPCIS 2.0 JSON document holding, per lot, a commissioning event of ``--packs``
serialised packs, a shipping event without destinationList (as GS1's example), a receiving
event at the pharmacy's location (so the import resolves the receiver and the shipment in
the document) and ``--inspections`` inspecting events (kept as records). It times:

- the import (``p2pmed.interop.epcis.import_epcis``: size check, strict JSON, every field
  checked, mapping to transaction bodies), best of three;
- signing the transactions (Ed25519, the importer's cost);
- executing them through the real supply rules, 100 transactions a block, on a state in
  memory (signatures counted as verified, as a node does for transactions it checked on
  arrival).

It prints events/s and packs/s for each stage. It asserts only that every transaction passes.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from p2pmed.crypto import EncryptionPrivateKey, SigningKey
from p2pmed.interop.epcis import SupplyTx, import_epcis, organisation_uri
from p2pmed.ledger.block import GENESIS_PARENT_HASH, make_block
from p2pmed.ledger.contracts import ALL_TX_TYPES, membership, supply
from p2pmed.ledger.contracts.identity import OrganisationProfile, genesis_state
from p2pmed.ledger.contracts.membership import ValidatorProfile
from p2pmed.ledger.machine import Ledger
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.sim.supply_chain import MemoryState

CHAIN_ID = "epcis-bench"
START_MS = 1_800_000_000_000
TXS_PER_BLOCK = 100
TIME = "2026-03-01T09:30:00.000Z"


def _key(name: str) -> SigningKey:
    return SigningKey.from_seed(name.encode().ljust(32, b".")[:32])


REGULATOR, MAKER, PHARMACY = _key("regulator"), _key("maker"), _key("pharmacy")


def _event(step: str, action: str, epcs: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": TIME,
        "eventTimeZoneOffset": "+00:00",
        "epcList": epcs,
        "action": action,
        "bizStep": step,
        **fields,
    }


def document(lots: int, packs: int, inspections: int) -> bytes:
    events = []
    pharmacy = {"id": organisation_uri(PHARMACY.public_key)}
    for lot in range(lots):
        epcs = [f"urn:epc:id:sgtin:0614141.107346.L{lot}S{serial}" for serial in range(packs)]
        ilmd = {"cbvmda:lotNumber": f"L{lot}", "cbvmda:itemExpirationDate": "2031-12-31"}
        events.append(_event("commissioning", "ADD", epcs, ilmd=ilmd))
        events.append(_event("shipping", "OBSERVE", epcs))
        events.append(_event("receiving", "OBSERVE", epcs, bizLocation=pharmacy))
        events += [_event("inspecting", "OBSERVE", epcs[:1]) for _ in range(inspections)]
    body = {"type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": TIME, "epcisBody": {"eventList": events}}
    return json.dumps(body).encode()


def _ledger() -> Ledger:
    encryption = EncryptionPrivateKey.generate().public_key
    kinds = ((REGULATOR, "regulator"), (MAKER, "manufacturer"), (PHARMACY, "pharmacy"))
    profiles = [OrganisationProfile(key.public_key, kind, kind, encryption) for key, kind in kinds]
    validators = [ValidatorProfile(REGULATOR.public_key, REGULATOR.public_key, "/ip4/127.0.0.1/tcp/1", encryption)]
    return Ledger(CHAIN_ID, ALL_TX_TYPES, genesis_state(profiles) | membership.genesis_state(validators))


def _sign(txs: list[SupplyTx]) -> list[Transaction]:
    nonces = {MAKER.public_key: 0, PHARMACY.public_key: 0}
    signed: list[Transaction] = []
    for tx in txs:
        if tx.shipment_from is not None:
            tx = tx.with_shipment(signed[tx.shipment_from].id)
        signer = PHARMACY if tx.tx_type == "supply.receive" else MAKER
        signed.append(sign_transaction(signer, CHAIN_ID, tx.tx_type, nonces[signer.public_key], tx.body))
        nonces[signer.public_key] += 1
    return signed


def _execute(ledger: Ledger, txs: list[Transaction]) -> None:
    state = MemoryState(dict(ledger.genesis_state))
    grant = sign_transaction(
        REGULATOR, CHAIN_ID, "supply.prefix.grant", 0, supply.PrefixGrant(MAKER.public_key, "0614141")
    )
    batches = [[grant]] + [txs[start : start + TXS_PER_BLOCK] for start in range(0, len(txs), TXS_PER_BLOCK)]
    previous = GENESIS_PARENT_HASH
    for height, batch in enumerate(batches, start=1):
        block = make_block(CHAIN_ID, height, previous, tuple(batch), REGULATOR.public_key, START_MS + height * 1000)
        execution = ledger.execute_block(state, block, frozenset(tx.id for tx in batch))
        for tx, result in zip(batch, execution.results, strict=True):
            assert result.ok, f"{tx.type}: {result.detail}"
        for key, value in execution.changes.items():
            if value is None:
                state.data.pop(key, None)
            else:
                state.data[key] = value
        previous = block.hash


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lots", type=int, default=200)
    parser.add_argument("--packs", type=int, default=10, help="packs a lot (an event lists them all)")
    parser.add_argument("--inspections", type=int, default=2, help="inspecting events a lot (kept as records)")
    arguments = parser.parse_args()
    data = document(arguments.lots, arguments.packs, arguments.inspections)
    events = arguments.lots * (3 + arguments.inspections)
    listed = arguments.lots * (3 * arguments.packs + arguments.inspections)
    import_s = []
    for _ in range(3):
        started = time.perf_counter()
        txs = import_epcis(data)
        import_s.append(time.perf_counter() - started)
    started = time.perf_counter()
    signed = _sign(txs)
    sign_s = time.perf_counter() - started
    started = time.perf_counter()
    _execute(_ledger(), signed)
    execute_s = time.perf_counter() - started
    print(f"document: {len(data) / 1e6:.1f} MB, {events} events naming {listed} EPCs, {len(txs)} transactions")
    for stage, seconds in (("import (parse + map)", min(import_s)), ("sign", sign_s), ("ledger rules", execute_s)):
        print(f"{stage:<22} {seconds:7.3f} s  {events / seconds:9.0f} events/s  {listed / seconds:9.0f} EPCs/s")
    total = min(import_s) + sign_s + execute_s
    print(f"{'end to end':<22} {total:7.3f} s  {events / total:9.0f} events/s  {listed / total:9.0f} EPCs/s")


if __name__ == "__main__":
    main()
