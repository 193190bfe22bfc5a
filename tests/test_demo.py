import tempfile
from pathlib import Path

from p2pmed import demo


def test_demo_survives_a_killed_primary_and_leaves_identical_stores() -> None:
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="p2pmed-") as directory:  # short: socket paths
        network = demo.run(lines.append, Path(directory))

        assert lines[-1].startswith("demo finished") and "exit codes [0, 0, 0, 0]" in lines[-1]
        assert any("identical head hash on all four: yes" in line for line in lines)
        heads = set()
        for index in range(network.size):
            with network.open_store(index) as store:
                heads.add(store.head())
                patient = store.block(1).txs[0].sender  # type: ignore[union-attr]
                assert len(store.transactions_by_sender(patient)) == 5
        assert len(heads) == 1
