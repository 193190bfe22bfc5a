"""The operator interface against one running network of four real node processes:
every RPC method, hostile clients on a node's socket, the CLI client commands,
the metrics endpoint and the logs.

One network serves the whole module (starting four Python processes is the slow
part), so each test leaves it healthy, and hostile-client tests end by seeing a
new transaction committed. The view-change test kills and restarts a primary,
so it comes last. Every wait is bounded; nothing asserts on timing.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from p2pmed import codec
from p2pmed.cli.main import cli
from p2pmed.client.records import submit as submit_and_wait
from p2pmed.consensus.messages import CommitCertificate, VoteKind
from p2pmed.crypto import EncryptionPrivateKey, SigningKey
from p2pmed.ledger.contracts.consent import ConsentGrant
from p2pmed.ledger.contracts.identity import PersonRegister
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.node.api.server import REQUEST_SIZE_MAX
from p2pmed.rpc import ErrorCode, RpcError
from p2pmed.rpc.client import RpcClient
from p2pmed.rpc.lines import LineReader
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import load_home
from p2pmed.testing.process_network import ProcessNetwork

pytestmark = pytest.mark.xdist_group("operator-network")  # one worker, one network (make test: --dist loadgroup)

CONFIG = NodeConfig(
    log_format="json",
    log_level="debug",
    request_timeout_ms=1_500,
    view_change_timeout_ms=1_500,
    probes_from_anyone=True,
)
WAIT_S = 60.0
CHAIN_ID = "p2pmed-local"
FAR_FUTURE_MS = 4_102_444_800_000
MiB = 1 << 20


@pytest.fixture(scope="module")
def net() -> Iterator[ProcessNetwork]:
    # A short directory: the RPC socket path must fit in 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="p2pmed-"))
    network = ProcessNetwork(directory, 4, CONFIG, metrics=True)
    try:
        network.start_all(WAIT_S)
        yield network
    finally:
        network.close()
        shutil.rmtree(directory, ignore_errors=True)


# -- helpers ---------------------------------------------------------------------------------


def new_key() -> SigningKey:
    return SigningKey.from_seed(os.urandom(32))


def probe(sender: SigningKey, nonce: int = 0, label: str = "p") -> Transaction:
    return sign_transaction(sender, CHAIN_ID, "load.probe", nonce, Probe(label))


def register_patient(net: ProcessNetwork) -> SigningKey:
    """A patient registered by node 0's site (a hospital in force from genesis)."""
    patient = new_key()
    body = PersonRegister(patient.public_key, "patient", EncryptionPrivateKey.generate().public_key)
    with RpcClient(socket_path(net, 0)) as client:
        submit_and_wait(client, load_home(net.homes[0]).key, "identity.person.register", body)
    return patient


def grant(patient: SigningKey, grantee: bytes, categories: tuple[str, ...], purpose: str) -> Transaction:
    body = ConsentGrant(patient.public_key, grantee, categories, (purpose,), FAR_FUTURE_MS)
    return sign_transaction(patient, CHAIN_ID, "consent.grant", 0, body)


def submit(net: ProcessNetwork, index: int, tx: Transaction) -> dict[str, Any]:
    return net.call(index, "tx.submit", tx=tx.encoded.hex())


def wait_status(net: ProcessNetwork, nodes: list[int], tx: Transaction, status: str) -> dict[str, Any]:
    """Wait until ``tx.get`` says ``status`` on every node in ``nodes``; the last answer."""
    answer: dict[str, Any] = {}
    for index in nodes:
        answer = net.wait_for(
            index,
            lambda index=index: (got := net.call(index, "tx.get", tx_id=tx.id.hex()))["status"] == status and got,
            WAIT_S,
            f"to see {tx.id.hex()[:12]} {status}",
        )
    return answer


def keeps_committing(net: ProcessNetwork, nodes: list[int] | None = None) -> None:
    """A fresh transaction, submitted through the first node, commits on all of them."""
    nodes = nodes if nodes is not None else list(range(net.size))
    tx = probe(new_key())
    assert submit(net, nodes[0], tx)["status"] == "pending"
    wait_status(net, nodes, tx, "committed")


