"""Compliance report bundles: a subject's audit entries, each proved, checked offline from genesis.

A bundle (``p2pmed report``) is one JSON document about one subject: a patient, an actor
(a person or an organisation), a site (an organisation as actor, with its supply-chain
and trial activity, ``p2pmed.consensus.report_activity``), or the whole network (every
patient's entries; its subject is empty), over a period. It carries:

- ``epochs``: for each validator set change since genesis, a state proof of the new set's
  record (``validators/epoch/<n>``) certified by a block of the set before it
  (``p2pmed.node.epoch_proofs`` keeps these). Starting from the genesis set, the
  verifier adopts the sets in order, each on the word of a quorum of the one before.
- ``anchor``: one certified block header (the node's head when the bundle was made) and
  its commit certificate, signed by the set of its epoch. Its header commits to a state
  root; every key below is proved against that root by its path in the state tree. With
  the block's ``previous_hash`` (which the certificate does not cover) it gives the block
  hash, which any site's node shows for that height (``p2pmed block get``).
- ``latest``: the number of the newest epoch in that state, which must be the last one the
  bundle carries, so a bundle cannot leave out a change it knew of;
- ``count``: how many entries the audit index keeps for the subject in that state
  (``p2pmed.ledger.contracts.audit.count_key``; for the network, ``NETWORK_COUNT_KEY``);
- ``entries``: each audit entry's value and path. Its key is derived from its value and
  the subject, so an entry of another subject does not fit;
- ``activity`` (a site's bundle only): supply events the site made and trials it sponsors,
  each record's key, value and path; each proved, none proved complete.

Every entry lies in the bundle's period. ``complete`` says they are all the subject's
entries, which the verifier checks against the proved count; otherwise the bundle proves
each entry it carries, but not that none of the period's was left out.

Every readable field (dates, kinds, ids, the epochs' keys) is a copy of what the proved
bytes say: the verifier rebuilds the whole document from the proofs it checked and
requires it to be identical, naming the first field that differs. So any altered byte is
either a proof that fails or a field that does not match its proof.

What it cannot show: that a set voted out long ago, whose keys leaked later, did not sign a
different history (a bundle that stops at that set's epoch could be forged by it). The
``anchor`` names its height and block hash: compare them with any site's node.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, TypeVar

from p2pmed import codec, strict_json
from p2pmed.consensus.certificates import InvalidMessage
from p2pmed.consensus.epoch_chain import EpochChainRefused, adopt_epochs, set_at
from p2pmed.consensus.messages import CommitCertificate, ProposalHeader, header_digest
from p2pmed.consensus.report_activity import Activity, activity_fields, decode_activity
from p2pmed.consensus.state_proof import STATE_PROOF_SIZE_MAX, StateProof
from p2pmed.crypto import Verifier
from p2pmed.ledger.block import HASH_SIZE, BlockHeader
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.contracts.audit import NETWORK_COUNT_KEY, AuditEntry, count_key, entry_key
from p2pmed.ledger.state import STATE_VALUE_SIZE_MAX
from p2pmed.ledger.state_tree import PATH_BITS, TreePath, root_from_path

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_SIZE_MAX",
    "ENTRIES_MAX",
    "SUBJECT_KINDS",
    "BundleRefused",
    "ProvedValue",
    "ReportProof",
    "VerifiedReport",
    "anchor_block_hash",
    "audit_index",
    "bundle_document",
    "entry_subject",
    "load_bundle",
    "subject_count_key",
    "verify_bundle",
]

BUNDLE_FORMAT = "p2pmed-report/1"
BUNDLE_SIZE_MAX = 64 << 20
ENTRIES_MAX = 5_000
"""Entries one bundle carries at most (about 2.2 KB each as JSON); as many activity records."""
SUBJECT_KINDS = ("patient", "actor", "site", "network")
KEY_LENGTH_MAX = 1_024
EPOCHS_MAX = 1_000
_PATH_SIZE_MAX = (PATH_BITS + 2) * 40
_DEPTH_MAX = 8
_T = TypeVar("_T")


class BundleRefused(Exception):
    """A bundle that does not check out; the message names the part that failed."""


@dataclass(frozen=True)
class ProvedValue:
    """A key's value (None: absent) and its path to the anchor's state root."""

    key: str
    value: bytes | None
    path: TreePath


def audit_index(by: str) -> str:
    """The audit index a bundle about a ``by`` reads: a site's is its actor trail, the
    network's every patient's."""
    return {"site": "actor", "network": "patient"}.get(by, by)


def subject_count_key(by: str, subject: bytes) -> str:
    return NETWORK_COUNT_KEY if by == "network" else count_key(audit_index(by), subject)


def entry_subject(by: str, subject: bytes, entry: AuditEntry) -> bytes:
    """Whom the index keeps ``entry`` under in a bundle about ``subject``."""
    return entry.patient if by == "network" else subject


@dataclass(frozen=True)
class ReportProof:
    """What a bundle claims, as the node made it; ``verify_bundle`` checks it."""

    chain_id: str
    by: str
    subject: bytes
    since_ms: int
    until_ms: int | None
    complete: bool
    epochs: tuple[StateProof, ...]
    header: ProposalHeader
    certificate: CommitCertificate
    previous_hash: bytes
    """The anchor block's parent hash: not certified, only for ``anchor_block_hash``."""
    latest: ProvedValue
    count: ProvedValue
    entries: tuple[ProvedValue, ...]
    activity: tuple[ProvedValue, ...] = ()


