"""Starting a node from a snapshot (issue #17, fast start) on real NodeCores in memory: the
offer a validator makes is checked from the genesis set alone through the epoch proofs; the
state it hands out hashes to the certified root; a store installed from it takes the next
blocks as if it had replayed the chain; and every kind of lie in an offer or a state is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tests.ledger_harness import DictState
from tests.test_epochs import CHAIN, CONFIG, SENDER, Client, epoch_of, join, live, run_until

from p2pmed import codec
from p2pmed.consensus.snapshot_offer import (
    OfferRefused,
    SnapshotOffer,
    VerifiedOffer,
    check_epochs_in_state,
    verify_offer,
)
from p2pmed.crypto import Ed25519Verifier
from p2pmed.ledger.block import GENESIS_PARENT_HASH
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.contracts.membership import ValidatorChange
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.net import peer_id_of
from p2pmed.node import snapshots
from p2pmed.node.core import NodeCore
from p2pmed.node.fast_start import FastStartFailed, agreement
from p2pmed.store import Store, StoreError
from p2pmed.testing.local_network import LocalNetwork

INTERVAL = 16
BYSTANDER = 5


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Four validators that voted validator 3 out and validator 4 in, then ran two snapshot
    intervals into the new epoch."""
    net = LocalNetwork(tmp_path_factory.mktemp("snap"), CHAIN, config=CONFIG, joiners=2, snapshot_interval=INTERVAL)
    client = Client(net)
    client.vote(ValidatorChange(remove=(net.key(3),), join=(join(net, 4, net.key(0)),)), [0, 1, 2])
    run_until(net, lambda: all(epoch_of(core) == 1 for core in live(net)))
    source = live(net)[0]
    target = source.validators.first_height + 2 * INTERVAL + 2
    count = 0
    while source.store.head()[0] < target:
        sent = client.submit(SENDER, "load.probe", Probe(f"epoch 1, {count}"))
        run_until(net, lambda sent=sent: source.store.transaction(sent.id) is not None)
        count += 1
    yield net
    net.close()


def genesis_epoch(network: LocalNetwork) -> membership.Epoch:
    state = DictState()
    state.apply(dict(network.ledger.genesis_state))
    epoch = membership.epoch_record(state, 0)
    assert epoch is not None
    return epoch


def offered(network: LocalNetwork) -> SnapshotOffer:
    answer = snapshots.offer(live(network)[0].store)
    assert answer.error == "" and answer.offer is not None
    return answer.offer


def verified(network: LocalNetwork, offer: SnapshotOffer) -> VerifiedOffer:
    return verify_offer(offer, genesis_epoch(network), CHAIN, Ed25519Verifier())


def state_of(store: Store, height: int) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    after, more = "", True
    while more:
        answer = snapshots.entries(store, height, after)
        assert answer.error == ""
        entries.update((entry.key, entry.value) for entry in answer.entries)
        after, more = answer.entries[-1].key, answer.more
    return entries


def test_an_offer_is_checked_from_genesis_and_a_store_started_from_it_follows_the_chain(
    network: LocalNetwork, tmp_path: Path
) -> None:
    source = live(network)[0]
    checked = verified(network, offered(network))
    base = checked.base.height
    assert base % INTERVAL == 0 and base >= source.validators.first_height
    assert [epoch.number for epoch in checked.epochs] == [0, 1] and checked.epochs[1].keys == source.validators.keys
    entries = state_of(source.store, base)
    check_epochs_in_state(dict_state(entries), checked.epochs)
    path = tmp_path / "fresh.sqlite3"
    with Store.open(path, CHAIN, GENESIS_PARENT_HASH, network.ledger.genesis_state) as fresh:
        fresh.install_snapshot(checked.base, entries, checked.state)
        assert fresh.head() == (base, checked.base.hash) and fresh.block(base) is None
    core = NodeCore(path, network.ledger, network.keys[BYSTANDER], CONFIG, network.now_ms)
    try:
        assert core.replica is None and core.validators.epoch == 1
        for item in source.blocks_from(base + 1).blocks:
            core.apply_synced(item)
        head = source.store.head()[0]
        assert core.store.head() == source.store.head()
        assert core.store.commitment(head) == source.store.commitment(head)
    finally:
        core.close()