def socket_path(net: ProcessNetwork, index: int) -> Path:
    return net.homes[index] / CONFIG.rpc_socket


def rpc_error(net: ProcessNetwork, index: int, method: str, **params: Any) -> RpcError:
    with pytest.raises(RpcError) as raised:
        net.call(index, method, **params)
    return raised.value


def scrape(net: ProcessNetwork, index: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of node ``index``'s metrics, parsed with prometheus-client's parser."""
    url = f"http://127.0.0.1:{net.metrics_ports[index]}/metrics"
    with urllib.request.urlopen(url, timeout=WAIT_S) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def logged_peer(net: ProcessNetwork, index: int, event: str, peer: int) -> bool:
    """Whether node ``index`` logged ``event`` about node ``peer`` (named by its moniker)."""
    return any(logged["event"] == event and logged["peer"] == f"node{peer}" for logged in log_events(net, index))


def log_events(net: ProcessNetwork, index: int) -> list[dict[str, Any]]:
    """The node's JSON log events (py-libp2p's own warnings are plain lines, skipped)."""
    events = []
    for line in net.log_path(index).read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


class RawClient:
    """Lines over a trio Unix socket, nothing added: to send what no proper client would."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = LineReader(stream, 64 * MiB)

    @classmethod
    async def connect(cls, path: Path) -> RawClient:
        return cls(await trio.open_unix_socket(os.fspath(path)))

    async def send_line(self, line: bytes | str) -> None:
        await self.stream.send_all((line.encode() if isinstance(line, str) else line) + b"\n")

    async def receive(self) -> dict[str, Any]:
        line = await self.reader.read_line()
        assert line is not None, "the node closed the connection"
        return json.loads(line)

    async def call(self, method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        await self.send_line(json.dumps(request))
        return await self.receive()

    async def closed_by_node(self) -> bool:
        try:
            while await self.reader.read_line() is not None:
                pass
        except trio.BrokenResourceError:  # reset: the node closed with our unread bytes in its buffer
            pass
        return True

    async def aclose(self) -> None:
        await self.stream.aclose()


def error_of(reply: dict[str, Any]) -> tuple[int, str]:
    assert "result" not in reply, reply
    return reply["error"]["code"], reply["error"]["message"]


# -- every method's happy path ------------------------------------------------------------------


def test_node_status_counters_and_peers_describe_the_running_node(net: ProcessNetwork) -> None:
    status = net.wait_for(
        0, lambda: (got := net.call(0, "node.status"))["peers"] == 3 and got, WAIT_S, "to see 3 peers"
    )
    assert status["chain_id"] == CHAIN_ID and status["moniker"] == "node0"
    assert (status["validator_index"], status["validators"]) == (0, 4)
    assert status["node_id"].startswith("12D3KooW") and len(status["last_block_hash"]) == 64
    assert status["role"] in ("primary", "backup") and status["primary"] == status["view"] % 4
    assert status["version"] == importlib.metadata.version("p2pmed")
    assert status["height"] >= 0 and status["mempool_size"] >= 0 and status["uptime_s"] >= 0
    assert (status["sync"], status["peer_height"]) == ("synced", None)

    peers = net.call(0, "net.peers")
    assert [peer["index"] for peer in peers] == [0, 1, 2, 3]
    assert [peer["self"] for peer in peers] == [True, False, False, False]
    assert all(peer["connected"] for peer in peers[1:])
    assert peers[0]["node_id"] == status["node_id"] and len({peer["node_id"] for peer in peers}) == 4
    assert all(peer["address"].startswith("/ip4/127.0.0.1/tcp/") for peer in peers)

    counters = net.call(0, "node.counters")
    assert set(counters) == {
        "consensus_rejected",
        "view_changes_started",
        "transport",
        "gossip",
        "gossip_txs_refused",
        "gossip_txs_rebroadcast",
        "block_sync",
        "block_sync_served",
        "snapshot_served",
        "consensus_strangers",
    }
    assert counters["transport"]["streams_refused"] == 0 and counters["transport"]["streams_malformed"] == 0


def test_a_transaction_waits_pending_then_commits_and_tx_get_and_mempool_list_follow_it(net: ProcessNetwork) -> None:
    sender = new_key()
    first, later = probe(sender, 0), probe(sender, 1)
    assert submit(net, 1, later) == {"tx_id": later.id.hex(), "status": "pending"}  # held: nonce 0 is missing
    assert net.call(1, "tx.get", tx_id=later.id.hex()) == {"tx_id": later.id.hex(), "status": "pending"}
    waiting = net.call(1, "mempool.list")
    assert {"tx_id": later.id.hex(), "type": "load.probe", "sender": sender.public_key.hex(), "nonce": 1} in waiting[
        "txs"
    ]
    assert waiting["size"] >= 1 and len(net.call(1, "mempool.list", limit=1)["txs"]) == 1

    submit(net, 2, first)  # through another node: gossip brings the two together
    got = wait_status(net, [0, 1, 2, 3], later, "committed")
    assert got["height"] >= 1 and got["position"] >= 0
    assert (got["reason"], got["detail"], got["type"]) == (None, None, "load.probe")
    assert (got["sender"], got["nonce"]) == (sender.public_key.hex(), 1)
    assert later.id.hex() not in [tx["tx_id"] for tx in net.call(1, "mempool.list", limit=1000)["txs"]]


def test_a_transaction_the_ledger_refuses_at_execution_is_reported_rejected_with_its_reason(
    net: ProcessNetwork,
) -> None:
    too_long = probe(new_key(), label="x" * 65)  # well formed and signed, but the rule refuses it when executed
    assert submit(net, 0, too_long)["status"] == "pending"
    got = wait_status(net, [0, 3], too_long, "rejected")
    assert got["reason"] == "invalid" and "at most 64 characters" in got["detail"] and got["height"] >= 1


def test_tx_submit_refuses_bad_transactions_saying_why(net: ProcessNetwork) -> None:
    good = probe(new_key())
    forged = Transaction(good.type, good.chain_id, good.sender, good.nonce, good.body, bytes(64))
    other_chain = sign_transaction(new_key(), "another-chain", "load.probe", 0, Probe("p"))
    too_big_to_gossip = probe(new_key(), label="x" * 600_000)  # under the ledger's 1 MiB, over a gossip batch
    for data, reason in (
        (forged.encoded.hex(), "bad-signature"),
        (other_chain.encoded.hex(), "wrong-chain"),
        ("a1" * 40, "malformed"),
        ("00" * (codec.TX_SIZE_MAX + 1), "too-big"),  # a 2 MiB request line: within the socket's limit
        (too_big_to_gossip.encoded.hex(), "too-big"),
    ):
        error = rpc_error(net, 0, "tx.submit", tx=data)
        assert (error.code, error.data) == (ErrorCode.REJECTED_TRANSACTION, {"reason": reason})
    submit(net, 0, good)
    wait_status(net, [0], good, "committed")
    error = rpc_error(net, 0, "tx.submit", tx=good.encoded.hex())
    assert error.data == {"reason": "duplicate"} and "already committed" in error.message


def test_tx_get_of_an_unknown_transaction_is_not_found(net: ProcessNetwork) -> None:
    unknown = os.urandom(32).hex()
    error = rpc_error(net, 2, "tx.get", tx_id=unknown)
    assert error.code == ErrorCode.NOT_FOUND and unknown in error.message


def test_chain_block_by_height_and_by_hash_carries_a_commit_certificate(net: ProcessNetwork) -> None:
    tx = probe(new_key())
    submit(net, 3, tx)
    height = wait_status(net, [3], tx, "committed")["height"]
    by_height = net.call(3, "chain.block", height=height)
    assert net.call(3, "chain.block", hash=by_height["hash"]) == by_height
    assert tx.id.hex() in by_height["tx_ids"] and by_height["tx_count"] == len(by_height["tx_ids"])
    assert by_height["height"] == height and len(by_height["proposer"]) == 64 and by_height["time_ms"] > 0
    if height > 1:
        assert by_height["previous_hash"] == net.call(3, "chain.block", height=height - 1)["hash"]
    certificate = codec.decode(CommitCertificate, bytes.fromhex(by_height["commit_certificate"]), codec.BLOCK_SIZE_MAX)
    assert len({vote.replica for vote in certificate.commits}) >= 3  # 2f+1 of 4
    assert all(vote.kind == VoteKind.COMMIT and vote.sequence == height for vote in certificate.commits)

    missing = rpc_error(net, 3, "chain.block", height=10**9)
    assert missing.code == ErrorCode.NOT_FOUND and "the head is at" in missing.message
    for params in ({}, {"height": 1, "hash": by_height["hash"]}):
        error = rpc_error(net, 3, "chain.block", **params)
        assert error.code == ErrorCode.INVALID_PARAMS and 'exactly one of "height" and "hash"' in error.message


def test_chain_subscribe_delivers_each_committed_block_in_order(net: ProcessNetwork) -> None:
    tx = probe(new_key())
    heights: list[int] = []
    with net.client(2).subscribe("chain.subscribe") as blocks:
        submit(net, 0, tx)
        for _ in range(1_000):
            block = blocks.next(WAIT_S)
            heights.append(block["height"])
            assert block["tx_count"] == len(block["tx_ids"]) and block["rejected"] == 0
            if tx.id.hex() in block["tx_ids"]:
                break
        else:
            raise AssertionError("the transaction's block never came")
    assert heights == list(range(heights[0], heights[0] + len(heights)))


def test_consent_get_returns_the_consent_in_force(net: ProcessNetwork) -> None:
    patient, grantee = register_patient(net), load_home(net.homes[1]).key.public_key  # the laboratory site
    tx = grant(patient, grantee, ("imaging", "procedure"), "HRESCH")
    submit(net, 1, tx)
    wait_status(net, [1], tx, "committed")
    consent = net.call(1, "consent.get", patient=patient.public_key.hex(), grantee=grantee.hex(), category="imaging")
    assert consent["purpose"] == "HRESCH" and consent["expires_ms"] == FAR_FUTURE_MS and consent["tx_id"] == tx.id.hex()
    assert (
        net.call(1, "consent.get", patient=patient.public_key.hex(), grantee=grantee.hex(), category="genomics") is None
    )


def test_the_socket_is_a_socket_only_its_owner_may_use(net: ProcessNetwork) -> None:
    for index in range(net.size):
        mode = os.stat(socket_path(net, index))
        assert stat.S_ISSOCK(mode.st_mode) and stat.S_IMODE(mode.st_mode) == 0o600 and mode.st_uid == os.getuid()


# -- hostile clients ------------------------------------------------------------------------------


async def test_malformed_requests_get_their_json_rpc_error_on_a_connection_that_stays_usable(
    net: ProcessNetwork,
) -> None:
    with trio.fail_after(WAIT_S):
        client = await RawClient.connect(socket_path(net, 0))
        try:
            await client.send_line(b"{not json")
            assert error_of(await client.receive())[0] == ErrorCode.PARSE_ERROR
            await client.send_line(b"\xff\xfe")
            assert error_of(await client.receive())[0] == ErrorCode.PARSE_ERROR
            await client.send_line(json.dumps({"jsonrpc": "1.0", "id": 7, "method": "node.status"}))
            reply = await client.receive()
            assert reply["id"] == 7 and error_of(reply) == (ErrorCode.INVALID_REQUEST, 'expected "jsonrpc": "2.0"')
            await client.send_line(json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "node.status"}]))
            assert error_of(await client.receive())[0] == ErrorCode.INVALID_REQUEST
            assert error_of(await client.call("node.statuz")) == (
                ErrorCode.METHOD_NOT_FOUND,
                'unknown method "node.statuz"; did you mean "node.status"?',
            )
            for method, params, fragment in (
                ("tx.get", {"tx_id": 5}, 'tx.get: parameter "tx_id": expected hex-encoded bytes'),
                ("tx.get", {"tx_id": "abc"}, "not an even number of hex digits"),
                (
                    "chain.block",
                    {"height": "one"},
                    'chain.block: parameter "height": expected an integer, got a string',
                ),
                ("chain.block", {"height": 2**70}, "outside the signed 64-bit range"),
                ("mempool.list", {"limit": 0}, 'mempool.list: "limit" must be 1..'),
                ("tx.submit", ["00", "extra"], "tx.submit: takes at most 1 parameter, got 2"),
                ("consent.get", {}, 'consent.get: missing parameter "patient"'),
                ("net.peers", {"verbose": True}, 'net.peers: unknown parameter "verbose"'),
            ):
                code, message = error_of(await client.call(method, params))
                assert code == ErrorCode.INVALID_PARAMS and fragment in message, message
            assert (await client.call("node.status"))["result"]["chain_id"] == CHAIN_ID
        finally:
            await client.aclose()
    keeps_committing(net)


