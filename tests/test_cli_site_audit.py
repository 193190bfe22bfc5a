"""``p2pmed audit site-verify``: a site audit log checked offline, from a home or from the
files and the site's public key alone; tampering exits 1 naming the first bad entry."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from p2pmed.cli.main import cli
from p2pmed.node.site_audit import LOG_FILE
from p2pmed.site.home import create_testnet, load_home
from p2pmed.store.audit_log import SignedLog

CHAIN = "audit-chain"


def site_home(tmp_path: Path) -> Path:
    (home,) = create_testnet(tmp_path / "net", 1, 40_000, CHAIN)
    log = SignedLog(home / "data" / LOG_FILE, load_home(home).key, CHAIN, lambda: 1_800_000_000_000)
    for number in range(3):
        log.append("custody-refused", {"request": "share", "reason": f"refusal {number}"})
    return home


def verify(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["audit", "site-verify", *args])
    return result.exit_code, result.output


def test_a_home_s_log_verifies_with_the_key_its_genesis_lists(tmp_path: Path) -> None:
    home = site_home(tmp_path)
    code, output = verify("--home", str(home), "--json")
    assert code == 0, output
    assert json.loads(output) | {"head_sha256": "-"} == {
        "ok": True,
        "entries": 3,
        "files": ["site-audit.log"],
        "head_sha256": "-",
        "problem": None,
        "torn_tail": None,
        "pruned_before": False,
    }


def test_a_copied_log_verifies_with_the_site_key_alone_and_names_a_tampered_entry(tmp_path: Path) -> None:
    home = site_home(tmp_path)
    copy = tmp_path / "copy.log"
    copy.write_bytes((home / "data" / LOG_FILE).read_bytes())
    site = load_home(home).key.public_key.hex()
    assert verify("--log", str(copy), "--key", site, "--chain-id", CHAIN)[0] == 0

    copy.write_bytes(copy.read_bytes().replace(b"refusal 1", b"served 1!"))
    code, output = verify("--log", str(copy), "--key", site, "--chain-id", CHAIN)
    assert code == 1 and "NOT VERIFIED" in output and "copy.log line 2: the signature does not verify" in output

    other = load_home(create_testnet(tmp_path / "other", 1, 40_100, CHAIN)[0]).key.public_key.hex()
    code, output = verify("--home", str(home), "--key", other)
    assert code == 1 and "line 1" in output


def test_verify_without_a_home_needs_the_log_key_and_chain_id(tmp_path: Path) -> None:
    code, output = verify("--log", str(tmp_path / "site-audit.log"))
    assert code == 2 and "give --home, or all of --log, --key and --chain-id" in output
    code, output = verify("--log", str(tmp_path / "none.log"), "--key", "ab" * 32, "--chain-id", CHAIN)
    assert code == 2 and "no site audit log there" in output
