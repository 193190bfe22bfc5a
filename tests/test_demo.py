import tempfile
from pathlib import Path

from p2pmed.ledger.contracts import supply
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
        assert any(line.startswith("12a.") and "the pallet holds 6 packs" in line for line in lines)
        assert any(
            line.startswith("12b.") and "mismatch-suspect alert" in line and "quarantined-suspect" in line
            for line in lines
        )
        assert any(
            line.startswith("12c.") and "raises a transit-loss flag against the distributor" in line for line in lines
        )
        assert any(line.startswith("12d.") and "it is under-review" in line for line in lines)
        assert any("filed as vital-signs by their LOINC codes" in line for line in lines)
        assert any("reads them back as FHIR Observations naming the device: 8867-4 = 72 /min" in line for line in lines)
        assert any("proves one reading alone (59408-5 = 97 %)" in line and "checked offline" in line for line in lines)
        assert any("the oximeter floods: after its burst" in line and "over its rate" in line for line in lines)
        assert any("its next batch is refused at the door" in line and "device in force" in line for line in lines)
        assert any("the export reads 2 records of 2 consenting patients" in line for line in lines)
        assert any("Safe Harbor identifiers found in it: none" in line for line in lines)
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
                anchors = [StateOverlay(store).get(Record, key) for key, _ in store.state_items("record/")]
                labs = [found for found in anchors if found is not None and found.category == "laboratory"]
                [trail] = [  # the story's patient (the research scene's have records, no consents)
                    trail
                    for trail in (audit_trail(store, "patient", anchor.patient) for anchor in labs)
                    if trail[0].kind == "consent-grant"
                ]
                trails.add(tuple((entry.kind, entry.actor) for entry in trail))
        assert len(heads) == 1 and len(trails) == 1
        with network.open_store(0) as store:
            (flag,) = supply.flags(store)
            assert (flag.subject.rule, flag.status) == ("transit-loss", "under-review")
            assert supply.signal_week_ms(store) == 2_000
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
