"""The site's local audit log on disk: chained, signed, tamper-evident at every position,
crash-safe at its tail, rotated and pruned at its size cap with the chain carried across."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2pmed.crypto import SigningKey
from p2pmed.store.audit_log import (
    FIRST_PREV_SHA256,
    LINE_SIZE_MAX,
    SignedLog,
    log_files,
    parse_line,
    read_entries,
    verify_log,
)

CHAIN = "test-chain"
SITE = SigningKey.from_seed(b"s" * 32)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        self.ms += 1
        return self.ms


def open_log(path: Path, **limits: int) -> SignedLog:
    return SignedLog(path, SITE, CHAIN, Clock(), **limits)


def write(path: Path, count: int, reason: str = "no read grant", **limits: int) -> SignedLog:
    log = open_log(path, **limits)
    for number in range(count):
        log.append("custody-refused", {"number": number, "reason": reason, "verified": False, "x": None})
    return log


LONG = "r" * 5_000
"""A reason that makes three entries fill a file of ``LINE_SIZE_MAX`` bytes."""


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_entries_are_chained_and_signed_and_verify(tmp_path: Path) -> None:
    path = tmp_path / "site-audit.log"
    log = write(path, 3)
    entries = [entry for _, entry in read_entries(path)]
    assert [entry.fields["number"] for entry in entries] == [0, 1, 2]
    assert entries[0].prev_sha256 == FIRST_PREV_SHA256
    assert [entry.prev_sha256 for entry in entries[1:]] == [entry.sha256() for entry in entries[:-1]]
    verification = verify_log(path, SITE.public_key, CHAIN)
    assert verification.ok and verification.entries == 3 and verification.head_sha256 == log.head_sha256
    assert not verification.pruned_before and verification.torn_tail is None


def test_another_key_or_chain_does_not_verify(tmp_path: Path) -> None:
    path = tmp_path / "site-audit.log"
    write(path, 2)
    for key, chain in ((SigningKey.generate().public_key, CHAIN), (SITE.public_key, "other-chain")):
        problem = verify_log(path, key, chain).problem
        assert problem is not None and problem.line == 1 and "signature" in problem.reason


def altered(line: bytes) -> bytes:
    value = json.loads(line)
    value["fields"]["reason"] = "granted after all"
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode() + b"\n"


@pytest.mark.parametrize("position", range(4))
def test_an_altered_entry_is_named_wherever_it_is(tmp_path: Path, position: int) -> None:
    path = tmp_path / "site-audit.log"
    write(path, 4)
    content = lines(path)
    content[position] = altered(content[position])
    path.write_bytes(b"".join(content))
    verification = verify_log(path, SITE.public_key, CHAIN)
    assert verification.problem is not None
    assert (verification.problem.line, verification.entries) == (position + 1, position)
    assert "signature does not verify" in verification.problem.reason


@pytest.mark.parametrize("position", range(3))
def test_a_removed_entry_breaks_the_chain_at_the_next(tmp_path: Path, position: int) -> None:
    path = tmp_path / "site-audit.log"
    write(path, 4)
    content = lines(path)
    del content[position]
    path.write_bytes(b"".join(content))
    verification = verify_log(path, SITE.public_key, CHAIN)
    assert verification.problem is not None and verification.problem.line == position + 1
    expected = "its start was cut" if position == 0 else "does not follow the entry before it"
    assert expected in verification.problem.reason


@pytest.mark.parametrize("position", range(3))
def test_swapped_entries_are_detected(tmp_path: Path, position: int) -> None:
    path = tmp_path / "site-audit.log"
    write(path, 4)
    content = lines(path)
    content[position], content[position + 1] = content[position + 1], content[position]
    path.write_bytes(b"".join(content))
    problem = verify_log(path, SITE.public_key, CHAIN).problem
    assert problem is not None and problem.line == position + 1


def test_a_line_of_garbage_is_named(tmp_path: Path) -> None:
    path = tmp_path / "site-audit.log"
    write(path, 3)
    content = lines(path)
    content[1] = b"x" * (LINE_SIZE_MAX + 10) + b"\n"
    path.write_bytes(b"".join(content))
    problem = verify_log(path, SITE.public_key, CHAIN).problem
    assert problem is not None and problem.line == 2 and "longer than" in problem.reason


def test_a_torn_last_line_is_reported_then_cut_and_recorded_on_reopening(tmp_path: Path) -> None:
    path = tmp_path / "site-audit.log"
    write(path, 3)
    whole = path.read_bytes()
    torn = lines(path)[-1][:40]
    path.write_bytes(whole + torn)  # a kill -9 in the middle of a fourth write
    verification = verify_log(path, SITE.public_key, CHAIN)
    assert verification.ok and verification.entries == 3
    assert verification.torn_tail is not None and verification.torn_tail.line == 4

    log = open_log(path)
    log.append("trail-read", {"patient": "ab" * 32})
    kinds = [(entry.kind, entry.fields) for _, entry in read_entries(path)]
    assert kinds[3][0] == "log-recovered" and kinds[3][1]["torn_bytes"] == 40
    assert kinds[4][0] == "trail-read"
    verification = verify_log(path, SITE.public_key, CHAIN)
    assert verification.ok and verification.entries == 5 and verification.torn_tail is None


def test_a_torn_line_in_the_middle_is_tampering(tmp_path: Path) -> None:
    path = tmp_path / "site-audit.log"
    write(path, 3)
    content = lines(path)
    content[1] = content[1][:30]
    path.write_bytes(b"".join(content))
    problem = verify_log(path, SITE.public_key, CHAIN).problem
    assert problem is not None and problem.line in (2, 3)


def test_rotation_carries_the_chain_into_the_next_file_and_prunes_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "site-audit.log"
    write(path, 30, LONG, file_size_max=LINE_SIZE_MAX, files_max=2)
    files = log_files(path)
    assert [file.name for file in files] == ["site-audit.log.8", "site-audit.log.9", "site-audit.log"]
    assert [len(lines(file)) for file in files] == [3, 3, 3]
    first_of_current = parse_line(lines(path)[0])[0]
    last_of_previous = parse_line(lines(files[-2])[-1])[0]
    assert first_of_current.prev_sha256 == last_of_previous.sha256()
    verification = verify_log(path, SITE.public_key, CHAIN)
    assert verification.ok and verification.pruned_before
    assert verification.files == tuple(file.name for file in files)


def test_a_missing_middle_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "site-audit.log"
    write(path, 9, LONG, file_size_max=LINE_SIZE_MAX)
    files = log_files(path)
    assert len(files) == 3
    files[1].unlink()
    problem = verify_log(path, SITE.public_key, CHAIN).problem
    assert problem is not None and problem.file == files[2].name and problem.line == 1


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "site-audit.log"
    write(path, 2)
    write(path, 2)
    verification = verify_log(path, SITE.public_key, CHAIN)
    assert verification.ok and verification.entries == 4


def test_the_log_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "site-audit.log"
    write(path, 1)
    assert path.stat().st_mode & 0o777 == 0o600
