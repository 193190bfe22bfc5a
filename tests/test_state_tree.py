"""The compact sparse Merkle tree: incremental updates equal a rebuild, and paths prove
presence and absence against the root (and nothing else)."""

from __future__ import annotations

import random

import pytest

from p2pmed.ledger.state_tree import EMPTY_ROOT, Subtree, TreePath, prove, root_from_path, update


class MemoryNodes:
    def __init__(self) -> None:
        self.records: dict[bytes, bytes] = {}
        self.root: Subtree | None = None

    def tree_node(self, position: bytes) -> bytes | None:
        return self.records.get(position)

    def apply(self, changes: dict[str, bytes | None]) -> None:
        self.root, writes = update(self, self.root, changes)
        for position, record in writes.items():
            if record is None:
                self.records.pop(position, None)
            else:
                self.records[position] = record

    @property
    def root_hash(self) -> bytes:
        return EMPTY_ROOT if self.root is None else self.root.hash


def rebuilt(state: dict[str, bytes]) -> MemoryNodes:
    tree = MemoryNodes()
    tree.apply(dict(state))
    return tree


def test_the_empty_tree_has_the_empty_root_and_proves_any_key_absent() -> None:
    tree = MemoryNodes()
    assert tree.root_hash == EMPTY_ROOT
    assert root_from_path("any", None, prove(tree, tree.root, "any")) == EMPTY_ROOT


def test_incremental_updates_give_the_root_and_records_of_a_rebuild() -> None:
    rng = random.Random(7)
    tree, state = MemoryNodes(), {}
    for _ in range(60):
        changes: dict[str, bytes | None] = {}
        for _ in range(rng.randint(1, 12)):
            key = f"k/{rng.randint(0, 150)}"
            if key in state and rng.random() < 0.4:
                changes[key] = None
            else:
                changes[key] = rng.randbytes(rng.randint(0, 9))
        tree.apply(changes)
        for key, value in changes.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        reference = rebuilt(state)
        assert tree.root_hash == reference.root_hash
        assert tree.records == reference.records
    for key in state:
        tree.apply({key: None})
    assert tree.root_hash == EMPTY_ROOT and tree.records == {}


def test_a_path_proves_presence_and_absence_against_the_root() -> None:
    state = {f"key/{n}": n.to_bytes(2, "big") for n in range(300)}
    tree = rebuilt(state)
    for key, value in list(state.items())[:50]:
        assert root_from_path(key, value, prove(tree, tree.root, key)) == tree.root_hash
    for n in range(300, 350):
        key = f"key/{n}"
        assert root_from_path(key, None, prove(tree, tree.root, key)) == tree.root_hash


def proves(key: str, value: bytes | None, path: TreePath, root: bytes) -> bool:
    try:
        return root_from_path(key, value, path) == root
    except ValueError:
        return False


def test_a_path_proves_nothing_else() -> None:
    tree = rebuilt({f"key/{n}": b"v" for n in range(100)})
    path = prove(tree, tree.root, "key/1")
    assert not proves("key/1", b"w", path, tree.root_hash)
    assert not proves("key/2", b"v", path, tree.root_hash)
    assert not proves("key/1", None, path, tree.root_hash)
    for n in range(100, 140):
        absent = prove(tree, tree.root, f"key/{n}")
        assert not proves(f"key/{n}", b"v", absent, tree.root_hash)
        assert not proves("key/1", None, absent, tree.root_hash)


@pytest.mark.parametrize(
    "bad",
    [
        TreePath((b"\x00" * 31,), b"", b""),
        TreePath((bytes(32),) * 257, b"", b""),
        TreePath((), b"\x01" * 32, b"\x02" * 31),
    ],
)
def test_a_malformed_path_is_refused(bad: TreePath) -> None:
    with pytest.raises(ValueError, match="proof path"):
        root_from_path("k", None, bad)
