"""The transaction topic open to admitted peers that are not validators, on real node processes:
an observer linked to one node sees every transaction submitted anywhere, and what it publishes
reaches every validator and commits; with ``gossip_publishers = "organisations"`` an
organisation's node is admitted from the block that admits the organisation."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from p2pmed.client.load import sample_transactions
from p2pmed.client.records import submit as submit_and_wait
from p2pmed.crypto import EncryptionPrivateKey, SigningKey
from p2pmed.ledger.contracts.identity import OrganisationProfile, OrgProposal
from p2pmed.ledger.tx import Transaction
from p2pmed.net import TxGossip, key_pair_of, peer_id_of, tx_topic
from p2pmed.net.identity import ed25519_key_of
from p2pmed.rpc.client import RpcError
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import load_home
from p2pmed.testing.process_network import ProcessNetwork

OBSERVER = SigningKey.from_seed(b"\x51" * 32)
CLINIC = SigningKey.from_seed(b"\x52" * 32)
CONFIG = NodeConfig(
    log_format="json",
    probes_from_anyone=True,
    gossip_publishers="organisations",
    gossip_peers=(str(peer_id_of(OBSERVER.public_key)),),
)
WAIT_S = 60.0
LISTEN = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]

pytestmark = pytest.mark.xdist_group("processes")


@pytest.fixture(scope="module")
def net() -> Iterator[ProcessNetwork]:
    with tempfile.TemporaryDirectory(prefix="p2pmed-og-") as directory:
        with ProcessNetwork(Path(directory), 4, CONFIG) as network:
            network.start_all(WAIT_S)
            yield network


@asynccontextmanager
async def peer_of_node_0(net: ProcessNetwork, key: SigningKey) -> AsyncIterator[TxGossip]:
    """A libp2p host with ``key`` following the tx topic through node 0 alone."""
    genesis = load_home(net.homes[0]).genesis
    validators = {peer_id_of(validator) for validator in genesis.validator_keys}
    host = new_host(key_pair=key_pair_of(key))
    async with trio.open_nursery() as nursery:
        async with host.run(listen_addrs=LISTEN):
            gossip = TxGossip(host, genesis.chain_id, lambda tx: True, full_mesh=validators.__contains__)
            await nursery.start(gossip.run)
            node0 = peer_id_of(genesis.validators[0].public_key)
            await host.connect(PeerInfo(node0, [multiaddr.Multiaddr(genesis.validators[0].address)]))
            await gossip.pubsub.wait_for_mesh(node0, tx_topic(genesis.chain_id), timeout=WAIT_S)
            yield gossip
        nursery.cancel_scope.cancel()


async def committed_everywhere(net: ProcessNetwork, tx: Transaction) -> None:
    for index in range(net.size):
        await trio.to_thread.run_sync(
            lambda index=index: net.wait_for(
                index,
                lambda: net.call(index, "tx.get", tx_id=tx.id.hex())["status"] == "committed",
                WAIT_S,
                f"to commit {tx.id.hex()[:12]}",
            )
        )


async def test_an_observer_of_one_node_sees_every_transaction_and_what_it_publishes_commits(
    net: ProcessNetwork,
) -> None:
    chain_id = load_home(net.homes[0]).genesis.chain_id
    with trio.fail_after(2 * WAIT_S):
        async with peer_of_node_0(net, OBSERVER) as observer:
            submitted = sample_transactions(chain_id, 4)
            for index, tx in enumerate(submitted):  # one at each node: three of them are not the observer's link
                await trio.to_thread.run_sync(
                    lambda index=index, tx=tx: net.call(index, "tx.submit", tx=tx.encoded.hex())
                )
            seen: set[bytes] = set()
            while not {tx.id for tx in submitted} <= seen:
                seen.update(tx.id for tx in await observer.incoming.receive())
            (own,) = sample_transactions(chain_id, 1)  # a sender of its own: nonce 0
            observer.publish(own)
            await committed_everywhere(net, own)


async def test_an_organisations_node_publishes_once_the_organisation_is_admitted(net: ProcessNetwork) -> None:
    chain_id = load_home(net.homes[0]).genesis.chain_id
    (before,), (after,) = sample_transactions(chain_id, 1), sample_transactions(chain_id, 1)
    with trio.fail_after(2 * WAIT_S):
        async with peer_of_node_0(net, CLINIC) as clinic:
            refused_before = (await trio.to_thread.run_sync(net.call, 0, "node.counters"))["gossip"]
            for _ in range(10):  # bounded: until node 0 refused it (the mesh may take a heartbeat)
                clinic.publish(before)
                counters = (await trio.to_thread.run_sync(net.call, 0, "node.counters"))["gossip"]
                if counters["batches_rejected"]["not_admitted"] > refused_before["batches_rejected"]["not_admitted"]:
                    break
                await trio.sleep(0.5)
            else:
                raise AssertionError("node 0 never refused the clinic's batch")
            with pytest.raises(RpcError, match="neither committed nor waiting"):
                await trio.to_thread.run_sync(lambda: net.call(0, "tx.get", tx_id=before.id.hex()))

            profile = OrganisationProfile(
                CLINIC.public_key, "clinic", "clinic", EncryptionPrivateKey.generate().public_key
            )
            for index in range(3):  # 2f+1 of 4 validators vote it in
                home = load_home(net.homes[index])
                await trio.to_thread.run_sync(
                    lambda home=home, index=index: submit_and_wait(
                        net.client(index), home.key, "identity.org.propose", OrgProposal(profile)
                    )
                )
            clinic.publish(after)
            await committed_everywhere(net, after)


def test_a_peer_id_that_embeds_no_ed25519_key_is_never_taken_for_an_organisation() -> None:
    assert ed25519_key_of(peer_id_of(CLINIC.public_key)) == CLINIC.public_key
    hashed = ID.from_base58("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")  # an RSA-era hashed id
    assert ed25519_key_of(hashed) is None
