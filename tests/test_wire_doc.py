"""docs/wire.md shows what the code makes: its worked example is the text tests/wire_example.py
builds from the product's own encoding and signing, and the facts it states about the topic and
the node's security offer are the code's."""

from __future__ import annotations

from pathlib import Path

from p2pmed import codec
from p2pmed.ledger.tx import decode_transaction
from p2pmed.net import tx_topic
from p2pmed.net.host import SECURITY_PROTOCOLS
from wire_example import CHAIN_ID, transaction, worked_example

WIRE = Path(__file__).parent.parent / "docs" / "wire.md"
START = "<!-- worked example: made by tests/wire_example.py, checked by tests/test_wire_doc.py -->\n"
END = "\n<!-- end of worked example -->"


def test_the_worked_example_is_what_the_code_makes() -> None:
    text = WIRE.read_text()
    shown = text[text.index(START) + len(START) : text.index(END)]
    assert shown == worked_example(), "regenerate: PYTHONPATH=.:tests python tests/wire_example.py"


def test_the_example_transaction_decodes_strictly_and_verifies() -> None:
    tx = transaction()
    assert decode_transaction(tx.encoded) == tx
    assert tx.signature_is_valid()
    assert codec.decode_value(tx.encoded, codec.TX_SIZE_MAX)["chain_id"] == CHAIN_ID


def test_the_stated_topic_and_security_are_the_codes() -> None:
    text = WIRE.read_text()
    assert tx_topic("<chain_id>") in text
    assert SECURITY_PROTOCOLS == ("/noise",) and "Noise (`/noise`, XX, the libp2p Noise spec) **only**" in text
