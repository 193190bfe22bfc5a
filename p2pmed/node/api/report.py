"""``report.bundle``: a subject's audit entries over a period, each proved, as a bundle that
``p2pmed report verify`` checks offline from genesis (``p2pmed.consensus.report_bundle``).

Every key is proved against one certified block, the head (``state.proof``'s newest
certified state): the entries of the subject up to that block's state, in the period, with
the subject's entry count and the newest epoch number in the same state, and the kept proof
of every validator set change (``p2pmed.node.epoch_proofs``). A bundle holds at most
``ENTRIES_MAX`` entries; a longer period is refused with the count, to be split. Making one
takes a path per entry (about 20 tree records read) on the node's thread. A read of a
patient's trail goes into the site audit log first, as ``audit.query`` does; so does the
network's report, which reads every patient's (logged with an empty patient id).
"""

from __future__ import annotations

from typing import Any

from p2pmed import codec
from p2pmed.consensus.report_activity import ACTIVITY_PREFIXES, decode_activity
from p2pmed.consensus.report_bundle import (
    ENTRIES_MAX,
    SUBJECT_KINDS,
    ProvedValue,
    ReportProof,
    audit_index,
    bundle_document,
    subject_count_key,
)
from p2pmed.consensus.state_proof import STATE_PROOF_SIZE_MAX, StateProof
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.contracts.audit import AuditEntry, entry_prefix, index_prefix
from p2pmed.ledger.state import STATE_VALUE_SIZE_MAX
from p2pmed.node.api.port import NodePort
from p2pmed.node.state_proofs import ProofUnavailable, state_proof
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param
from p2pmed.store import Store

__all__ = ["report_methods", "report_proof"]

SUBJECT_SIZE_MAX = 64


def report_methods(node: NodePort) -> dict[str, Method]:
    async def bundle(params: dict[str, Any]) -> dict[str, Any]:
        by, subject, since_ms, until_ms = params["by"], params["subject"], params["since_ms"], params["until_ms"]
        subject_size = range(0, 1) if by == "network" else range(1, SUBJECT_SIZE_MAX + 1)
        if by not in SUBJECT_KINDS or len(subject) not in subject_size:
            raise RpcError(
                ErrorCode.INVALID_PARAMS,
                f'report.bundle: "by" is one of {", ".join(SUBJECT_KINDS)}, "subject" an id of 1..{SUBJECT_SIZE_MAX}'
                ' bytes ("" for the network)',
            )
        if since_ms < 0 or (until_ms is not None and until_ms <= since_ms):
            raise RpcError(ErrorCode.INVALID_PARAMS, 'report.bundle: "since_ms" >= 0 and "until_ms" after it')
        if by in ("patient", "network"):
            node.site_audit.trail_read(subject, since_ms, until_ms, ENTRIES_MAX, "report")
        return {"bundle": bundle_document(report_proof(node.store, by, subject, since_ms, until_ms))}

    return {
        "report.bundle": Method(
            bundle,
            {
                "by": str,
                "subject": bytes,
                "since_ms": Param(int, optional=True, default=0),
                "until_ms": Param(int, optional=True),
            },
        )
    }


def report_proof(store: Store, by: str, subject: bytes, since_ms: int, until_ms: int | None) -> ReportProof:
    """The entries of ``subject`` (a ``by``; none for the network) with a time in ``[since_ms, until_ms)``, proved
    to the newest certified state; raise ``RpcError`` when there is none or too many entries."""
    try:
        latest = state_proof(store, membership.LATEST_KEY, None)
    except ProofUnavailable as error:
        raise RpcError(ErrorCode.NOT_FOUND, f"report.bundle: {error}") from None
    state_height = latest.header.state.height
    latest_number = codec.decode(int, latest.value or b"", 64)
    epochs = tuple(_epoch_proof(store, number) for number in range(1, latest_number + 1))
    index = audit_index(by)
    count_value, count_path = store.state_path(subject_count_key(by, subject), state_height)
    entries: list[ProvedValue] = []
    prefix = index_prefix(index) if by == "network" else entry_prefix(index, subject)
    for key, data in store.state_items(prefix):
        entry = codec.decode(AuditEntry, data, STATE_VALUE_SIZE_MAX)
        if (
            entry.height > state_height
            or entry.time_ms < since_ms
            or (until_ms is not None and entry.time_ms >= until_ms)
        ):
            continue
        if len(entries) == ENTRIES_MAX:
            raise RpcError(
                ErrorCode.INVALID_PARAMS,
                f"report.bundle: more than {ENTRIES_MAX} entries in the period; ask for shorter periods",
            )
        value, path = store.state_path(key, state_height)
        assert value == data, "an audit entry is never changed"
        entries.append(ProvedValue(key, value, path))
    count = 0 if count_value is None else codec.decode(int, count_value, 64)
    return ReportProof(
        store.chain_id,
        by,
        subject,
        since_ms,
        until_ms,
        len(entries) == count,
        epochs,
        latest.header,
        latest.certificate,
        _previous_hash(store, latest.header.height),
        ProvedValue(latest.key, latest.value, latest.path),
        ProvedValue(subject_count_key(by, subject), count_value, count_path),
        tuple(entries),
        _site_activity(store, subject, since_ms, until_ms, state_height) if by == "site" else (),
    )


def _site_activity(
    store: Store, site: bytes, since_ms: int, until_ms: int | None, state_height: int
) -> tuple[ProvedValue, ...]:
    """The site's supply events in the period and the trials it sponsors, as of ``state_height``.
    A scan of every pack's history and every trial: there is no index by site."""
    found: list[ProvedValue] = []
    for prefix in ACTIVITY_PREFIXES:
        for key, data in store.state_items(prefix):
            if decode_activity(key, data).subject != site:  # whose it is never changes: skip the path
                continue
            value, path = store.state_path(key, state_height)
            if value is None:
                continue  # written after the anchor's state
            time_ms = decode_activity(key, value).time_ms
            if time_ms is not None and (time_ms < since_ms or (until_ms is not None and time_ms >= until_ms)):
                continue
            if len(found) == ENTRIES_MAX:
                raise RpcError(
                    ErrorCode.INVALID_PARAMS,
                    f"report.bundle: more than {ENTRIES_MAX} supply events and trials; ask for shorter periods",
                )
            found.append(ProvedValue(key, value, path))
    return tuple(found)  # in key order: the prefixes are, and each scan is


def _previous_hash(store: Store, height: int) -> bytes:
    header = store.block_header(height)
    assert header is not None, "the certifying block is stored"
    return header.previous_hash


def _epoch_proof(store: Store, number: int) -> StateProof:
    kept = store.epoch_proof(number)
    if kept is None:
        raise RpcError(
            ErrorCode.NOT_FOUND,
            f"report.bundle: this node keeps no proof of epoch {number}'s validator set (it was not following the"
            " chain with this version when the change passed); ask another site's node",
        )
    return codec.decode(StateProof, kept, STATE_PROOF_SIZE_MAX)
