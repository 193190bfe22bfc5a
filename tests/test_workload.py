"""The real-process workload: every transaction of every kind passes the ledger's rules,
in the mix asked for, the same from the same seed."""

from __future__ import annotations

import random
from collections import Counter

from ledger_harness import CHAIN, LedgerHarness
from p2pmed.sim.workload import SENDER_TXS_MAX, build_workload

MIX = (("probe", 2.0), ("consent", 1.0), ("record", 1.0), ("supply", 1.0))


def test_every_transaction_of_the_mix_passes_the_rules_after_the_setup() -> None:
    ledger = LedgerHarness()
    workload = build_workload(CHAIN, 400, MIX, ledger.validators, random.Random(3))
    results = [ledger.commit(tx) for tx in [*workload.setup, *workload.txs]]
    assert [(result.reason, result.detail) for result in results if not result.ok] == []
    kinds = Counter(tx.type for tx in workload.txs)
    assert set(kinds) == {"load.probe", "consent.grant", "record.add", "supply.verify"} and sum(kinds.values()) == 400
    assert kinds["load.probe"] > max(kinds["consent.grant"], kinds["record.add"], kinds["supply.verify"])
    assert {tx.type for tx in workload.setup} == {"identity.person.register"}
    senders = Counter(tx.sender for tx in workload.txs if tx.type in ("load.probe", "consent.grant"))
    assert max(senders.values()) <= SENDER_TXS_MAX


def test_the_same_seed_gives_the_same_workload_and_a_probe_only_mix_needs_no_setup() -> None:
    sites = LedgerHarness().validators
    first, again = (build_workload(CHAIN, 50, MIX, sites, random.Random(9)) for _ in range(2))
    assert [tx.id for tx in first.txs] == [tx.id for tx in again.txs] and first.setup == again.setup
    probes = build_workload(CHAIN, 120, (("probe", 1.0),), sites, random.Random(9))
    assert probes.setup == [] and {tx.type for tx in probes.txs} == {"load.probe"}