@dataclass(frozen=True)
class VerifiedReport:
    """A bundle's content once every proof in it checked out."""

    proof: ReportProof
    epochs: tuple[membership.Epoch, ...]
    """The sets adopted after genesis, in order."""
    anchor_epoch: int
    count: int
    """How many entries the subject has in the anchor's state."""
    entries: tuple[AuditEntry, ...]
    activity: tuple[Activity, ...] = ()

    @property
    def anchor_block_hash(self) -> bytes:
        return anchor_block_hash(self.proof)


def anchor_block_hash(proof: ReportProof) -> bytes:
    """The hash of the anchor block as nodes store it: its certified header with ``previous_hash``.
    A wrong ``previous_hash`` gives a hash no site shows at that height."""
    header = proof.header
    return BlockHeader(
        proof.chain_id,
        header.height,
        proof.previous_hash,
        header.tx_root,
        header.tx_count,
        header.proposer,
        header.time_ms,
        header.state,
    ).hash


def _decode(cls: type[_T], data: bytes, size_max: int, where: str) -> _T:
    try:
        return codec.decode(cls, data, size_max)
    except (codec.CodecError, ValueError) as error:
        raise BundleRefused(f"{where}: malformed: {error}") from None


def _check_path(proved: ProvedValue, root: bytes, where: str) -> None:
    try:
        found = root_from_path(proved.key, proved.value, proved.path)
    except ValueError as error:
        raise BundleRefused(f"{where}: {error}") from None
    if found != root:
        raise BundleRefused(f"{where}: the value and path of {proved.key!r} do not lead to the anchor's state root")


def _proved_int(proved: ProvedValue, key: str, root: bytes, where: str) -> int:
    if proved.key != key:
        raise BundleRefused(f"{where}: proves {proved.key!r}, not {key!r}")
    _check_path(proved, root, where)
    return 0 if proved.value is None else _decode(int, proved.value, 64, where)