async def test_a_10_mib_line_is_refused_and_only_its_client_dropped(net: ProcessNetwork) -> None:
    with trio.fail_after(WAIT_S):
        client = await RawClient.connect(socket_path(net, 1))

        async def send_huge() -> None:
            try:
                await client.send_line(
                    b'{"jsonrpc": "2.0", "id": 1, "method": "tx.submit", "params": ["' + b"a" * 10 * MiB
                )
            except trio.BrokenResourceError:
                pass  # the node stopped reading and closed the connection: expected

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_huge)
            reply = await client.receive()
            assert reply["id"] is None
            assert error_of(reply) == (ErrorCode.INVALID_REQUEST, f"request larger than {REQUEST_SIZE_MAX} bytes")
            assert await client.closed_by_node()
        await client.aclose()
        other = await RawClient.connect(socket_path(net, 1))
        assert (await other.call("node.status"))["result"]["validator_index"] == 1
        await other.aclose()
    keeps_committing(net, [1, 0, 2, 3])


async def test_clients_that_vanish_mid_request_leave_the_node_serving(net: ProcessNetwork) -> None:
    path = socket_path(net, 2)
    with trio.fail_after(WAIT_S):
        half = await RawClient.connect(path)
        await half.stream.send_all(b'{"jsonrpc": "2.0", "id": 1, "meth')  # and never the rest
        await half.aclose()
        unread = await RawClient.connect(path)
        await unread.send_line(
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": "mempool.list", "params": {"limit": 1000}})
        )
        await unread.aclose()  # before the reply comes
        subscriber = await RawClient.connect(path)
        assert "result" in await subscriber.call("chain.subscribe")
        await subscriber.aclose()  # a block will commit below with nobody to tell
        for _ in range(20):
            await (await RawClient.connect(path)).aclose()
    keeps_committing(net, [2, 0, 1, 3])
    assert net.call(2, "node.status")["validator_index"] == 2
    assert sample(scrape(net, 2), "p2pmed_rpc_internal_errors_total") == 0


