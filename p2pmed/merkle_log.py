"""A Merkle tree over a list of entries, with inclusion proofs, as RFC 9162 (Certificate
Transparency 2.0, section 2.1) defines them.

The tree of n entries hashes leaves and inner nodes apart, so that no leaf can pass for an
inner node (a second preimage across levels)::

    leaf  = SHA-256(0x00 || entry)
    inner = SHA-256(0x01 || left || right)

and splits a list of n > 1 entries at k, the largest power of two below n. The root of
the empty list is SHA-256 of nothing. An inclusion proof of entry i is the sibling hashes
from that leaf up to the root (about log2(n) of them); ``root_from_inclusion`` is the
verification algorithm of RFC 9162 section 2.1.3.2, and refuses a proof of the wrong
length for the index and size, so a proof holds for one position of one tree size only.

Pure: no I/O. Used for device reading batches (``p2pmed.ledger.contracts.devices``: the
ledger keeps the root, a reader proves one reading).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["HASH_SIZE", "inclusion_proof", "leaf_hash", "root", "root_from_inclusion"]

HASH_SIZE = 32
_LEAF, _INNER = b"\x00", b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(_LEAF + entry).digest()


def _inner(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_INNER + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (> 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def _root_of_leaves(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    middle = _split(len(leaves))
    return _inner(_root_of_leaves(leaves[:middle]), _root_of_leaves(leaves[middle:]))


def root(entries: Sequence[bytes]) -> bytes:
    """The tree head of ``entries``, in order."""
    if not entries:
        return hashlib.sha256(b"").digest()
    return _root_of_leaves([leaf_hash(entry) for entry in entries])


def _path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    if len(leaves) == 1:
        return []
    middle = _split(len(leaves))
    if index < middle:
        return [*_path(leaves[:middle], index), _root_of_leaves(leaves[middle:])]
    return [*_path(leaves[middle:], index - middle), _root_of_leaves(leaves[:middle])]


def inclusion_proof(entries: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """The sibling hashes from entry ``index``'s leaf up to the root, leaf end first."""
    if not 0 <= index < len(entries):
        raise ValueError(f"index {index} is not in a tree of {len(entries)} entries")
    return tuple(_path([leaf_hash(entry) for entry in entries], index))


def root_from_inclusion(entry: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root that ``path`` leads to from ``entry`` at ``index`` in a tree of ``size``
    entries (RFC 9162 2.1.3.2); raise ``ValueError`` for a path that cannot be one of them."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of {size} entries")
    if any(len(sibling) != HASH_SIZE for sibling in path):
        raise ValueError(f"every hash of an inclusion proof is {HASH_SIZE} bytes")
    position, last = index, size - 1
    hashed = leaf_hash(entry)
    for sibling in path:
        if last == 0:
            raise ValueError(f"the proof is longer than a tree of {size} entries is deep")
        if position & 1 or position == last:
            hashed = _inner(sibling, hashed)
            while not position & 1 and position != 0:
                position, last = position >> 1, last >> 1
        else:
            hashed = _inner(hashed, sibling)
        position, last = position >> 1, last >> 1
    if last != 0:
        raise ValueError(f"the proof is shorter than entry {index} of a tree of {size} entries is deep")
    return hashed
