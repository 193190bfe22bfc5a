"""docs/wire.md's worked example, made by the product's own code: one ``load.probe`` transaction
from a fixed key, every intermediate value in hex. tests/test_wire_doc.py checks that the document
shows exactly this text; tests/test_js_peer.py checks that the js peer signs the same bytes."""

from __future__ import annotations

import json
import textwrap

import cbor2

from p2pmed import codec
from p2pmed.crypto import SignatureDomain, SigningKey
from p2pmed.ledger.contracts.probe import PROBE_TYPE, Probe
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.net import TxBatch, tx_topic

SEED = bytes(range(32))
CHAIN_ID = "p2pmed-example"
NONCE = 0
LABEL = "example"
HEX_PER_LINE = 64


def transaction() -> Transaction:
    return sign_transaction(SigningKey.from_seed(SEED), CHAIN_ID, PROBE_TYPE, NONCE, Probe(LABEL))


def _hex(data: bytes, indent: str = "    ") -> str:
    return textwrap.indent("\n".join(textwrap.wrap(data.hex(), HEX_PER_LINE)), indent)


def _annotated(tx: Transaction) -> str:
    """The transaction's bytes field by field, in the canonical key order."""
    value = codec.to_value(tx)
    keys = sorted(value, key=lambda key: cbor2.dumps(key, canonical=True))
    pieces = [bytes([0xA0 + len(keys)])]
    lines = [f"    {pieces[0].hex():<40} map of {len(keys)} pairs"]
    for key in keys:
        key_bytes, value_bytes = cbor2.dumps(key, canonical=True), cbor2.dumps(value[key], canonical=True)
        pieces += [key_bytes, value_bytes]
        lines.append(f'    {key_bytes.hex():<40} "{key}"')
        if isinstance(value[key], bytes):  # the header, then the bytes themselves (shown above in full)
            header = value_bytes[: len(value_bytes) - len(value[key])]
            lines.append(f"      {header.hex():<38} byte string of {len(value[key])}: {value[key].hex()[:16]}…")
        else:
            lines.append(f"      {value_bytes.hex():<38} {json.dumps(value[key])}")
    assert b"".join(pieces) == tx.encoded, "the annotation must add up to the encoding"
    return "\n".join(lines)


def worked_example() -> str:
    """The example block of docs/wire.md (between its ``worked example`` markers)."""
    key = SigningKey.from_seed(SEED)
    tx = transaction()
    payload = tx.signing_payload()
    signed = codec.encode(["p2pmed-signature-v1", SignatureDomain.TRANSACTION.value, CHAIN_ID, payload])
    batch = codec.encode(TxBatch((tx,)))
    return f"""```text
Ed25519 seed (private key)
{_hex(SEED)}
sender (Ed25519 public key)
{_hex(key.public_key)}
chain_id "{CHAIN_ID}", topic "{tx_topic(CHAIN_ID)}"
type "{tx.type}", nonce {tx.nonce}, body {{"label": "{LABEL}"}}

signing payload: canonical CBOR of {{type, chain_id, sender, nonce, body}}
{_hex(payload)}
signed message: canonical CBOR of ["p2pmed-signature-v1", "transaction", chain_id, payload]
{_hex(signed)}
signature: Ed25519(seed, signed message)
{_hex(tx.signature)}

transaction: canonical CBOR of {{type, chain_id, sender, nonce, body, signature}}
{_hex(tx.encoded)}
transaction id: SHA-256 of the transaction
{_hex(tx.id)}
gossip message data: canonical CBOR of {{"txs": [transaction]}}
{_hex(batch)}
```

The transaction's bytes, key by key (keys sorted by their encoded bytes: shorter first):

```text
{_annotated(tx)}
```"""


if __name__ == "__main__":
    print(worked_example())
