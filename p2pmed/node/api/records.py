"""JSON-RPC methods that move encrypted records between a client and the custodians.

The client encrypts and decrypts; the node only carries ciphertexts and key
wraps, and every custodian decides by the ledger (``p2pmed.node.custodian``):

- ``record.custodians``: the sites that can keep records, with the encryption
  keys a writer wraps the data key to.
- ``record.store {record_id, custodian, sealed, wrap}``: after the anchor has
  committed, hand one custodian the ciphertext and the wrap for it: this node
  keeps it itself if it is that custodian, else passes it on over
  ``/p2pmed/blob/1``. Call once per custodian named in the anchor.
- ``record.fetch {record_id, reader}``: after the reader's ``record.read`` has
  committed, get the ciphertext and the data key wrapped to the reader, from
  this node if it is a custodian that holds it, else from the first custodian
  that serves it.
"""

from __future__ import annotations

from typing import Any

from p2pmed.ledger.contracts.records import record
from p2pmed.net.blob_protocol import BlobRequest
from p2pmed.node.api.port import NodePort
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method

__all__ = ["record_methods"]


def record_methods(node: NodePort) -> dict[str, Method]:
    validators = node.genesis_validators

    async def custodians(params: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"key": v.public_key.hex(), "moniker": v.moniker, "kind": v.kind, "encryption_key": v.encryption_key.hex()}
            for v in validators
        ]

    def moniker_of(custodian: bytes) -> str:
        keys = [validator.public_key for validator in validators]
        if custodian not in keys:
            raise RpcError(ErrorCode.INVALID_PARAMS, "custodian: not a validator's key; see record.custodians")
        return validators[keys.index(custodian)].moniker

    async def store(params: dict[str, Any]) -> dict[str, Any]:
        moniker = moniker_of(params["custodian"])
        request = BlobRequest("put", params["record_id"], b"", params["sealed"], params["wrap"])
        response = await node.ask_custodian(params["custodian"], request)
        if response.error:
            raise RpcError(ErrorCode.REFUSED, f"record.store: custodian {moniker}: {response.error}")
        return {"stored": True, "custodian": params["custodian"].hex()}

    async def fetch(params: dict[str, Any]) -> dict[str, Any]:
        record_id, reader = params["record_id"], params["reader"]
        anchor = record(node.store, record_id)
        if anchor is None:
            raise RpcError(ErrorCode.NOT_FOUND, "record.fetch: no committed anchor has this record id on this node")
        reasons = []
        for custodian in anchor.custodians:
            response = await node.ask_custodian(custodian, BlobRequest("get", record_id, reader, b"", b""))
            if not response.error:
                return {"sealed": response.sealed.hex(), "wrap": response.wrap.hex(), "custodian": custodian.hex()}
            reasons.append(f"{moniker_of(custodian)}: {response.error}")
        raise RpcError(ErrorCode.REFUSED, "record.fetch: no custodian served the record: " + "; ".join(reasons))

    return {
        "record.custodians": Method(custodians),
        "record.store": Method(store, {"record_id": bytes, "custodian": bytes, "sealed": bytes, "wrap": bytes}),
        "record.fetch": Method(fetch, {"record_id": bytes, "reader": bytes}),
    }