def dict_state(entries: dict[str, bytes]) -> DictState:
    state = DictState()
    state.apply(dict(entries))
    return state


def test_a_state_that_does_not_hash_to_the_certified_root_is_refused_and_leaves_the_store_empty(
    network: LocalNetwork, tmp_path: Path
) -> None:
    checked = verified(network, offered(network))
    entries = state_of(live(network)[0].store, checked.base.height)
    key = next(key for key in entries if key.startswith("nonce/"))
    for altered in ({**entries, key: codec.encode(10**6)}, {k: v for k, v in entries.items() if k != key}):
        with Store.open(tmp_path / "fresh.sqlite3", CHAIN, GENESIS_PARENT_HASH, network.ledger.genesis_state) as fresh:
            with pytest.raises(StoreError, match="do not lead to the state root"):
                fresh.install_snapshot(checked.base, altered, checked.state)
            assert fresh.head() == (0, GENESIS_PARENT_HASH) and fresh.base is None
            assert dict(fresh.state_items("")) == dict(network.ledger.genesis_state)


def test_an_offer_that_leaves_out_the_newest_set_or_alters_a_certified_field_is_refused(
    network: LocalNetwork,
) -> None:
    offer = offered(network)
    changed_time = dataclasses.replace(offer.base, time_ms=offer.base.time_ms + 1)
    other_anchor = dataclasses.replace(offer.anchor, height=offer.anchor.height + 1)
    lies = {
        "without epoch 1": (dataclasses.replace(offer, epochs=()), "not certified by epoch 0's set"),
        "base time": (dataclasses.replace(offer, base=changed_time), f"block {offer.base.height}:"),
        "anchor": (dataclasses.replace(offer, anchor=other_anchor), "expected block"),
        "swapped certificates": (
            dataclasses.replace(offer, base_certificate=offer.anchor_certificate),
            f"block {offer.base.height}:",
        ),
        "epoch proof of another key": (
            dataclasses.replace(offer, epochs=(dataclasses.replace(offer.epochs[0], key="validators/latest"),)),
            "not the record of epoch 1",
        ),
    }
    for what, (lie, reason) in lies.items():
        with pytest.raises(OfferRefused, match=reason):
            verified(network, lie)
            pytest.fail(what)


def test_a_state_recording_a_set_the_offer_did_not_prove_is_refused(network: LocalNetwork) -> None:
    checked = verified(network, offered(network))
    state = dict_state(state_of(live(network)[0].store, checked.base.height))
    with pytest.raises(OfferRefused, match="the state records epoch 1; the offer proved epochs up to 0"):
        check_epochs_in_state(state, checked.epochs[:1])


def test_only_the_two_newest_snapshot_heights_are_served(network: LocalNetwork) -> None:
    store = live(network)[0].store
    newest, older = store.snapshot_heights()
    assert newest - older == INTERVAL and newest < store.head()[0]
    assert snapshots.entries(store, older, "").entries
    answer = snapshots.entries(store, older - INTERVAL, "")
    assert "is not offered here" in answer.error and not answer.entries


def test_an_offer_is_taken_only_when_f_plus_one_validators_of_its_set_made_it(network: LocalNetwork) -> None:
    checked = verified(network, offered(network))
    lied = dataclasses.replace(checked, base=dataclasses.replace(checked.base, previous_hash=bytes(32)))
    peer = {index: peer_id_of(network.key(index)) for index in range(BYSTANDER + 1)}
    with pytest.raises(FastStartFailed, match="no f\\+1 validators agree"):
        agreement({peer[0]: checked, peer[1]: lied})  # one each: either may be the liar
    with pytest.raises(FastStartFailed, match="no f\\+1 validators agree"):
        agreement({peer[0]: checked, peer[3]: checked})  # validator 3 left the set that certified it
    assert agreement({peer[0]: lied, peer[1]: checked, peer[4]: checked}).offer == checked