async def test_fifty_concurrent_clients_are_all_answered(net: ProcessNetwork) -> None:
    path = socket_path(net, 3)
    answers: list[int] = []
    with trio.fail_after(WAIT_S):
        clients = [await RawClient.connect(path) for _ in range(50)]  # all fifty connected at once
        try:
            async with trio.open_nursery() as nursery:
                for client in clients:

                    async def ask(client: RawClient = client) -> None:
                        answers.append((await client.call("node.status"))["result"]["validator_index"])

                    nursery.start_soon(ask)
        finally:
            for client in clients:
                await client.aclose()
    assert answers == [3] * 50
    keeps_committing(net, [3, 0, 1, 2])


# -- the CLI client -------------------------------------------------------------------------------


def run_cli(*args: str, input: bytes | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=input)


def test_cli_status_peers_and_watch_show_the_node(net: ProcessNetwork) -> None:
    home = str(net.homes[0])
    result = run_cli("status", "--home", home)
    assert (
        result.exit_code == 0
        and f"node0 (validator 0 of 4) on {CHAIN_ID}" in result.stdout
        and "synced" in result.stdout
    )
    assert json.loads(run_cli("status", "--json", "--home", home).stdout)["chain_id"] == CHAIN_ID
    assert run_cli("status", "--quiet", "--home", home).stdout == ""

    result = run_cli("peers", "--home", home)
    assert result.exit_code == 0 and "connected to 3 of 3 other validators" in result.stdout
    assert "node3" in result.stdout and "this node" in result.stdout
    assert [peer["moniker"] for peer in json.loads(run_cli("peers", "--json", "--home", home).stdout)] == [
        "node0",
        "node1",
        "node2",
        "node3",
    ]

    result = run_cli("watch", "--count", "2", "--interval", "0.5", "--json", "--home", home)
    assert result.exit_code == 0, result.output
    updates = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(updates) == 2 and all(update["validators"] == 4 and update["peers"] == 3 for update in updates)
    assert updates[0]["height"] <= updates[1]["height"] and all(update["tx_per_s"] >= 0 for update in updates)
    result = run_cli("watch", "--count", "1", "--interval", "0.2", "--home", home)
    assert (
        result.exit_code == 0 and "height" in result.stdout and "tx/s" in result.stdout and "peers 3/3" in result.stdout
    )


