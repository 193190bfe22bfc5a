"""A new node 100,000 blocks behind: replaying every block vs starting from a snapshot.

Run ``python benchmarks/fast_start.py [--blocks N]``. It writes a certified chain of
``N`` blocks (``p2pmed.testing.certified_chain``; one load probe each, each from a sender
of its own, so that every transaction leaves a key in the state) into a validator's store,
then brings an empty observer store to the head both ways, in process, with the node's own
code and no network between them:

- replay: every block through ``NodeCore.apply_synced`` (its certificate checked as a
  light client does, executed, stored), as block sync does;
- snapshot: the validator's offer and every chunk of state encoded and decoded as on the
  wire (``p2pmed.net.snapshot_sync``), the offer checked from genesis, the state checked
  against the certified root and installed, then the blocks after the snapshot height
  applied as above.

It prints the seconds each way, the state's size and the wire bytes, and asserts only
that both ways end at the validator's head with its state root.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from p2pmed import codec
from p2pmed.consensus.snapshot_offer import check_epochs_in_state, verify_offer
from p2pmed.crypto import Ed25519Verifier, SigningKey
from p2pmed.ledger.contracts import ALL_TX_TYPES, membership
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.machine import Ledger
from p2pmed.ledger.tx import sign_transaction
from p2pmed.net.snapshot_sync import SnapshotAnswer
from p2pmed.node import snapshots
from p2pmed.node.core import NodeCore
from p2pmed.node.daemon import replica_config
from p2pmed.site.home import LoadedHome, create_testnet, load_home
from p2pmed.store import Store
from p2pmed.store.sqlite import SNAPSHOT_INTERVAL_BLOCKS
from p2pmed.testing.certified_chain import write_certified_chain

CHAIN_ID = "p2pmed-bench-fast-start"
OBSERVER_KEY = SigningKey.from_seed(b"o" * 32)


class _Entries:
    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}

    def state_get(self, key: str) -> bytes | None:
        return self.items.get(key)


def _core(home: LoadedHome, path: Path, key: SigningKey | None = None) -> NodeCore:
    """The node of ``home`` on the store at ``path``; with ``key``, an observer of its network."""
    genesis = home.genesis
    ledger = Ledger(genesis.chain_id, ALL_TX_TYPES, genesis.ledger_state())
    return NodeCore(path, ledger, key or home.key, replica_config(home), 0, genesis.hash)


def _catch_up(core: NodeCore, validator: NodeCore) -> None:
    """What block sync does: the validator's blocks after the core's head, each checked and applied."""
    while core.store.head()[0] < validator.store.head()[0]:
        for item in validator.blocks_from(core.store.head()[0] + 1).blocks:
            core.apply_synced(item)


def _replay(home: LoadedHome, validator: NodeCore, path: Path) -> float:
    start = time.perf_counter()
    core = _core(home, path, OBSERVER_KEY)
    _catch_up(core, validator)
    seconds = time.perf_counter() - start
    core.close()
    return seconds


def _wire(answer: SnapshotAnswer, counted: list[int]) -> SnapshotAnswer:
    data = codec.encode(answer)
    counted[0] += len(data)
    return codec.decode(SnapshotAnswer, data, 8 << 20)


def _snapshot(home: LoadedHome, validator: NodeCore, path: Path) -> tuple[float, float, int, int, int]:
    genesis, source = home.genesis, validator.store
    wire = [0]
    start = time.perf_counter()
    offer = _wire(snapshots.offer(source), wire).offer
    assert offer is not None
    genesis_epoch = membership.genesis_epoch(genesis.validator_profiles)
    verified = verify_offer(offer, genesis_epoch, genesis.chain_id, Ed25519Verifier())
    entries, after, more = _Entries(), "", True
    while more:
        answer = _wire(snapshots.entries(source, verified.base.height, after), wire)
        entries.items.update((entry.key, entry.value) for entry in answer.entries)
        after, more = answer.entries[-1].key, answer.more
    check_epochs_in_state(entries, verified.epochs)
    with Store.open(path, genesis.chain_id, genesis.hash, genesis.ledger_state()) as store:
        store.install_snapshot(verified.base, entries.items, verified.state)
    installed = time.perf_counter() - start
    core = _core(home, path, OBSERVER_KEY)
    _catch_up(core, validator)
    total = time.perf_counter() - start
    core.close()
    size = sum(len(key) + len(value) for key, value in entries.items.items())
    return installed, total, len(entries.items), size, wire[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100_000, help="chain length, a multiple of 16")
    args = parser.parse_args()
    if args.blocks <= SNAPSHOT_INTERVAL_BLOCKS or args.blocks % 16:
        parser.error(f"--blocks must be a multiple of 16 above the snapshot interval, {SNAPSHOT_INTERVAL_BLOCKS}")
    with tempfile.TemporaryDirectory(prefix="p2pmed-bench-fs-") as scratch:
        directory = Path(scratch)
        homes = create_testnet(directory / "net", 4, 40_000, CHAIN_ID)
        start = time.perf_counter()
        txs = [  # one sender each: every transaction leaves a key in the state, as healthcare ones do
            sign_transaction(SigningKey.from_seed(index.to_bytes(32, "big")), CHAIN_ID, "load.probe", 0, Probe(""))
            for index in range(args.blocks)
        ]
        write_certified_chain(homes, args.blocks, time.time_ns() // 1_000_000, txs=txs)
        print(f"wrote {args.blocks:,} certified blocks in {time.perf_counter() - start:.0f} s", flush=True)
        validator_home = load_home(homes[0])
        validator = _core(validator_home, validator_home.store_path)
        replay_s = _replay(validator_home, validator, directory / "replay.sqlite3")
        print(f"replay:   {replay_s:8.1f} s  ({args.blocks / replay_s:,.0f} blocks/s)", flush=True)
        installed_s, total_s, keys, size, wire = _snapshot(validator_home, validator, directory / "snapshot.sqlite3")
        offer = snapshots.offer(validator.store).offer
        assert offer is not None
        base = offer.base.height
        print(
            f"snapshot: {total_s:8.1f} s  (state after block {base:,}: {keys:,} entries, {size / 1e6:.1f} MB,"
            f" {wire / 1e6:.1f} MB on the wire, fetched, checked and installed in {installed_s:.1f} s;"
            f" then {args.blocks - base:,} blocks)"
        )
        print(f"snapshot is {replay_s / total_s:.0f}x faster")
        genesis_hash = validator_home.genesis.hash
        with (
            Store.open(directory / "replay.sqlite3", CHAIN_ID, genesis_hash) as replayed,
            Store.open(directory / "snapshot.sqlite3", CHAIN_ID, genesis_hash) as started,
        ):
            head = validator.store.head()[0]
            assert replayed.head() == started.head() == validator.store.head()
            assert replayed.commitment(head) == started.commitment(head) == validator.store.commitment(head)
        validator.close()


if __name__ == "__main__":
    main()
