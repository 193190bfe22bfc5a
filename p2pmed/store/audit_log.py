"""A site's local audit log: append-only, hash-chained, signed, crash-safe and bounded.

Files: ``<path>`` (e.g. ``<home>/data/site-audit.log``) is written to; when the
next entry would take it past ``file_size_max`` it is renamed ``<path>.<N>``
(N = 1, 2, ... in order) and a new ``<path>`` begins. Beyond ``files_max``
numbered files the oldest is deleted, so the log never takes more than
``file_size_max * (files_max + 1)`` bytes: whoever can make a site log things
cannot fill its disk. Keep the numbered files elsewhere if they must outlive that.

Entries: one JSON line each, the ``LogEntry`` fields plus ``signature``. An
entry's hash is the SHA-256 of its canonical CBOR (``p2pmed.codec``); each entry
names the previous one's hash (``prev_sha256``; 64 zeros for the very first),
across files too, and is signed by the site's key over that CBOR
(``SignatureDomain.SITE_AUDIT``, bound to the chain id). ``verify_log`` walks
every file from the oldest and names the first entry that does not check out:
one altered fails its signature; one removed or moved breaks the chain at the
entry after the gap. Neither says anything about entries cut off the end, which
only a head hash copied elsewhere (``Verification.head_sha256``) can show.

Crashes: an entry is one ``write`` of a whole line to a file opened for
appending, then ``fsync``. A kill while writing leaves a last line without its
newline: ``verify_log`` reports it as a torn tail (not tampering), and the next
``SignedLog`` to open the file cuts it off and logs a ``log-recovered`` entry
saying how many bytes it dropped and their SHA-256, so the log carries on with
the gap on record.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from p2pmed import codec, strict_json
from p2pmed.crypto import SignatureDomain, SigningKey, verify

__all__ = [
    "FILES_MAX",
    "FILE_SIZE_MAX",
    "FIRST_PREV_SHA256",
    "LINE_SIZE_MAX",
    "FieldValue",
    "LogEntry",
    "LogLineError",
    "LogProblem",
    "SignedLog",
    "Verification",
    "log_files",
    "read_entries",
    "verify_log",
]

FILE_SIZE_MAX = 16 << 20
FILES_MAX = 16
LINE_SIZE_MAX = 16 << 10
"""The longest line, newline included; writers keep entries far below it by construction."""
FIRST_PREV_SHA256 = "0" * 64
RECOVERED_KIND = "log-recovered"

FieldValue = str | int | bool | None


@dataclass(frozen=True)
class LogEntry:
    time_ms: int
    """Wall-clock time of the site that wrote it."""
    kind: str
    prev_sha256: str
    fields: dict[str, FieldValue]

    def encoded(self) -> bytes:
        return codec.encode(self)

    def sha256(self) -> str:
        return hashlib.sha256(self.encoded()).hexdigest()


class LogLineError(ValueError):
    """A line that is not a signed log entry; the message says what is wrong."""


@dataclass(frozen=True)
class LogProblem:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file} line {self.line}: {self.reason}"


@dataclass(frozen=True)
class Verification:
    entries: int
    """Entries that check out, before the first problem."""
    files: tuple[str, ...]
    head_sha256: str
    """The hash of the last entry that checks out (``FIRST_PREV_SHA256`` for an empty log)."""
    problem: LogProblem | None
    """The first entry that is altered, out of place, unsigned or unreadable."""
    torn_tail: LogProblem | None
    """A last line without its newline: a write the site did not finish (killed while writing)."""
    pruned_before: bool
    """The oldest file is one past ``<path>.1`` and continues one that the size cap removed, so its
    first link is not checked. Anywhere else, a first entry that follows another is a problem."""

    @property
    def ok(self) -> bool:
        return self.problem is None


def log_files(path: Path) -> list[Path]:
    """The log's files, oldest first: the numbered ones, then ``path`` itself if it exists."""
    numbered = sorted(
        (int(suffix), candidate)
        for candidate in path.parent.glob(f"{path.name}.*")
        if (suffix := candidate.name.removeprefix(f"{path.name}.")).isdigit() and len(suffix) < 10
    )
    return [candidate for _, candidate in numbered] + ([path] if path.exists() else [])


def parse_line(line: bytes) -> tuple[LogEntry, bytes]:
    """The entry and signature of one line (its newline included or not); ``LogLineError`` if it is not one."""
    try:
        value = strict_json.loads(line, 4)
    except strict_json.JsonProblem as problem:
        raise LogLineError(str(problem)) from None
    if not isinstance(value, dict) or not isinstance(value.get("signature"), str):
        raise LogLineError("not a JSON object with a signature")
    try:
        signature = bytes.fromhex(value.pop("signature"))
        return codec.from_value(LogEntry, value, "entry"), signature
    except ValueError as error:  # CodecError is one
        raise LogLineError(f"not a log entry: {error}") from None