def test_cli_submits_and_looks_up_transactions_and_blocks(net: ProcessNetwork, tmp_path: Path) -> None:
    home = str(net.homes[1])
    as_hex, as_raw = probe(new_key()), probe(new_key())
    path = tmp_path / "tx.hex"
    path.write_text(as_hex.encoded.hex() + "\n")
    result = run_cli("tx", "submit", str(path), "--home", home)
    assert (result.exit_code, result.stdout) == (0, f"{as_hex.id.hex()} pending\n")
    result = run_cli("tx", "submit", "-", "--json", "--home", home, input=as_raw.encoded)
    assert json.loads(result.stdout) == {"tx_id": as_raw.id.hex(), "status": "pending"}

    height = wait_status(net, [1], as_hex, "committed")["height"]
    wait_status(net, [1], as_raw, "committed")
    result = run_cli("tx", "get", as_hex.id.hex(), "--home", home)
    assert result.exit_code == 0 and f"{as_hex.id.hex()} committed at height {height}" in result.stdout
    assert json.loads(run_cli("tx", "get", as_raw.id.hex(), "--json", "--home", home).stdout)["status"] == "committed"

    result = run_cli("block", "get", str(height), "--home", home)
    assert result.exit_code == 0 and f"block {height} " in result.stdout and as_hex.id.hex() in result.stdout
    assert "commit certificate: none" not in result.stdout and "bytes" in result.stdout
    block_hash = net.call(1, "chain.block", height=height)["hash"]
    assert json.loads(run_cli("block", "get", block_hash, "--json", "--home", home).stdout)["height"] == height

    result = run_cli("tx", "get", "ab" * 32, "--home", home)
    assert result.exit_code == 1 and "neither committed nor waiting" in result.stderr
    result = run_cli("block", "get", "999999999", "--home", home)
    assert result.exit_code == 1 and "no block at height 999999999" in result.stderr
    result = run_cli("tx", "submit", str(path), "--home", home)
    assert result.exit_code == 1 and "[duplicate]" in result.stderr


