import tempfile
from pathlib import Path

from p2pmed.ledger.contracts.audit import audit_trail
from p2pmed.ledger.contracts.records import Record
from p2pmed.ledger.state import StateOverlay
from p2pmed.testing import demo


def test_demo_tells_the_story_survives_a_killed_primary_and_leaves_identical_stores() -> None:
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="p2pmed-") as directory:  # short: socket paths
        network = demo.run(lines.append, Path(directory))

        assert lines[-1].startswith("demo finished") and "exit codes [0, 0, 0, 0]" in lines[-1]
        assert any("identical head hash on all four: yes" in line for line in lines)
        assert any("any 2 open it, no single site can" in line for line in lines)
        assert any("the clinician's client combines them and decrypts" in line and "HbA1c" in line for line in lines)
        assert any("next read is refused by the ledger, and the refusal is on the patient" in line for line in lines)
        assert any("audit trail: not-authorised: no consent in force" in line for line in lines)
        assert any(
            "genuine-dispensable" in line and "commission -> ship -> receive -> ship -> receive -> dispense" in line
            for line in lines
        )
        assert any("FAKE0001 turns up: unknown-suspect-counterfeit" in line for line in lines)
        assert any("audit trail" in line and "break-glass (reason sha256 " in line for line in lines)
        assert not any("unconscious" in line and "audit trail" in line for line in lines), "the reason stays sealed"
        assert any(
            "p2pmed report for the patient: 7 audit entries" in line and "complete (7 of the 7" in line
            for line in lines
        )
        assert any("refused offline, entries[6].purpose: the bundle says 'TREAT'" in line for line in lines)
        assert any("the pharmacy's site report:" in line and "dispense" in line for line in lines)
        heads, trails = set(), set()
        for index in range(network.size):
            with network.open_store(index) as store:
                heads.add(store.head())
                [(anchor_key, _)] = list(store.state_items("record/"))  # the lab result's anchor, and only that
                anchor = StateOverlay(store).get(Record, anchor_key)
                assert anchor is not None
                trail = audit_trail(store, "patient", anchor.patient)
                trails.add(tuple((entry.kind, entry.actor) for entry in trail))
        assert len(heads) == 1 and len(trails) == 1
        kinds = [kind for kind, _ in trails.pop()]
        assert kinds == [
            "consent-grant",
            "consent-grant",
            "record-write",
            "record-read",
            "consent-revoke",
            "record-read-refused",  # the clinician's read after the revoke
            "break-glass",
        ]
