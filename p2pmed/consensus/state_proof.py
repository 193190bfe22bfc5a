"""State proofs: a key's value (or its absence) that anyone holding the validator keys can check.

A proof carries the key, its value (None: absent), the key's path in the state tree
(``p2pmed.ledger.state_tree``), the header of a certified block and that block's
commit certificate. The header commits to the state after an earlier block
(``header.state``). ``verify_state_proof`` checks, with nothing but the validator set
of the certifying block's epoch:

1. the certificate: a quorum of distinct validators' commit votes over the header's
   proposal digest (every field of the header is in it, so an altered header fails
   here), signed for this chain *and epoch* (``Validators.signing_context``), so the
   set must be the one that ordered the block: the genesis set does not certify a
   block of epoch 2, even where the two sets share keys;
2. the path: well formed, and hashing the key and value up the path gives the state
   root the header commits to (an altered value, key or sibling fails here).

Which set that is, the verifier must know; the proof does not say, since nothing in
it could be trusted to. ``state.proof`` (``p2pmed.node.api.proofs``) returns the epoch
number, its first height and its keys beside the proof, for the verifier to compare
with its own view of the chain: a light client's (``p2pmed.consensus.light_client``)
or, for an auditor with nothing but genesis, the chain of validator set changes from
genesis to that epoch, each certified by the set before it, which a report bundle
must carry (issue 18; not built yet). A set whose epoch starts after the block is
refused here; one whose epoch ended before it cannot be told from this proof alone.

The header is the proposal header (a block header without ``previous_hash``, which
the certificate does not cover and the proof does not need). Nothing from the node
that made the proof is trusted: it is decoded strictly and checked in full.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmed import codec
from p2pmed.consensus.certificates import InvalidMessage, Validators
from p2pmed.consensus.messages import CommitCertificate, ProposalHeader, header_digest
from p2pmed.ledger.block import StateCommitment
from p2pmed.ledger.state_tree import TreePath, root_from_path

__all__ = ["STATE_PROOF_SIZE_MAX", "ProofRefused", "StateProof", "decode_state_proof", "verify_state_proof"]

STATE_PROOF_SIZE_MAX = 2 << 20
"""A value is at most 1 MiB; the path, header and certificate add a few KiB."""


class ProofRefused(Exception):
    """A proof that does not check out; the message names the part that failed."""


@dataclass(frozen=True)
class StateProof:
    key: str
    value: bytes | None
    path: TreePath
    header: ProposalHeader
    """The certified block's header: ``header.state`` is the commitment the path leads to."""
    certificate: CommitCertificate


def decode_state_proof(data: bytes) -> StateProof:
    """Untrusted bytes to a proof (not yet verified); raise ``ProofRefused``."""
    try:
        return codec.decode(StateProof, data, STATE_PROOF_SIZE_MAX)
    except (codec.CodecError, ValueError) as error:
        raise ProofRefused(f"malformed proof: {error}") from None


def verify_state_proof(proof: StateProof, validators: Validators) -> StateCommitment:
    """Check ``proof`` against ``validators``, the set of the epoch that ordered its block;
    return the commitment it proves the key's value under, or raise ``ProofRefused``."""
    header = proof.header
    if header.height < validators.first_height:
        raise ProofRefused(
            f"certificate: block {header.height} is before epoch {validators.epoch}, which orders from"
            f" {validators.first_height}: check it with the set of its own epoch"
        )
    try:
        validators.check_commit_certificate(proof.certificate, header.height, header_digest(header))
    except InvalidMessage as error:
        raise ProofRefused(
            f"certificate: {error.reason} (the header or the certificate of block {header.height} was altered,"
            f" or epoch {validators.epoch}'s set did not order it)"
        ) from None
    try:
        root = root_from_path(proof.key, proof.value, proof.path)
    except ValueError as error:
        raise ProofRefused(str(error)) from None
    if root != header.state.state_root:
        raise ProofRefused(
            f"state root: the value and path of {proof.key!r} do not lead to the root block {header.height}"
            f" commits to for the state after block {header.state.height} (the value or path was altered)"
        )
    return header.state