def _render(entry: LogEntry, signature: bytes) -> bytes:
    line = {**codec.to_value(entry), "signature": signature.hex()}
    return json.dumps(line, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def _lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes)`` of each line; ``None`` for one longer than ``LINE_SIZE_MAX``
    (read past in pieces, never held whole)."""
    with path.open("rb") as file:
        number = 0
        while chunk := file.readline(LINE_SIZE_MAX + 1):
            number += 1
            if len(chunk) <= LINE_SIZE_MAX:
                yield number, chunk
                continue
            while chunk and not chunk.endswith(b"\n"):
                chunk = file.readline(LINE_SIZE_MAX + 1)
            yield number, None


def read_entries(path: Path) -> Iterator[tuple[str, LogEntry]]:
    """Every complete, readable entry with its hash, oldest first, unchecked (``verify_log``
    checks): for listing a log that is being written to."""
    for file in log_files(path):
        try:
            for _, line in _lines(file):
                if line is None or not line.endswith(b"\n"):
                    continue
                try:
                    entry, _ = parse_line(line)
                except LogLineError:
                    continue
                yield entry.sha256(), entry
        except FileNotFoundError:  # rotated away or pruned while we read
            continue


def verify_log(path: Path, site_key: bytes, chain_id: str) -> Verification:
    """Check every file of the log at ``path`` against ``site_key`` (see the module docstring)."""
    files = log_files(path)
    count, expected, pruned, torn = 0, None, False, None

    def result(problem: LogProblem | None) -> Verification:
        head = FIRST_PREV_SHA256 if expected is None else expected
        return Verification(count, tuple(file.name for file in files), head, problem, torn, pruned)

    for position, file in enumerate(files):
        for number, line in _lines(file):
            if torn is not None:
                return result(LogProblem(torn.file, torn.line, "an unfinished line in the middle of the log"))
            if line is None:
                return result(LogProblem(file.name, number, f"longer than {LINE_SIZE_MAX} bytes: not an entry"))
            if not line.endswith(b"\n"):
                torn = LogProblem(file.name, number, f"{len(line)} bytes without a newline: a write cut short")
                continue
            try:
                entry, signature = parse_line(line)
            except LogLineError as error:
                return result(LogProblem(file.name, number, str(error)))
            if not verify(site_key, signature, SignatureDomain.SITE_AUDIT, chain_id, entry.encoded()):
                return result(LogProblem(file.name, number, "the signature does not verify with the site key"))
            if expected is None and entry.prev_sha256 != FIRST_PREV_SHA256:
                if not _pruned_file(file, path):
                    return result(
                        LogProblem(file.name, number, "the first entry of the log follows another: its start was cut")
                    )
                pruned = True
            elif expected is not None and entry.prev_sha256 != expected:
                return result(
                    LogProblem(
                        file.name,
                        number,
                        "does not follow the entry before it: an entry was removed, moved or replaced before this one",
                    )
                )
            expected, count = entry.sha256(), count + 1
        if torn is not None and position != len(files) - 1:
            return result(LogProblem(torn.file, torn.line, "an unfinished line at the end of a rotated file"))
    return result(None)


def _pruned_file(file: Path, path: Path) -> bool:
    """Whether ``file`` may follow files the size cap removed: a numbered file past the first."""
    return file.name.removeprefix(f"{path.name}.") not in (path.name, "1")


class SignedLog:
    """The writer. One per log, in the process that owns the site key; appends are synchronous."""

    def __init__(
        self,
        path: Path,
        key: SigningKey,
        chain_id: str,
        now_ms: Callable[[], int],
        *,
        file_size_max: int = FILE_SIZE_MAX,
        files_max: int = FILES_MAX,
    ) -> None:
        assert file_size_max >= LINE_SIZE_MAX and files_max >= 1, "room for at least one entry of each size"
        self.path, self.key, self.chain_id, self.now_ms = path, key, chain_id, now_ms
        self.file_size_max, self.files_max = file_size_max, files_max
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        torn = self._cut_torn_tail()
        self.head_sha256 = self._last_hash()
        if torn:
            self.append(RECOVERED_KIND, {"torn_bytes": len(torn), "torn_sha256": hashlib.sha256(torn).hexdigest()})

    def append(self, kind: str, fields: dict[str, FieldValue]) -> LogEntry:
        entry = LogEntry(self.now_ms(), kind, self.head_sha256, fields)
        line = _render(entry, self.key.sign(SignatureDomain.SITE_AUDIT, self.chain_id, entry.encoded()))
        assert len(line) <= LINE_SIZE_MAX, f"a {kind} entry of {len(line)} bytes: its fields are not bounded"
        if self._size() + len(line) > self.file_size_max:
            self._rotate()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        self.head_sha256 = entry.sha256()
        return entry

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _cut_torn_tail(self) -> bytes:
        """Cut an unfinished last line off the current file; what was cut."""
        if self._size() == 0:
            return b""
        with self.path.open("r+b") as file:
            data = file.read()
            kept = data.rfind(b"\n") + 1
            if kept == len(data):
                return b""
            file.truncate(kept)
            file.flush()
            os.fsync(file.fileno())
        return data[kept:]

    def _last_hash(self) -> str:
        """The hash of the newest entry (of a line that does not parse: of its bytes, so the
        chain goes on from it and ``verify_log`` names that line)."""
        for file in reversed(log_files(self.path)):
            seen, last = False, b""
            for _, line in _lines(file):
                seen, last = True, line or b""  # an oversized line is not kept whole
            if not seen:
                continue
            try:
                return parse_line(last)[0].sha256()
            except LogLineError:
                return hashlib.sha256(last).hexdigest()
        return FIRST_PREV_SHA256

    def _rotate(self) -> None:
        numbered = log_files(self.path)[:-1]
        number = int(numbered[-1].name.rsplit(".", 1)[1]) + 1 if numbered else 1
        os.replace(self.path, self.path.with_name(f"{self.path.name}.{number}"))
        numbered.append(self.path.with_name(f"{self.path.name}.{number}"))
        for old in numbered[: max(0, len(numbered) - self.files_max)]:
            old.unlink(missing_ok=True)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