def verify_bundle(
    proof: ReportProof, chain_id: str, genesis_keys: tuple[bytes, ...], verifier: Verifier
) -> VerifiedReport:
    """Check ``proof`` from genesis (its chain id and validator keys); raise ``BundleRefused``."""
    if proof.chain_id != chain_id:
        raise BundleRefused(f"chain_id: the bundle is of chain {proof.chain_id!r}, the genesis of {chain_id!r}")
    try:
        sets, adopted = adopt_epochs(proof.epochs, genesis_keys, proof.chain_id, verifier)
    except EpochChainRefused as error:
        raise BundleRefused(str(error)) from None
    header = proof.header
    anchor_set = set_at(sets, header.height)
    try:
        validators = anchor_set.validators(chain_id, verifier)
        validators.check_commit_certificate(proof.certificate, header.height, header_digest(header))
    except InvalidMessage as error:
        raise BundleRefused(
            f"anchor: certificate of block {header.height}: {error.reason} (the header or certificate was altered,"
            f" or epoch {anchor_set.number}'s set did not order it)"
        ) from None
    root = header.state.state_root
    latest = _proved_int(proof.latest, membership.LATEST_KEY, root, "latest")
    if latest != len(sets) - 1:
        raise BundleRefused(
            f"latest: the anchor's state is at epoch {latest}, the bundle carries the sets up to {len(sets) - 1}"
        )
    if (proof.by == "network") == bool(proof.subject):
        raise BundleRefused("subject: the network's bundle has none, every other bundle one")
    count = _proved_int(proof.count, subject_count_key(proof.by, proof.subject), root, "count")
    entries = _checked_entries(proof, root)
    activity = _checked_activity(proof, root)
    if proof.complete and len(entries) != count:
        raise BundleRefused(
            f"entries: the bundle claims the whole trail, but carries {len(entries)} of the {count} entries"
            f" the state holds for this {proof.by}"
        )
    return VerifiedReport(proof, adopted, anchor_set.number, count, entries, activity)


def _checked_entries(proof: ReportProof, root: bytes) -> tuple[AuditEntry, ...]:
    entries: list[AuditEntry] = []
    for index, proved in enumerate(proof.entries):
        where = f"entries[{index}]"
        if proved.value is None:
            raise BundleRefused(f"{where}: an entry must have a value")
        entry = _decode(AuditEntry, proved.value, STATE_VALUE_SIZE_MAX, where)
        subject = entry_subject(proof.by, proof.subject, entry)
        if proved.key != entry_key(audit_index(proof.by), subject, entry.height, entry.tx_id):
            raise BundleRefused(f"{where}: the entry is not one the {proof.by} index keeps for this subject")
        if index and proved.key <= proof.entries[index - 1].key:
            raise BundleRefused(f"{where}: entries must be in key order, each once")
        if not _in_period(entry.time_ms, proof.since_ms, proof.until_ms):
            raise BundleRefused(f"{where}: the entry's time is outside the bundle's period")
        _check_path(proved, root, where)
        entries.append(entry)
    return tuple(entries)


def _checked_activity(proof: ReportProof, root: bytes) -> tuple[Activity, ...]:
    if proof.activity and proof.by != "site":
        raise BundleRefused(f"activity: only a site's bundle carries activity, not a {proof.by}'s")
    found: list[Activity] = []
    for index, proved in enumerate(proof.activity):
        where = f"activity[{index}]"
        if index and proved.key <= proof.activity[index - 1].key:
            raise BundleRefused(f"{where}: records must be in key order, each once")
        try:
            activity = decode_activity(proved.key, proved.value or b"")
        except ValueError as error:
            raise BundleRefused(f"{where}: {error}") from None
        if activity.subject != proof.subject:
            raise BundleRefused(f"{where}: the {activity.kind} is another organisation's")
        if activity.time_ms is not None and not _in_period(activity.time_ms, proof.since_ms, proof.until_ms):
            raise BundleRefused(f"{where}: the {activity.kind}'s time is outside the bundle's period")
        _check_path(proved, root, where)
        found.append(activity)
    return tuple(found)


def _in_period(time_ms: int, since_ms: int, until_ms: int | None) -> bool:
    return time_ms >= since_ms and (until_ms is None or time_ms < until_ms)


# -- the JSON document -----------------------------------------------------------------------------


def _iso(time_ms: int) -> str:
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(milliseconds=time_ms)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _entry_fields(entry: AuditEntry) -> dict[str, Any]:
    return {
        "date": _iso(entry.time_ms),
        "time_ms": entry.time_ms,
        "kind": entry.kind,
        "patient": entry.patient.hex(),
        "actor": entry.actor.hex(),
        "record_id": entry.record_id.hex(),
        "category": entry.category,
        "purpose": entry.purpose,
        "detail": entry.detail,
        "height": entry.height,
        "tx_id": entry.tx_id.hex(),
    }


def _proved_fields(proved: ProvedValue) -> dict[str, Any]:
    value = None if proved.value is None else proved.value.hex()
    return {"value": value, "path": codec.encode(proved.path).hex()}


