"""The state root: a compact sparse Merkle tree over the ledger's key-value state.

Theory of operation. Every state key sits at the leaf of a binary tree of depth 256
whose path is the SHA-256 of the key (bit 0 = the top bit of the first byte: 0 goes
left). The tree is *compact*: a subtree that holds no key hashes to ``EMPTY_ROOT``
(32 zero bytes), a subtree that holds exactly one key hashes to that key's leaf hash,
wherever it sits, and only a subtree with two keys or more is an inner node::

    leaf  = SHA-256(0x00 || path || SHA-256(value))
    inner = SHA-256(0x01 || left || right)

So the root depends on the set of (key, value) pairs alone, never on the order they
were written in, and a key lies about log2(n) + 1 levels deep (n keys) instead of 256.

Why this tree rather than a Merkle tree over the sorted keys: a block changes a few
keys of a large state, and here each changed key costs one path of ~log2(n) hashes
and node writes, while inserting into a sorted Merkle tree shifts every position
after the new key (or needs a balanced tree with rotations, whose shape depends on
history). Absence is as easy to prove as presence: the path of the missing key ends
in an empty subtree or in another key's leaf. A proof is the sibling hashes along the
path, ~log2(n) + 1 of 32 bytes each (about 20 for 100,000 keys).

Storage. Only inner nodes are stored, one record per position (its depth and the
path prefix above it) holding its two children's summaries: empty, a leaf (the key's
path and value hash) or an inner node (its hash). ``update`` reads the records on the
paths of the changed keys through ``TreeNodes`` and returns the records to write (or
delete, ``None``) with the new root summary; the store writes them in the block's SQL
transaction. The module is pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "EMPTY_ROOT",
    "PATH_BITS",
    "Subtree",
    "TreeNodes",
    "TreePath",
    "decode_subtree",
    "encode_subtree",
    "key_path",
    "leaf_hash",
    "position_depth",
    "prove",
    "root_from_path",
    "update",
]

HASH_SIZE = 32
PATH_BITS = 256
EMPTY_ROOT = bytes(HASH_SIZE)
_EMPTY, _LEAF, _INNER = 0, 1, 2


def key_path(key: str) -> bytes:
    """Where ``key`` sits in the tree: the SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode()).digest()


def leaf_hash(path: bytes, value_hash: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + path + value_hash).digest()


def _inner_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _bit(path: bytes, depth: int) -> int:
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1


def _position(path: bytes, depth: int) -> bytes:
    """The record key of the node at ``depth`` on ``path``: the depth, then the path's
    first ``depth`` bits (the bits after them in the last byte cleared)."""
    prefix = bytearray(path[: (depth + 7) >> 3])
    if depth & 7:
        prefix[-1] &= (0xFF << (8 - (depth & 7))) & 0xFF
    return depth.to_bytes(2, "big") + bytes(prefix)


def position_depth(position: bytes) -> int:
    """The depth of the node whose record key is ``position`` (``_position``)."""
    return int.from_bytes(position[:2], "big")


@dataclass(frozen=True)
class Subtree:
    """A non-empty subtree as its parent sees it: one leaf (``path`` and ``value_hash``
    set) or an inner node (only ``hash``)."""

    hash: bytes
    path: bytes | None = None
    value_hash: bytes | None = None

    @classmethod
    def leaf(cls, path: bytes, value_hash: bytes) -> Subtree:
        return cls(leaf_hash(path, value_hash), path, value_hash)

    @property
    def is_leaf(self) -> bool:
        return self.path is not None


def _hash_of(subtree: Subtree | None) -> bytes:
    return EMPTY_ROOT if subtree is None else subtree.hash


def encode_subtree(subtree: Subtree | None) -> bytes:
    if subtree is None:
        return bytes([_EMPTY])
    if subtree.path is not None and subtree.value_hash is not None:
        return bytes([_LEAF]) + subtree.path + subtree.value_hash
    return bytes([_INNER]) + subtree.hash


def decode_subtree(data: bytes) -> tuple[Subtree | None, bytes]:
    """A subtree summary from the front of ``data``, and the bytes after it."""
    tag = data[0]
    if tag == _EMPTY:
        return None, data[1:]
    if tag == _LEAF and len(data) >= 1 + 2 * HASH_SIZE:
        return Subtree.leaf(data[1:33], data[33:65]), data[65:]
    if tag == _INNER and len(data) >= 1 + HASH_SIZE:
        return Subtree(data[1:33]), data[33:]
    raise ValueError(f"bad tree node record (tag {tag}, {len(data)} bytes)")


def _decode_node(data: bytes) -> tuple[Subtree | None, Subtree | None]:
    left, rest = decode_subtree(data)
    right, rest = decode_subtree(rest)
    if rest:
        raise ValueError("tree node record has trailing bytes")
    return left, right


class TreeNodes(Protocol):
    def tree_node(self, position: bytes) -> bytes | None: ...


Change = tuple[bytes, bytes | None]
"""A key's path and its new value's hash (None: the key is deleted)."""


def update(
    nodes: TreeNodes, root: Subtree | None, changes: Mapping[str, bytes | None]
) -> tuple[Subtree | None, dict[bytes, bytes | None]]:
    """Apply state ``changes`` (key to new value, None = deleted) to the tree whose root is
    ``root``: the new root, and the node records to write (None = delete)."""
    paired = sorted(
        (key_path(key), None if value is None else hashlib.sha256(value).digest()) for key, value in changes.items()
    )
    writes: dict[bytes, bytes | None] = {}
    new_root = _update(nodes, writes, 0, root, paired)
    return new_root, writes


