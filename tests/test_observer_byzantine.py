"""An observer among Byzantine validators, on real processes: validator 3's key serves
``/p2pmed/blocks/1`` from a host that answers with a forged block (one signature where a
quorum is needed) and claims a head far ahead. The observer refuses the forgery, is not
fooled into thinking it is behind, and reaches the honest validators' head with their chain."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import multiaddr
import pytest
import trio

from p2pmed.consensus.messages import BlockWithCertificate, CommitCertificate, Vote, VoteKind, proposal_digest
from p2pmed.crypto import SigningKey
from p2pmed.ledger.block import EMPTY_GENESIS_STATE, make_block
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import sign_transaction
from p2pmed.net.block_sync import BlockSyncService, SyncAnswer
from p2pmed.net.host import node_host
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import load_home
from p2pmed.testing.process_network import ProcessNetwork
from signing import signed

pytestmark = pytest.mark.xdist_group("processes")

CONFIG = NodeConfig(log_format="json", probes_from_anyone=True)
WAIT_S = 60.0
BYZANTINE, OBSERVER = 3, 4
CLAIMED_HEAD = 10**9


class ForgingValidator:
    """Validator 3's key and address, serving forged blocks from a trio thread of its own."""

    def __init__(self, key: SigningKey, listen: str, chain_id: str) -> None:
        self.key, self.listen, self.chain_id = key, listen, chain_id
        self.asked = 0
        self._stop: trio.CancelScope | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: trio.run(self._serve), daemon=True)

    def __enter__(self) -> ForgingValidator:
        self._thread.start()
        assert self._started.wait(WAIT_S), "the forging host did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._stop is not None and self._token is not None:
            self._token.run_sync_soon(self._stop.cancel)  # from this thread into the host's
        self._thread.join(10)

    def forged(self, from_height: int) -> SyncAnswer:
        self.asked += 1
        block = make_block(
            self.chain_id,
            from_height,
            bytes(32),
            (),
            self.key.public_key,
            time.time_ns() // 1_000_000,
            EMPTY_GENESIS_STATE,
        )
        vote = Vote(VoteKind.COMMIT, 0, from_height, proposal_digest(block.header), BYZANTINE, bytes(64))
        certificate = CommitCertificate((signed(vote, self.key, self.chain_id),))
        return SyncAnswer("", CLAIMED_HEAD, (BlockWithCertificate(block, certificate),), False)

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        host = node_host(self.key)
        async with trio.open_nursery() as outer:
            async with host.run(listen_addrs=[multiaddr.Multiaddr(self.listen)]):
                with trio.CancelScope() as self._stop:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(BlockSyncService(host, self.forged, lambda _peer: True).run)
                        self._started.set()
                        await trio.sleep_forever()
            outer.cancel_scope.cancel()


@pytest.fixture
def net() -> Iterator[ProcessNetwork]:
    with tempfile.TemporaryDirectory(prefix="p2pmed-byz-") as directory:
        with ProcessNetwork(Path(directory), 4, CONFIG, observers=1) as network:
            for index in range(3):
                network.start(index)
            for index in range(3):
                network.wait_ready(index, WAIT_S)
            yield network


def test_an_observer_refuses_a_byzantine_validators_forged_blocks_and_syncs_the_honest_chain(
    net: ProcessNetwork,
) -> None:
    byzantine = load_home(net.homes[BYZANTINE])
    chain_id = byzantine.genesis.chain_id
    sender = SigningKey.from_seed(b"b" * 32)
    for nonce in range(3):
        tx = sign_transaction(sender, chain_id, "load.probe", nonce, Probe(f"{nonce}"))
        net.call(0, "tx.submit", tx=tx.encoded.hex())
    net.wait_for(0, lambda: net.call(0, "node.status")["height"] >= 1, WAIT_S, "to commit")
    with ForgingValidator(byzantine.key, byzantine.config.listen, chain_id) as forger:
        net.start(OBSERVER)
        head = net.call(0, "node.status")["height"]
        net.wait_for(
            OBSERVER,
            lambda: forger.asked and net.call(OBSERVER, "node.counters")["block_sync"].get("refused", 0) >= 1,
            WAIT_S,
            "to ask the forger and refuse its answer",
        )
        net.wait_for(
            OBSERVER, lambda: net.call(OBSERVER, "node.status")["height"] >= head, WAIT_S, "to reach the honest head"
        )
        status = net.call(OBSERVER, "node.status")
        assert status["peer_height"] is None or status["peer_height"] < CLAIMED_HEAD  # one liar moves nothing
        for height in range(1, head + 1):
            ours, theirs = (net.call(index, "chain.block", height=height)["hash"] for index in (OBSERVER, 0))
            assert ours == theirs, height
