"""GS1 company prefixes: a GTIN is commissioned only by the manufacturer holding its
prefix, which a regulator or 2f+1 validators grant, and prefixes never overlap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from health_world import GTIN, MAKER, InProcessClient
from ledger_harness import LedgerHarness, key
from p2pmed.cli.main import cli
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.supply import PrefixGrant, PrefixRevoke, SupplyCommission, gs1_check_digit
from p2pmed.ledger.errors import RejectReason

BRAND, ROGUE, REGULATOR, PHARMACY = key("brand"), key("rogue"), key("regulator"), key("pharmacy")
BRAND_GTIN = "10614141073464"  # indicator 1, company prefix 0614141, item 07346, check 4


def gtin(body: str) -> str:
    return body + gs1_check_digit(body)


@pytest.fixture
def ledger() -> LedgerHarness:
    ledger = LedgerHarness()
    for organisation, kind in ((BRAND, "manufacturer"), (ROGUE, "manufacturer"), (REGULATOR, "regulator")):
        ledger.admit_organisation(organisation, kind)
    ledger.admit_organisation(PHARMACY, "pharmacy")
    return ledger


def commission(gtin_14: str, serial: str = "S1") -> SupplyCommission:
    return SupplyCommission(gtin_14, "L1", "2031-12-31", (serial,))


def test_a_gtin_without_a_granted_prefix_is_not_commissioned(ledger: LedgerHarness) -> None:
    detail = ledger.refused(BRAND, "supply.commission", commission(BRAND_GTIN), RejectReason.NOT_AUTHORISED)
    assert f"GTIN {BRAND_GTIN} carries no GS1 company prefix granted on this ledger" in detail
    assert supply.pack(ledger.state, BRAND_GTIN, "S1") is None


def test_the_prefix_holder_commissions_every_gtin_that_carries_it_and_nobody_else_does(
    ledger: LedgerHarness,
) -> None:
    ledger.ok(REGULATOR, "supply.prefix.grant", PrefixGrant(BRAND.public_key, "0614141"))
    ledger.ok(BRAND, "supply.commission", commission(BRAND_GTIN))
    ledger.ok(BRAND, "supply.commission", commission(gtin("0061414199999")))  # indicator 0, another item
    for stolen in (BRAND_GTIN, gtin("5061414100001")):
        detail = ledger.refused(ROGUE, "supply.commission", commission(stolen, "R1"), RejectReason.NOT_AUTHORISED)
        assert f"carries company prefix 0614141, granted to {BRAND.public_key.hex()[:16]}" in detail
    # The prefix is read after the indicator digit: 0614141 at the start does not count.
    detail = ledger.refused(BRAND, "supply.commission", commission(gtin("0614141000001")), RejectReason.NOT_AUTHORISED)
    assert "carries no GS1 company prefix" in detail


def test_a_validators_grant_is_a_vote_in_force_at_2f_plus_1(ledger: LedgerHarness) -> None:
    first, second, third, _ = ledger.validators
    ledger.ok(first, "supply.prefix.grant", PrefixGrant(BRAND.public_key, "0614141"))
    ledger.ok(second, "supply.prefix.grant", PrefixGrant(ROGUE.public_key, "0614141"))  # votes for another do not add
    ledger.ok(third, "supply.prefix.grant", PrefixGrant(BRAND.public_key, "0614141"))
    assert supply.prefix_owner(ledger.state, "0614141") is None
    ledger.refused(BRAND, "supply.commission", commission(BRAND_GTIN), RejectReason.NOT_AUTHORISED)
    ledger.ok(second, "supply.prefix.grant", PrefixGrant(BRAND.public_key, "0614141"))  # a validator changes its vote
    assert supply.prefix_owner(ledger.state, "0614141") == BRAND.public_key
    ledger.ok(BRAND, "supply.commission", commission(BRAND_GTIN))


def test_only_a_regulator_or_a_validator_grants(ledger: LedgerHarness) -> None:
    for claimant in (ROGUE, PHARMACY, key("stranger")):
        result = ledger.run(claimant, "supply.prefix.grant", PrefixGrant(ROGUE.public_key, "0614141"))
        assert not result.ok
    detail = ledger.refused(
        ROGUE, "supply.prefix.grant", PrefixGrant(ROGUE.public_key, "0614141"), RejectReason.NOT_AUTHORISED
    )
    assert detail == "only a regulator or the validators grant company prefixes"
    assert supply.prefix_owner(ledger.state, "0614141") is None


@pytest.mark.parametrize(
    ("grant", "fragment"),
    [
        (PrefixGrant(BRAND.public_key, "06141"), "6..12 digits"),
        (PrefixGrant(BRAND.public_key, "0614141000000"), "6..12 digits"),
        (PrefixGrant(BRAND.public_key, "061414A"), "6..12 digits"),
        (PrefixGrant(PHARMACY.public_key, "0614141"), "granted to a manufacturer in force"),
        (PrefixGrant(key("nobody").public_key, "0614141"), "granted to a manufacturer in force"),
    ],
)
def test_a_malformed_grant_is_refused(ledger: LedgerHarness, grant: PrefixGrant, fragment: str) -> None:
    assert fragment in ledger.refused(REGULATOR, "supply.prefix.grant", grant, RejectReason.INVALID)


def test_prefixes_never_overlap(ledger: LedgerHarness) -> None:
    ledger.ok(REGULATOR, "supply.prefix.grant", PrefixGrant(BRAND.public_key, "0614141"))
    again = PrefixGrant(BRAND.public_key, "0614141")
    assert "already granted to" in ledger.refused(REGULATOR, "supply.prefix.grant", again, RejectReason.DUPLICATE)
    for claim in ("0614141", "06141410", "061414"):  # the same, a longer one it starts, a shorter one starting it
        detail = ledger.refused(
            REGULATOR, "supply.prefix.grant", PrefixGrant(ROGUE.public_key, claim), RejectReason.INVALID
        )
        assert "granted" in detail
    ledger.ok(REGULATOR, "supply.prefix.grant", PrefixGrant(ROGUE.public_key, "0614142"))  # a neighbour is fine
    assert supply.prefix_of(ledger.state, BRAND_GTIN) == ("0614141", BRAND.public_key)


def test_a_longer_prefix_blocks_a_shorter_one_that_starts_it(ledger: LedgerHarness) -> None:
    ledger.ok(REGULATOR, "supply.prefix.grant", PrefixGrant(BRAND.public_key, "061414100"))
    detail = ledger.refused(
        REGULATOR, "supply.prefix.grant", PrefixGrant(ROGUE.public_key, "0614141"), RejectReason.INVALID
    )
    assert "0614141 starts a company prefix already granted" in detail


def test_the_cli_grants_by_validator_votes_and_shows_the_holder(
    client: InProcessClient, home: Path, directory: Path
) -> None:
    from test_supply_cli import key_file

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["supply", "prefix", args[0], "--home", str(home), *args[1:], "--json"])
        assert result.exit_code == 0, result.output
        return result.output

    assert json.loads(run("show", GTIN)) == {"prefix": "9501101", "organisation": MAKER.public_key.hex()}
    assert json.loads(run("show", "9501101"))["organisation"] == MAKER.public_key.hex()
    grant = ("grant", "--org", MAKER.public_key.hex(), "--prefix", "4012345")
    voters = [
        key_file(directory, validator, f"validator-{index}")
        for index, validator in enumerate(client.ledger.validators[:3])
    ]
    for voter in voters:
        run(*grant, "--key", voter, "--wait")
    assert json.loads(run("show", "4012345"))["organisation"] == MAKER.public_key.hex()
    for voter in voters:
        run("revoke", "--prefix", "4012345", "--key", voter, "--wait")
    unknown = CliRunner().invoke(cli, ["supply", "prefix", "show", "--home", str(home), "4012345"])
    assert unknown.exit_code != 0 and "no company prefix granted covers 4012345" in unknown.output, "revoked"
    bad = CliRunner().invoke(cli, ["supply", "prefix", "show", "--home", str(home), "40"])
    assert bad.exit_code == 2 and "6..12 digits" in bad.output


def test_a_prefix_is_revoked_by_the_same_authority_and_can_be_granted_anew(ledger: LedgerHarness) -> None:
    ledger.ok(REGULATOR, "supply.prefix.grant", PrefixGrant(BRAND.public_key, "06141410"))
    ledger.ok(BRAND, "supply.commission", commission(BRAND_GTIN))
    assert "revoke company prefixes" in ledger.refused(
        BRAND, "supply.prefix.revoke", PrefixRevoke("06141410"), RejectReason.NOT_AUTHORISED
    )
    assert "is not granted" in ledger.refused(
        REGULATOR, "supply.prefix.revoke", PrefixRevoke("0614142"), RejectReason.INVALID
    )
    first, second, third, _ = ledger.validators
    for validator in (first, second):
        ledger.ok(validator, "supply.prefix.revoke", PrefixRevoke("06141410"))
    assert supply.prefix_owner(ledger.state, "06141410") == BRAND.public_key, "two votes of four are not 2f+1"
    ledger.ok(third, "supply.prefix.revoke", PrefixRevoke("06141410"))
    assert supply.prefix_owner(ledger.state, "06141410") is None
    refused = ledger.refused(BRAND, "supply.commission", commission(BRAND_GTIN, "S2"), RejectReason.NOT_AUTHORISED)
    assert "carries no GS1 company prefix" in refused
    assert supply.pack(ledger.state, BRAND_GTIN, "S1") is not None, "what was commissioned stays"
    ledger.ok(REGULATOR, "supply.prefix.grant", PrefixGrant(ROGUE.public_key, "0614141"))  # no longer overlaps
    ledger.ok(REGULATOR, "supply.prefix.revoke", PrefixRevoke("0614141"))
    assert supply.prefix_of(ledger.state, BRAND_GTIN) is None