def bundle_document(proof: ReportProof) -> dict[str, Any]:
    """The bundle as JSON: each proof's bytes in hex, beside the fields they prove in plain.
    A document is accepted only if it is exactly this for the proof it carries."""
    header = proof.header
    epochs = [_decode(membership.Epoch, p.value or b"", STATE_VALUE_SIZE_MAX, "epochs") for p in proof.epochs]
    entries = [_decode(AuditEntry, p.value or b"", STATE_VALUE_SIZE_MAX, "entries") for p in proof.entries]
    return {
        "format": BUNDLE_FORMAT,
        "chain_id": proof.chain_id,
        "by": proof.by,
        "subject": proof.subject.hex(),
        "period": {"since_ms": proof.since_ms, "until_ms": proof.until_ms},
        "complete": proof.complete,
        "epochs": [
            {
                "number": epoch.number,
                "first_height": epoch.first_height,
                "validators": [key.hex() for key in epoch.keys],
                "proof": codec.encode(epoch_proof).hex(),
            }
            for epoch, epoch_proof in zip(epochs, proof.epochs, strict=True)
        ],
        "anchor": {
            "block_height": header.height,
            "date": _iso(header.time_ms),
            "state_height": header.state.height,
            "state_root": header.state.state_root.hex(),
            "block_hash": anchor_block_hash(proof).hex(),
            "previous_hash": proof.previous_hash.hex(),
            "header": codec.encode(header).hex(),
            "certificate": codec.encode(proof.certificate).hex(),
        },
        "latest": _proved_fields(proof.latest),
        "count": _proved_fields(proof.count),
        "entries": [
            {**_entry_fields(entry), **_proved_fields(proved)}
            for entry, proved in zip(entries, proof.entries, strict=True)
        ],
        "activity": [
            {
                "key": proved.key,
                **activity_fields(decode_activity(proved.key, proved.value or b"")),
                **_proved_fields(proved),
            }
            for proved in proof.activity
        ],
    }


def load_bundle(data: bytes, chain_id: str, genesis_keys: tuple[bytes, ...], verifier: Verifier) -> VerifiedReport:
    """Untrusted bytes of a bundle document, checked in full; raise ``BundleRefused``."""
    if len(data) > BUNDLE_SIZE_MAX:
        raise BundleRefused(f"the bundle is {len(data)} bytes, more than {BUNDLE_SIZE_MAX}")
    try:
        document = strict_json.loads(data, _DEPTH_MAX)
    except strict_json.JsonProblem as error:
        raise BundleRefused(f"the bundle is not strict JSON: {error}") from None
    proof = _proof_from(document)
    report = verify_bundle(proof, chain_id, genesis_keys, verifier)
    _require_same(bundle_document(proof), document, "")
    return report


def _proof_from(document: Any) -> ReportProof:
    doc = _Fields(document, "")
    if doc.get("format", str) != BUNDLE_FORMAT:
        raise BundleRefused(f"format: not a {BUNDLE_FORMAT} bundle")
    by = doc.get("by", str)
    if by not in SUBJECT_KINDS:
        raise BundleRefused(f"by: one of {', '.join(SUBJECT_KINDS)}")
    period = _Fields(doc.get("period", dict), "period")
    anchor = _Fields(doc.get("anchor", dict), "anchor")
    epochs = _bounded(doc.get("epochs", list), EPOCHS_MAX, "epochs")
    entries = _bounded(doc.get("entries", list), ENTRIES_MAX, "entries")
    activity = _bounded(doc.get("activity", list), ENTRIES_MAX, "activity")
    until_ms = period.get("until_ms", (int, type(None)))
    return ReportProof(
        doc.get("chain_id", str),
        by,
        _hex(doc.get("subject", str), "subject"),
        period.get("since_ms", int),
        until_ms if isinstance(until_ms, int) else None,
        doc.get("complete", bool),
        tuple(
            _decode(StateProof, _Fields(item, f"epochs[{index}]").hex_of("proof"), STATE_PROOF_SIZE_MAX, "epochs")
            for index, item in enumerate(epochs)
        ),
        _decode(ProposalHeader, anchor.hex_of("header"), STATE_PROOF_SIZE_MAX, "anchor.header"),
        _decode(CommitCertificate, anchor.hex_of("certificate"), STATE_PROOF_SIZE_MAX, "anchor.certificate"),
        _previous_hash(anchor),
        _proved(doc.get("latest", dict), membership.LATEST_KEY, "latest"),
        _proved(doc.get("count", dict), subject_count_key(by, _hex(doc.get("subject", str), "subject")), "count"),
        tuple(_proved_entry(item, f"entries[{index}]", by, doc) for index, item in enumerate(entries)),
        tuple(_proved_activity(item, f"activity[{index}]") for index, item in enumerate(activity)),
    )