def _update(
    nodes: TreeNodes, writes: dict[bytes, bytes | None], depth: int, subtree: Subtree | None, changes: list[Change]
) -> Subtree | None:
    if not changes:
        return subtree
    if subtree is None or subtree.is_leaf:
        # No records below an empty subtree or a lone leaf: rebuild it from its few leaves.
        leaves: dict[bytes, bytes] = {}
        if subtree is not None and subtree.path is not None and subtree.value_hash is not None:
            leaves[subtree.path] = subtree.value_hash
        for path, value_hash in changes:
            if value_hash is None:
                leaves.pop(path, None)
            else:
                leaves[path] = value_hash
        return _build(writes, depth, sorted(leaves.items()))
    position = _position(changes[0][0], depth)
    record = nodes.tree_node(position)
    assert record is not None, f"inner node at depth {depth} has no record"
    left, right = _decode_node(record)
    split = _split(changes, depth)
    new_left = _update(nodes, writes, depth + 1, left, changes[:split])
    new_right = _update(nodes, writes, depth + 1, right, changes[split:])
    return _join(writes, position, new_left, new_right)


def _split(items: Sequence[tuple[bytes, object]], depth: int) -> int:
    """The index of the first item (sorted by path) whose path goes right at ``depth``."""
    for index, (path, _) in enumerate(items):
        if _bit(path, depth):
            return index
    return len(items)


def _build(writes: dict[bytes, bytes | None], depth: int, leaves: list[tuple[bytes, bytes]]) -> Subtree | None:
    if not leaves:
        return None
    if len(leaves) == 1:
        return Subtree.leaf(*leaves[0])
    assert depth < PATH_BITS, "two keys with one path"
    split = _split(leaves, depth)
    left = _build(writes, depth + 1, leaves[:split])
    right = _build(writes, depth + 1, leaves[split:])
    return _join(writes, _position(leaves[0][0], depth), left, right)


def _join(
    writes: dict[bytes, bytes | None], position: bytes, left: Subtree | None, right: Subtree | None
) -> Subtree | None:
    """The node at ``position`` over two children, kept compact: a node over nothing is
    empty and a node over one lone leaf is that leaf, and neither has a record."""
    if left is None and (right is None or right.is_leaf):
        writes[position] = None
        return right
    if right is None and left is not None and left.is_leaf:
        writes[position] = None
        return left
    writes[position] = encode_subtree(left) + encode_subtree(right)
    return Subtree(_inner_hash(_hash_of(left), _hash_of(right)))


@dataclass(frozen=True)
class TreePath:
    """A key's path from the root down to where it is, or where it would be.

    ``siblings`` are the hashes beside the path, from the top down. For a key that is
    present, the path ends at its own leaf and ``other_path``/``other_value_hash`` are
    empty. For a key that is absent, the path ends at an empty subtree (both empty) or
    at the leaf of another key that shares the path's prefix (that key's path and value
    hash)."""

    siblings: tuple[bytes, ...]
    other_path: bytes
    other_value_hash: bytes


def prove(nodes: TreeNodes, root: Subtree | None, key: str) -> TreePath:
    """The path of ``key`` in the tree whose root is ``root`` (present or absent)."""
    path = key_path(key)
    siblings: list[bytes] = []
    subtree = root
    depth = 0
    while subtree is not None and not subtree.is_leaf:
        record = nodes.tree_node(_position(path, depth))
        assert record is not None, f"inner node at depth {depth} has no record"
        left, right = _decode_node(record)
        subtree, sibling = (right, left) if _bit(path, depth) else (left, right)
        siblings.append(_hash_of(sibling))
        depth += 1
    if subtree is None or subtree.path == path:
        return TreePath(tuple(siblings), b"", b"")
    assert subtree.path is not None and subtree.value_hash is not None
    return TreePath(tuple(siblings), subtree.path, subtree.value_hash)


def root_from_path(key: str, value: bytes | None, tree_path: TreePath) -> bytes:
    """The root that ``tree_path`` proves ``key`` has ``value`` under (None: is absent);
    raise ``ValueError`` naming what is malformed. Compare it with a trusted root."""
    path = key_path(key)
    depth = len(tree_path.siblings)
    if depth > PATH_BITS or any(len(sibling) != HASH_SIZE for sibling in tree_path.siblings):
        raise ValueError(f"proof path: at most {PATH_BITS} siblings of {HASH_SIZE} bytes each")
    other = (tree_path.other_path, tree_path.other_value_hash)
    if value is not None:
        if other != (b"", b""):
            raise ValueError("proof path: a present key's path ends at its own leaf, not another")
        node = leaf_hash(path, hashlib.sha256(value).digest())
    elif other == (b"", b""):
        node = EMPTY_ROOT
    else:
        if len(other[0]) != HASH_SIZE or len(other[1]) != HASH_SIZE:
            raise ValueError(f"proof path: the other leaf needs a {HASH_SIZE}-byte path and value hash")
        if other[0] == path or any(_bit(other[0], d) != _bit(path, d) for d in range(depth)):
            raise ValueError("proof path: the other leaf does not sit where the absent key would")
        node = leaf_hash(*other)
    for level in reversed(range(depth)):
        sibling = tree_path.siblings[level]
        node = _inner_hash(sibling, node) if _bit(path, level) else _inner_hash(node, sibling)
    return node