# -- metrics and logs --------------------------------------------------------------------------------


def test_the_metrics_endpoint_reports_what_the_chain_shows(net: ProcessNetwork) -> None:
    index = 3
    before = scrape(net, index)
    sender = new_key()
    txs = [probe(sender, nonce) for nonce in range(5)]
    for tx in txs:
        submit(net, index, tx)
    wait_status(net, [index], txs[-1], "committed")

    def quiet() -> tuple[int, dict[tuple[str, frozenset[tuple[str, str]]], float]] | None:
        height = net.call(index, "node.status")["height"]
        samples = scrape(net, index)
        return (height, samples) if sample(samples, "p2pmed_height") == height else None

    height, after = net.wait_for(index, quiet, WAIT_S, "to hold still between two reads")
    on_chain = sum(net.call(index, "chain.block", height=h)["tx_count"] for h in range(1, height + 1))
    committed = sample(after, "p2pmed_transactions_committed_total", result="ok") + sample(
        after, "p2pmed_transactions_committed_total", result="rejected"
    )
    assert committed == on_chain  # no node has restarted yet: its counter covers the whole chain
    latency = "p2pmed_commit_latency_seconds_count"
    assert sample(after, latency) - sample(before, latency) == len(txs)
    assert sample(after, "p2pmed_commit_latency_seconds_sum") > sample(before, "p2pmed_commit_latency_seconds_sum")

    status = net.call(index, "node.status")
    assert sample(after, "p2pmed_view") == status["view"] and sample(after, "p2pmed_primary") == status["primary"]
    assert sample(after, "p2pmed_peers_connected") == 3 and sample(after, "p2pmed_validators") == 4
    assert sample(after, "p2pmed_epoch") == status["epoch"] == 0
    assert sample(after, "p2pmed_block_sync_fetched_total", outcome="blocks") == 0  # a validator takes none
    assert sample(after, "p2pmed_consensus_strangers_total") == 0
    assert sample(after, "p2pmed_mempool_transactions") >= 0 and sample(after, "p2pmed_store_size_bytes") > 0
    assert sample(after, "p2pmed_consensus_messages_received_total", kind="commit") > 0
    assert sample(after, "p2pmed_consensus_messages_sent_total", kind="commit") > 0
    assert sample(after, "p2pmed_consensus_frames_received_total") > 0
    assert sample(after, "p2pmed_messages_rejected_total", layer="transport", reason="bad-frame") == 0
    assert sample(after, "p2pmed_rpc_requests_total") > sample(before, "p2pmed_rpc_requests_total")
    rebroadcast = sample(after, "p2pmed_gossip_transactions_rebroadcast_total")
    assert rebroadcast <= net.call(index, "node.counters")["gossip_txs_rebroadcast"]  # read after: may have grown
    info = next(labels for (name, labels) in after if name == "p2pmed_node_info")
    assert dict(info)["validator_index"] == "3" and dict(info)["chain_id"] == CHAIN_ID

    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"http://127.0.0.1:{net.metrics_ports[index]}/other", timeout=WAIT_S)
    assert raised.value.code == 404


