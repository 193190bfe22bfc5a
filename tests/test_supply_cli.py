"""The supply commands and RPC methods for containers (and, below, suspect products)
against the health world in a real store, through the CLI as an operator runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from health_world import CASE, GTIN, MAKER, PALLET, PHARMACY, InProcessClient
from p2pmed.cli.main import cli
from p2pmed.crypto import SigningKey, save_signing_key
from p2pmed.ledger.contracts.supply import SupplyVerify, gs1_check_digit

NEW_PALLET = "00950110100000003" + gs1_check_digit("00950110100000003")


def key_file(directory: Path, key: SigningKey, name: str) -> str:
    path = directory / f"{name}.pem"
    save_signing_key(path, key)
    return str(path)


def run(home: Path, *args: str) -> Result:
    """Run ``p2pmed`` with ``--home`` after the command's name (``supply suspect``, ``supply flag`` and
    ``supply clock`` are groups)."""
    depth = 3 if args[:2] in {("supply", "suspect"), ("supply", "flag"), ("supply", "clock")} else 2
    return CliRunner().invoke(cli, [*args[:depth], "--home", str(home), *args[depth:]])


def ok(home: Path, *args: str) -> Any:
    result = run(home, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# -- containers ----------------------------------------------------------------------------------------------


def test_a_container_shows_what_it_holds_and_its_history(home: Path, client: InProcessClient) -> None:
    shown = ok(home, "supply", "container", PALLET)
    assert (shown["container"]["holder"], shown["containers"]) == (MAKER.public_key.hex(), [CASE])
    assert [(pack["gtin"], pack["serial"]) for pack in shown["packs"]] == [(GTIN, "C1"), (GTIN, "C2")]
    human = run(home, "supply", "container", PALLET).output
    assert human.startswith(f"container (00){PALLET}: held, held by") and "2 packs, 1 container inside" in human
    assert ok(home, "supply", "trace", GTIN, "C1")["container"] == CASE
    unknown = run(home, "supply", "container", "0" * 17 + "0")
    assert unknown.exit_code == 1 and "nothing was ever packed" in unknown.output
    bad = run(home, "supply", "container", "123")
    assert bad.exit_code == 2 and "must be 18 digits" in bad.output


def test_a_containers_aggregation_history_exports_as_epcis(home: Path, client: InProcessClient) -> None:
    document = json.loads(run(home, "supply", "container", CASE, "--epcis").output)
    (packing,) = document["epcisBody"]["eventList"]
    assert (document["type"], packing["type"], packing["action"]) == ("EPCISDocument", "AggregationEvent", "ADD")
    assert packing["parentID"] == f"https://id.gs1.org/00/{CASE}"
    assert packing["childEPCs"] == [f"https://id.gs1.org/01/{GTIN}/21/C1", f"https://id.gs1.org/01/{GTIN}/21/C2"]


def test_a_pallet_is_shipped_received_and_unpacked_through_the_cli(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    maker, pharmacy = key_file(directory, MAKER, "maker"), key_file(directory, PHARMACY, "pharmacy")
    to_pharmacy = ("--to", PHARMACY.public_key.hex())
    alone = run(home, "supply", "ship", *to_pharmacy, "--pack", f"{GTIN}:C1", "--key", maker, "--wait")
    assert alone.exit_code == 1 and f"is packed in container (00){CASE}" in alone.output
    shipped = ok(home, "supply", "ship", *to_pharmacy, "--container", PALLET, "--key", maker)
    ok(home, "supply", "receive", "--shipment", shipped["tx_id"], "--container", PALLET, "--key", pharmacy)
    assert ok(home, "supply", "container", PALLET)["container"]["holder"] == PHARMACY.public_key.hex()
    ok(home, "supply", "disaggregate", "--from", PALLET, "--all", "--key", pharmacy)
    ok(home, "supply", "disaggregate", "--from", CASE, "--pack", f"{GTIN}:C1", "--key", pharmacy)
    ok(home, "supply", "dispense", "--pack", f"{GTIN}:C1", "--key", pharmacy)
    ok(home, "supply", "aggregate", "--into", NEW_PALLET, "--container", CASE, "--key", pharmacy)
    neither = run(home, "supply", "disaggregate", "--from", CASE, "--key", pharmacy)
    assert neither.exit_code == 2 and "give either --all or what to take out" in neither.output
    nothing = run(home, "supply", "ship", "--to", MAKER.public_key.hex(), "--key", pharmacy)
    assert nothing.exit_code == 2 and "name what to ship" in nothing.output


# -- suspect products ----------------------------------------------------------------------------------------


def test_a_suspect_case_through_the_cli_with_its_form_3911(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    maker = key_file(directory, MAKER, "maker")
    case = ok(
        home, "supply", "suspect", "quarantine", "--pack", f"{GTIN}:S1", "--reason", "seal broken", "--key", maker
    )
    case_id = case["tx_id"]
    listed = run(home, "supply", "suspect", "list").output
    assert f"case {case_id}: quarantined" in listed and "1 case in all" in listed
    refused = run(home, "supply", "verify", GTIN, "S1")
    assert refused.exit_code == 1 and "quarantined-suspect" in refused.output
    not_yet = run(home, "supply", "suspect", "show", case_id, "--form-3911")
    assert not_yet.exit_code == 1 and "not determined illegitimate" in not_yet.output
    ok(home, "supply", "suspect", "investigate", case_id, "--key", maker)
    ok(
        home,
        *("supply", "suspect", "illegitimate", case_id, "--classification", "counterfeit"),
        *("--description", "no hologram", "--key", maker),
    )
    shown = ok(home, "supply", "suspect", "show", case_id)
    assert (shown["status"], shown["overdue"]) == ("illegitimate", None)
    form = json.loads(run(home, "supply", "suspect", "show", case_id, "--form-3911").output)
    assert (form["5_classification"], form["14_serial_numbers"], form["15_lot_numbers"]) == (
        "Counterfeit",
        ["S1"],
        ["LOT1"],
    )
    assert (form["16_expiration_dates"], form["21_company_category"], form["3_date_of_initial_notification"]) == (
        ["2099-12-31"],
        "Manufacturer",
        None,
    )
    ok(home, "supply", "suspect", "notify", case_id, "--partner", PHARMACY.public_key.hex(), "--key", maker)
    notified = json.loads(run(home, "supply", "suspect", "show", case_id, "--form-3911").output)
    assert notified["3_date_of_initial_notification"] is not None
    assert notified["ledger"]["partners"] == [PHARMACY.public_key.hex()]
    unknown = run(home, "supply", "suspect", "show", "00" * 32)
    assert unknown.exit_code == 1 and "no suspect case has id" in unknown.output


# -- diversion flags -----------------------------------------------------------------------------------------


def test_a_custody_gap_is_scanned_raised_reviewed_and_closed_through_the_cli(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    """Packs shipped and never received: a validator's scan raises the flag the ledger recomputes,
    the destination (a party to it) may not close it, the validator reviews and closes it."""
    maker, pharmacy = key_file(directory, MAKER, "maker"), key_file(directory, PHARMACY, "pharmacy")
    validator = key_file(directory, client.ledger.validators[0], "validator")
    ok(home, "supply", "ship", "--to", PHARMACY.public_key.hex(), "--pack", f"{GTIN}:S2", "--key", maker)
    assert ok(home, "supply", "flag", "scan", "--key", validator) == []  # nothing overdue yet
    client.ledger.time_ms += 15 * 24 * 3600 * 1000  # two weeks and a day, never received
    client.ledger.ok(MAKER, "supply.verify", SupplyVerify(GTIN, "S1", "LOT1", "2099-12-31"))  # a block then
    (raised,) = ok(home, "supply", "flag", "scan", "--key", validator)
    assert raised["status"] == "committed"
    listed = ok(home, "supply", "flags")
    (flag,) = listed["flags"]
    assert listed["count"] == 1 and flag["subject"]["rule"] == "custody-gap" and flag["status"] == "open"
    assert ok(home, "supply", "flag", "scan", "--key", validator) == []  # one flag per subject
    flag_id = flag["id"]
    refused = run(home, "supply", "flag", "review", flag_id, "--key", pharmacy, "--wait")
    assert refused.exit_code == 1 and "not-authorised" in refused.output
    ok(home, "supply", "flag", "review", flag_id, "--key", validator)
    ok(home, "supply", "flag", "close", flag_id, "--finding", "explained", "--note", "lost truck", "--key", validator)
    shown = ok(home, "supply", "flag", "show", flag_id)
    assert (shown["status"], shown["finding"], shown["note"]) == ("closed", "explained", "lost truck")
    assert "finding: explained: lost truck" in run(home, "supply", "flag", "show", flag_id).output
    missing = run(home, "supply", "flag", "show", "00" * 32)
    assert missing.exit_code == 1 and "no diversion flag" in missing.output


def test_flag_candidates_preview_a_closed_week_and_no_further(client: InProcessClient) -> None:
    """Flags are raised on complete weeks; ``at_ms`` asks what the rules find on today's state once the
    week has closed, at most 12 weeks on, never in the past."""
    from p2pmed.ledger.contracts.supply import PackRef, SupplyCommission, SupplyReceive, SupplyShip
    from p2pmed.ledger.contracts.supply.thresholds import WEEK_MS
    from p2pmed.rpc.errors import RpcError

    serials = tuple(f"P{index}" for index in range(5))
    client.ledger.ok(MAKER, "supply.commission", SupplyCommission(GTIN, "LOT3", "2099-12-31", serials))
    packs = tuple(PackRef(GTIN, serial) for serial in serials)
    shipped = client.ledger.run(MAKER, "supply.ship", SupplyShip(PHARMACY.public_key, packs))
    client.ledger.ok(PHARMACY, "supply.receive", SupplyReceive(shipped.tx_id, (), packs))
    now_ms = client.ledger.time_ms
    assert client.call("supply.flag_candidates")["candidates"] == [], "the week is not complete"
    closed_ms = (now_ms // WEEK_MS + 1) * WEEK_MS
    (found,) = client.call("supply.flag_candidates", at_ms=closed_ms)["candidates"]
    assert (found["subject"]["rule"], found["subject"]["site"]) == ("transit-loss", MAKER.public_key.hex())
    for bad in (now_ms - 1, now_ms + 12 * WEEK_MS + 1):
        with pytest.raises(RpcError) as raised:
            client.call("supply.flag_candidates", at_ms=bad)
        assert "up to 12 weeks on" in raised.value.message


def test_validators_vote_a_short_week_and_a_custody_gap_is_flagged_on_it_through_the_cli(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    """The world has commissioned and packed, never counted a shipment: 2f+1 validators vote a
    one-minute week, after which a shipment is a custody gap two minutes on, not two weeks."""
    from p2pmed.rpc.errors import RpcError

    week_ms = 60_000
    validators = [key_file(directory, v, f"validator-{i}") for i, v in enumerate(client.ledger.validators)]
    shown = ok(home, "supply", "clock", "show")
    assert shown == {"week_ms": 7 * 24 * 3600 * 1000, "voted": False, "fixed": None}
    assert "(the default); still open to a 2f+1 vote" in run(home, "supply", "clock", "show").output
    short = run(home, "supply", "clock", "vote", "--week-ms", "999", "--key", validators[0])
    assert short.exit_code == 2 and "999 is not in the range 1000<=x<=604800000" in short.output
    for validator in validators[:3]:
        assert ok(home, "supply", "clock", "show")["week_ms"] != week_ms, "not before the 2f+1-th vote"
        ok(home, "supply", "clock", "vote", "--week-ms", str(week_ms), "--key", validator)
    assert run(home, "supply", "clock", "show").output == (
        f"signals' week: {week_ms} ms (voted by the validators); fixed: the signals' week was set to {week_ms} ms,"
        " and it never changes\n"
    )
    again = run(home, "supply", "clock", "vote", "--week-ms", "120000", "--key", validators[3], "--wait")
    assert again.exit_code == 1 and "it never changes" in again.output
    maker = key_file(directory, MAKER, "maker")
    ok(home, "supply", "ship", "--to", PHARMACY.public_key.hex(), "--pack", f"{GTIN}:S2", "--key", maker)
    now_ms = client.ledger.time_ms
    with pytest.raises(RpcError, match="up to 12 weeks on"):
        client.call("supply.flag_candidates", at_ms=now_ms + 12 * week_ms + 1)
    client.ledger.time_ms += 2 * week_ms  # two of its weeks, never received
    client.ledger.ok(MAKER, "supply.verify", SupplyVerify(GTIN, "S1", "LOT1", "2099-12-31"))  # a block then
    (raised,) = ok(home, "supply", "flag", "scan", "--key", validators[1])
    assert raised["status"] == "committed"
    (flag,) = ok(home, "supply", "flags")["flags"]
    assert (flag["subject"]["rule"], flag["evidence"]["norm"]) == ("custody-gap", 2 * week_ms)
    assert flag["subject"]["week"] == now_ms // week_ms
    ok(home, "supply", "flag", "review", flag["id"], "--key", validators[2])
    assert ok(home, "supply", "flag", "show", flag["id"])["status"] == "under-review"


def test_import_epcis_receives_a_pallet_in_transit_on_the_ledger(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    maker, pharmacy = key_file(directory, MAKER, "maker"), key_file(directory, PHARMACY, "pharmacy")
    ok(home, "supply", "ship", "--to", PHARMACY.public_key.hex(), "--container", PALLET, "--key", maker)
    received = {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T09:30:00Z",
        "eventTimeZoneOffset": "+00:00",
        "epcList": [f"https://id.gs1.org/00/{PALLET}"],
        "action": "OBSERVE",
        "bizStep": "receiving",
    }
    path = directory / "pallet.json"
    path.write_text(json.dumps(received))
    ok(home, "supply", "import-epcis", str(path), "--key", pharmacy)
    assert ok(home, "supply", "container", PALLET)["container"]["holder"] == PHARMACY.public_key.hex()
    unknown = {**received, "epcList": [f"https://id.gs1.org/00/{NEW_PALLET}"]}
    path.write_text(json.dumps(unknown))
    refused = run(home, "supply", "import-epcis", str(path), "--key", pharmacy)
    assert refused.exit_code == 2 and f"(00){NEW_PALLET} is not in transit on the ledger" in refused.output
