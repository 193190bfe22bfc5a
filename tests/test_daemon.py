"""Real ``p2pmed node`` processes on 127.0.0.1: agreement, a killed primary, a node killed
mid-load, and hostile peers. Slow by nature (each node is a Python process importing
py-libp2p), so each test does several things; every wait is bounded."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pmed.client.load import sample_transactions
from p2pmed.ledger.tx import Transaction
from p2pmed.site.config import NodeConfig
from p2pmed.testing.process_network import ProcessNetwork

CONFIG = NodeConfig(log_format="json", request_timeout_ms=1_500, view_change_timeout_ms=1_500, probes_from_anyone=True)
WAIT_S = 60.0


@pytest.fixture
def network() -> Iterator[ProcessNetwork]:
    # A short directory: the RPC socket path must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="p2pmed-") as directory:
        net = ProcessNetwork(Path(directory), 4, CONFIG)
        try:
            yield net
        finally:
            net.close()


def chain_id(net: ProcessNetwork) -> str:
    return net.call(next(i for i, p in enumerate(net.processes) if p), "node.status")["chain_id"]


def submit(net: ProcessNetwork, index: int, tx: Transaction) -> None:
    net.call(index, "tx.submit", tx=tx.encoded.hex())


def wait_committed(net: ProcessNetwork, nodes: list[int], txs: list[Transaction]) -> None:
    for index in nodes:
        for tx in txs:
            net.wait_for(
                index,
                lambda index=index, tx=tx: net.call(index, "tx.get", tx_id=tx.id.hex())["status"] == "committed",
                WAIT_S,
                f"to commit {tx.id.hex()[:12]}",
            )


def wait_same_head(net: ProcessNetwork, nodes: list[int]) -> tuple[int, str]:
    def same() -> tuple[int, str] | None:
        heads = {(s["height"], s["last_block_hash"]) for s in (net.call(i, "node.status") for i in nodes)}
        return heads.pop() if len(heads) == 1 else None

    return net.wait_for(None, same, WAIT_S, "to reach one head")


def block_hashes(net: ProcessNetwork, index: int, height: int) -> list[str]:
    return [net.call(index, "chain.block", height=h)["hash"] for h in range(1, height + 1)]


def test_four_processes_agree_survive_a_killed_primary_and_the_primary_catches_up(network: ProcessNetwork) -> None:
    net = network
    net.start_all(WAIT_S)
    txs = sample_transactions(chain_id(net), 24)
    for position, tx in enumerate(txs[:12]):  # the same senders through different nodes
        submit(net, position % 4, tx)
    wait_committed(net, [0, 1, 2, 3], txs[:12])
    height, _ = wait_same_head(net, [0, 1, 2, 3])
    reference = block_hashes(net, 0, height)
    assert all(block_hashes(net, index, height) == reference for index in (1, 2, 3))

    primary = net.call(1, "node.status")["primary"]
    net.kill(primary)
    survivors = [index for index in range(4) if index != primary]
    for position, tx in enumerate(txs[12:]):
        submit(net, survivors[position % 3], tx)
    wait_committed(net, survivors, txs[12:])
    assert all(net.call(index, "node.status")["view"] > 0 for index in survivors)

    net.start(primary)
    net.wait_ready(primary, WAIT_S)
    height, _ = wait_same_head(net, list(range(4)))
    assert block_hashes(net, primary, height) == block_hashes(net, survivors[0], height)


def test_a_node_killed_mid_load_loses_no_committed_transaction(network: ProcessNetwork) -> None:
    net = network
    net.start_all(WAIT_S)
    txs = sample_transactions(chain_id(net), 150)
    victim, entry = 2, 1
    submitted = threading.Event()

    def load() -> None:
        start = time.monotonic()
        for position, tx in enumerate(txs):  # 30 tx/s, open loop
            time.sleep(max(0.0, start + position / 30 - time.monotonic()))
            submit(net, entry, tx)
        submitted.set()

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    net.wait_for(victim, lambda: net.call(victim, "node.status")["height"] >= 5, WAIT_S, "to commit 5 blocks")
    before = net.call(victim, "node.status")["height"]
    hashes_before = block_hashes(net, victim, before)
    net.kill(victim)
    assert submitted.wait(WAIT_S)
    net.start(victim)
    net.wait_ready(victim, WAIT_S)
    wait_committed(net, [0, 1, 2, 3], txs)
    height, _ = wait_same_head(net, list(range(4)))
    assert block_hashes(net, victim, height)[:before] == hashes_before

    net.close()
    stores = [net.open_store(index) for index in range(net.size)]
    try:
        assert {store.head() for store in stores} == {stores[0].head()}
        for number in range(1, height + 1):
            assert len({store.block(number).hash for store in stores}) == 1  # type: ignore[union-attr]
        for tx in txs:
            assert all(store.transaction(tx.id) is not None for store in stores)
    finally:
        for store in stores:
            store.close()


async def open_again(host, peer, protocol):  # type: ignore[no-untyped-def]
    """A new stream once the connection the node closed is gone; bounded attempts."""
    import trio

    for _ in range(50):
        try:
            return await host.new_stream(peer, [protocol])
        except Exception:  # the old connection is still closing
            await trio.sleep(0.1)
    raise AssertionError("could not open a stream again")


@pytest.mark.trio
async def test_hostile_peers_are_refused_and_counted_while_the_network_keeps_committing(
    network: ProcessNetwork,
) -> None:
    import multiaddr
    import trio
    from libp2p import new_host
    from libp2p.exceptions import BaseLibp2pError
    from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11

    from p2pmed.codec import MESSAGE_SIZE_MAX
    from p2pmed.consensus.messages import Vote, VoteKind, encode_message
    from p2pmed.crypto import SigningKey, load_signing_key
    from p2pmed.net import PROTOCOL_ID, TxGossip, encode_frame, key_pair_of, peer_id_of
    from p2pmed.net.framing import encode_varint
    from p2pmed.rpc.client import RpcError
    from p2pmed.site.home import NODE_KEY, load_home

    net = network
    for index in (0, 1, 2):  # 2f+1 of 4: enough to commit; the test host plays validator 3
        net.start(index)
    for index in (0, 1, 2):
        await trio.to_thread.run_sync(net.wait_ready, index, WAIT_S)
    genesis = load_home(net.homes[0]).genesis
    target, target_address = peer_id_of(genesis.validators[0].public_key), genesis.validators[0].address
    impostor = new_host(key_pair=key_pair_of(load_signing_key(net.homes[3] / NODE_KEY)))
    outsider = new_host(key_pair=key_pair_of(SigningKey.generate()))
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    status = await trio.to_thread.run_sync(net.call, 0, "node.status")

    with trio.fail_after(WAIT_S):
        async with trio.open_nursery() as nursery:
            async with impostor.run(listen_addrs=listen), outsider.run(listen_addrs=listen):
                outsider_gossip = TxGossip(outsider, genesis.chain_id, lambda tx: True)
                await nursery.start(outsider_gossip.run)
                for host in (impostor, outsider):
                    host.get_peerstore().add_addrs(target, [multiaddr.Multiaddr(target_address)], 0)

                with pytest.raises(BaseLibp2pError):  # the node resets a non-validator's stream
                    refused = await outsider.new_stream(target, [PROTOCOL_ID])
                    while True:
                        await refused.write(encode_frame(b"x"))
                        await trio.sleep(0.05)

                stream = await impostor.new_stream(target, [PROTOCOL_ID])
                forged = Vote(VoteKind.PREPARE, status["view"], status["height"] + 1, bytes(32), 3, bytes(64))
                await stream.write(encode_frame(b"\xff not cbor") + encode_frame(encode_message(forged)))
                await stream.write(encode_varint(MESSAGE_SIZE_MAX + 1))  # oversized: the stream is reset
                truncated = await open_again(impostor, target, PROTOCOL_ID)  # the node dropped our connection
                await truncated.write(encode_varint(100) + b"short")
                await truncated.close()

                junk = await outsider.new_stream(target, [PROTOCOL_ID_V11])  # an RPC that is not protobuf
                await junk.write(b"\x05\xff\xff\xff\xff\xff")
                spam = sample_transactions(genesis.chain_id, 1)[0]  # a valid batch, from a publisher not admitted
                for _ in range(20):  # bounded: until node 0 has refused one (the mesh takes a heartbeat or two)
                    outsider_gossip.publish(spam)
                    counters = await trio.to_thread.run_sync(net.call, 0, "node.counters")
                    if counters["gossip"]["batches_rejected"]["not_admitted"]:
                        break
                    await trio.sleep(0.5)

                def counted() -> bool:
                    counters = net.call(0, "node.counters")
                    transport, rejected = counters["transport"], counters["consensus_rejected"]
                    gossip = counters["gossip"]
                    return (
                        gossip["streams_failed"] >= 1
                        and gossip["batches_rejected"]["not_admitted"] >= 1
                        and transport["streams_refused"] >= 1
                        and transport["streams_malformed"] >= 2
                        and transport["peers_disconnected"] >= 1
                        and rejected.get("malformed", 0) >= 1
                        and rejected.get("invalid", 0) >= 1
                    )

                await trio.to_thread.run_sync(net.wait_for, 0, counted, WAIT_S, "to count the hostile input")
            nursery.cancel_scope.cancel()

    txs = sample_transactions(genesis.chain_id, 2)
    forged_tx = Transaction(txs[1].type, txs[1].chain_id, txs[1].sender, txs[1].nonce, txs[1].body, bytes(64))
    for bad, reason in ((forged_tx.encoded.hex(), "bad-signature"), ("a1" * 40, "malformed")):
        with pytest.raises(RpcError) as raised:
            await trio.to_thread.run_sync(lambda bad=bad: net.call(1, "tx.submit", tx=bad))
        assert raised.value.data["reason"] == reason
    await trio.to_thread.run_sync(submit, net, 1, txs[0])
    await trio.to_thread.run_sync(wait_committed, net, [0, 1, 2], txs[:1])


def test_a_partitioned_node_falls_behind_and_catches_up_when_healed() -> None:
    import dataclasses

    from p2pmed.rpc.client import RpcError
    from p2pmed.rpc.errors import ErrorCode

    with tempfile.TemporaryDirectory(prefix="p2pmed-") as directory:
        with ProcessNetwork(Path(directory), 4, dataclasses.replace(CONFIG, fault_injection=True)) as net:
            net.start_all(WAIT_S)
            with pytest.raises(RpcError) as raised:
                net.call(0, "debug.faults", blocked_out="7")
            assert raised.value.code == ErrorCode.INVALID_PARAMS
            isolated, others = 3, [0, 1, 2]
            net.call(isolated, "debug.faults", blocked_out="0,1,2", blocked_in="0,1,2")
            for index in others:
                net.call(index, "debug.faults", blocked_out="3", blocked_in="3")
            txs = sample_transactions(chain_id(net), 10)
            for position, tx in enumerate(txs):
                submit(net, others[position % 3], tx)
            wait_committed(net, others, txs)
            assert net.call(isolated, "node.status")["height"] == 0
            healed = net.call(isolated, "debug.faults")  # no params: no faults
            assert healed["blocked_out"] == healed["blocked_in"] == []
            assert all(net.call(index, "debug.faults")["dropped_out"] > 0 for index in others)  # votes for 3
            height, _ = wait_same_head(net, list(range(4)))
            assert height >= 1
            wait_committed(net, [isolated], txs)


def test_fault_injection_is_refused_unless_the_config_enables_it(network: ProcessNetwork) -> None:
    from p2pmed.rpc.client import RpcError
    from p2pmed.rpc.errors import ErrorCode

    network.start(0)
    network.wait_ready(0, WAIT_S)
    with pytest.raises(RpcError) as raised:
        network.call(0, "debug.faults", drop_permille=500)
    assert raised.value.code == ErrorCode.DISABLED and "[fault_injection]" in raised.value.message


@pytest.mark.trio
async def test_a_byzantine_validator_s_signed_attacks_are_refused_while_clients_keep_committing(
    network: ProcessNetwork,
) -> None:
    """Validator 3's key in a test host: validly signed view changes for ever higher views and
    replays of them, block-fetch and proposal-fetch floods, a forged state-transfer answer and a
    hollow new-view, at all three honest nodes at once, while a client submits at node 1."""
    import os

    import multiaddr
    import trio
    from libp2p import new_host

    from p2pmed.consensus.messages import (
        Blocks,
        BlockWithCertificate,
        CommitCertificate,
        FetchBlocks,
        FetchProposal,
        NewView,
        ViewChange,
        Vote,
        VoteKind,
        encode_message,
    )
    from p2pmed.crypto import load_signing_key
    from p2pmed.ledger.block import make_block
    from p2pmed.net import PROTOCOL_ID, encode_frame, key_pair_of, peer_id_of
    from p2pmed.site.home import NODE_KEY, load_home
    from signing import signed

    net = network
    for index in (0, 1, 2):
        net.start(index)
    for index in (0, 1, 2):
        await trio.to_thread.run_sync(net.wait_ready, index, WAIT_S)
    genesis = load_home(net.homes[0]).genesis
    chain, key = genesis.chain_id, load_signing_key(net.homes[3] / NODE_KEY)
    byzantine = new_host(key_pair=key_pair_of(key))
    status = await trio.to_thread.run_sync(net.call, 0, "node.status")
    view, height = status["view"], status["height"]

    spam = [signed(ViewChange(view + 10 + i, 0, (), (), 3, bytes(64)), key, chain) for i in range(20)]
    forged_block = make_block(chain, height + 1, bytes(32), (), key.public_key, 1)
    commit = signed(Vote(VoteKind.COMMIT, view, height + 1, bytes(32), 3, bytes(64)), key, chain)
    barrage = [
        *spam,
        spam[0],  # a replay: node moved past it
        *(FetchBlocks(1, 3) for _ in range(20)),
        *(FetchProposal(1, os.urandom(32), 3) for _ in range(20)),
        Blocks((BlockWithCertificate(forged_block, CommitCertificate((commit,))),), more=True),
        signed(NewView(3, (), (), (), 3, bytes(64)), key, chain),
    ]
    frames = b"".join(encode_frame(encode_message(message)) for message in barrage)
    txs = sample_transactions(chain, 10)

    with trio.fail_after(WAIT_S):
        async with byzantine.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            for index in (0, 1, 2):
                peer = peer_id_of(genesis.validators[index].public_key)
                byzantine.get_peerstore().add_addrs(peer, [multiaddr.Multiaddr(genesis.validators[index].address)], 0)
                stream = await byzantine.new_stream(peer, [PROTOCOL_ID])
                await stream.write(frames)
            for tx in txs:
                await trio.to_thread.run_sync(submit, net, 1, tx)

            def counted() -> bool:
                rejected = net.call(0, "node.counters")["consensus_rejected"]
                return (
                    rejected.get("view-change-far-ahead", 0) >= 1
                    and rejected.get("view-change-stale", 0) >= 1
                    and rejected.get("fetch-too-often", 0) >= 1
                    and rejected.get("invalid", 0) >= 2
                )

            await trio.to_thread.run_sync(net.wait_for, 0, counted, WAIT_S, "to count the Byzantine validator's input")
    await trio.to_thread.run_sync(wait_committed, net, [0, 1, 2], txs)
    assert all(net.processes[index] is not None and net.processes[index].poll() is None for index in (0, 1, 2))
    statuses = [await trio.to_thread.run_sync(net.call, index, "node.status") for index in (0, 1, 2)]
    assert {status["view"] for status in statuses} == {view}, "one replica's view changes moved nobody"
