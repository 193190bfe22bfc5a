from pathlib import Path

from p2pmed import demo
from p2pmed.store import Store


def test_demo_survives_a_killed_primary_and_leaves_identical_stores(tmp_path: Path) -> None:
    lines: list[str] = []
    network = demo.run(lines.append, home=tmp_path)

    assert lines[-1].startswith("demo finished")
    assert any("identical head hash on all four: yes" in line for line in lines)
    heads = set()
    for path in network.paths:
        with Store.open(path, demo.CHAIN_ID) as store:
            heads.add(store.head())
            assert len(store.transactions_by_sender(store.block(1).txs[0].sender)) == 5
    assert len(heads) == 1
