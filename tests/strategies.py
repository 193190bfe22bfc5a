"""Hypothesis strategies shared by the decoder fuzz tests."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def mutated(draw: st.DrawFn, encodings: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding with one bit flipped, cut short, extended, or a byte inserted/deleted/replaced."""
    data = bytearray(draw(encodings))
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "insert", "delete", "replace"]))
    if kind == "flip":
        bit = draw(st.integers(0, len(data) * 8 - 1))
        data[bit // 8] ^= 1 << (bit % 8)
    elif kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=16))
    elif kind == "insert":
        index = draw(st.integers(0, len(data)))
        data[index:index] = draw(st.binary(min_size=1, max_size=4))
    elif kind == "delete":
        del data[draw(st.integers(0, len(data) - 1))]
    else:
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)