def test_logs_carry_height_view_and_peer_and_never_transaction_content(net: ProcessNetwork) -> None:
    patient, grantee = register_patient(net), load_home(net.homes[2]).key.public_key
    tx = grant(patient, grantee, ("mental-health", "genomics"), "CLINTRL")
    submit(net, 0, tx)
    height = wait_status(net, [0, 1, 2, 3], tx, "committed")["height"]
    secrets = [grantee.hex(), patient.public_key.hex(), "mental-health", "genomics", "CLINTRL", tx.encoded.hex()[:64]]
    for index in range(net.size):
        text = net.log_path(index).read_text(errors="replace")
        assert [secret for secret in secrets if secret in text] == []
        events = log_events(net, index)
        committed = [event for event in events if event["event"] == "block committed" and event["height"] == height]
        assert len(committed) == 1 and committed[0]["level"] == "debug"  # debug logging is on: this proves it
        assert committed[0]["txs"] >= 1 and committed[0]["view"] >= 0
        connected = {event["peer"] for event in events if event["event"] == "peer connected"}
        assert connected == {f"node{other}" for other in range(4)} - {f"node{index}"}
        assert all({"height", "view"} <= event.keys() for event in events if event["event"] == "peer connected")


def test_a_killed_primary_is_logged_and_counted_as_a_view_change_and_catches_up(net: ProcessNetwork) -> None:
    status = net.call(0, "node.status")
    primary, view = status["primary"], status["view"]
    survivors = [index for index in range(net.size) if index != primary]
    for index in survivors:  # a dialer logs a disconnect only after it noticed the connection
        net.wait_for(index, lambda index=index: logged_peer(net, index, "peer connected", primary), WAIT_S, "connected")
    net.kill(primary)
    keeps_committing(net, survivors)
    for index in survivors:
        assert net.call(index, "node.status")["view"] > view
        samples = scrape(net, index)
        assert sample(samples, "p2pmed_view_changes_started_total") >= 1 and sample(samples, "p2pmed_view") > view
        net.wait_for(  # noticed by a once-a-second connection check, so not necessarily logged yet
            index,
            lambda index=index: logged_peer(net, index, "peer disconnected", primary),
            WAIT_S,
            f"to log that {primary} disconnected",
        )
        events = log_events(net, index)
        started = [event for event in events if event["event"] == "view change started"]
        entered = [event for event in events if event["event"] == "view entered"]
        assert started and all({"height", "view", "started"} <= event.keys() for event in started)
        assert entered and entered[-1]["view"] > view and entered[-1]["primary"] != primary

    net.start(primary)
    net.wait_ready(primary, WAIT_S)
    keeps_committing(net, [survivors[0], primary])