def _previous_hash(anchor: _Fields) -> bytes:
    previous_hash = anchor.hex_of("previous_hash")
    if len(previous_hash) != HASH_SIZE:
        raise BundleRefused(f"anchor.previous_hash: must be {HASH_SIZE} bytes")
    return previous_hash


def _proved(item: Any, key: str, where: str) -> ProvedValue:
    fields = _Fields(item, where)
    value = fields.get("value", (str, type(None)))
    return ProvedValue(
        key,
        None if value is None else _hex(value, f"{where}.value"),
        _decode(TreePath, fields.hex_of("path"), _PATH_SIZE_MAX, f"{where}.path"),
    )


def _proved_entry(item: Any, where: str, by: str, doc: _Fields) -> ProvedValue:
    """An entry's key is not in the document: it follows from the value (height, tx id) and the subject."""
    proved = _proved(item, "", where)
    if proved.value is None:
        raise BundleRefused(f"{where}.value: an entry must have a value")
    entry = _decode(AuditEntry, proved.value, STATE_VALUE_SIZE_MAX, where)
    subject = entry_subject(by, _hex(doc.get("subject", str), "subject"), entry)
    key = entry_key(audit_index(by), subject, entry.height, entry.tx_id)
    return ProvedValue(key, proved.value, proved.path)


def _proved_activity(item: Any, where: str) -> ProvedValue:
    key = _Fields(item, where).get("key", str)
    if not 0 < len(key) <= KEY_LENGTH_MAX:
        raise BundleRefused(f"{where}.key: 1..{KEY_LENGTH_MAX} characters")
    proved = _proved(item, key, where)
    if proved.value is None:
        raise BundleRefused(f"{where}.value: a record must have a value")
    return proved


def _bounded(items: list[Any], count_max: int, where: str) -> list[Any]:
    if len(items) > count_max:
        raise BundleRefused(f"{where}: {len(items)} items, at most {count_max}")
    return items


def _hex(text: str, where: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise BundleRefused(f"{where}: not hex") from None


class _Fields:
    """A JSON object's fields, each read with its type checked; errors name the field's path."""

    def __init__(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise BundleRefused(f"{where or 'the bundle'}: must be a JSON object")
        self.value, self.where = value, where

    def get(self, name: str, kind: type[_T] | tuple[type, ...]) -> Any:
        where = f"{self.where}.{name}" if self.where else name
        if name not in self.value:
            raise BundleRefused(f"{where}: missing")
        found = self.value[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(found, kinds) or (isinstance(found, bool) and bool not in kinds):
            raise BundleRefused(f"{where}: wrong type ({type(found).__name__})")
        return found

    def hex_of(self, name: str) -> bytes:
        return _hex(self.get(name, str), f"{self.where}.{name}")


def _require_same(expected: Any, found: Any, where: str) -> None:
    """Refuse a document whose readable fields differ from what its proofs say, naming the first."""
    here = where or "the bundle"
    if isinstance(expected, dict) and isinstance(found, dict):
        for name in sorted(expected.keys() | found.keys()):
            inner = f"{where}.{name}" if where else name
            if name not in found or name not in expected:
                raise BundleRefused(f"{inner}: {'missing' if name not in found else 'not part of a bundle'}")
            _require_same(expected[name], found[name], inner)
        return
    if isinstance(expected, list) and isinstance(found, list) and len(expected) == len(found):
        for index, (left, right) in enumerate(zip(expected, found, strict=True)):
            _require_same(left, right, f"{where}[{index}]")
        return
    if type(expected) is not type(found) or expected != found:
        raise BundleRefused(f"{here}: the bundle says {found!r}, its proofs say {expected!r}")
