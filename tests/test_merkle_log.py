"""The batch Merkle tree against RFC 6962's reference vectors, and its inclusion proofs:
every entry of every small tree proves, and a changed entry, index or sibling does not."""

from __future__ import annotations

import pytest

from p2pmed.merkle_log import inclusion_proof, root, root_from_inclusion

# The leaves and tree heads of certificate-transparency's merkle_tree_test (RFC 6962 trees).
LEAVES = [
    b"",
    bytes.fromhex("00"),
    bytes.fromhex("10"),
    bytes.fromhex("2021"),
    bytes.fromhex("3031"),
    bytes.fromhex("40414243"),
    bytes.fromhex("5051525354555657"),
    bytes.fromhex("606162636465666768696a6b6c6d6e6f"),
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("size", range(1, 9))
def test_the_tree_heads_are_rfc_6962s(size: int) -> None:
    assert root(LEAVES[:size]).hex() == ROOTS[size - 1]


def test_every_entry_of_every_small_tree_proves_to_its_root() -> None:
    for size in range(1, 20):
        entries = [bytes([index]) * 3 for index in range(size)]
        head = root(entries)
        for index, entry in enumerate(entries):
            path = inclusion_proof(entries, index)
            assert root_from_inclusion(entry, index, size, path) == head
            assert root_from_inclusion(entry + b"x", index, size, path) != head
            if size > 1:
                other = (index + 1) % size
                assert _root_or_none(entry, other, size, path) != head
                altered = (bytes(32), *path[1:])
                assert root_from_inclusion(entry, index, size, altered) != head


def _root_or_none(entry: bytes, index: int, size: int, path: tuple[bytes, ...]) -> bytes | None:
    try:
        return root_from_inclusion(entry, index, size, path)
    except ValueError:
        return None


@pytest.mark.parametrize(
    ("index", "size", "path", "fragment"),
    [
        (3, 3, (), "index 3 is not in a tree of 3 entries"),
        (0, 2, (), "shorter than entry 0"),
        (0, 2, (bytes(32), bytes(32)), "longer than a tree of 2 entries"),
        (0, 2, (bytes(31),), "is 32 bytes"),
    ],
)
def test_a_malformed_proof_is_refused(index: int, size: int, path: tuple[bytes, ...], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        root_from_inclusion(b"entry", index, size, path)
