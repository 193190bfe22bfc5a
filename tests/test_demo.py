from pathlib import Path

from p2pmed import demo
from p2pmed.ledger.contracts.consent import valid_consent
from p2pmed.store import Store


def test_demo_applies_the_consent_grant_and_leaves_it_in_the_store(tmp_path: Path) -> None:
    lines: list[str] = []
    demo.run(lines.append, home=tmp_path)

    assert any("transaction applied" in line for line in lines)
    assert lines[-1].startswith("demo finished")
    with Store.open(tmp_path / "demo.sqlite3", demo.CHAIN_ID) as store:
        height, _ = store.head()
        block = store.block(height)
        assert height == 1 and block is not None and len(block.txs) == 1
        grant = block.txs[0]
        consent = valid_consent(store, grant.sender, grant.body["grantee"], "laboratory", demo.BLOCK_TIME_MS)
        assert consent is not None and consent.tx_id == grant.id
