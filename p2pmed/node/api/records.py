"""JSON-RPC methods that move encrypted records between a client and the custodians.

The client encrypts, splits the key, combines shares and decrypts; the node only
carries ciphertexts and sealed shares, and every custodian decides by the ledger
(``p2pmed.node.custodian``):

- ``record.custodians``: the sites that can keep records, with the encryption
  keys a writer seals key shares to.
- ``record.store {record_id, custodian, sealed, shares}``: after the anchor has
  committed, hand one custodian the ciphertext and every custodian's sealed
  share (``shares``: a ``SealedShares``, canonical CBOR):
  this node keeps it itself if it is that custodian, else passes it on over
  ``/p2pmed/blob/2``. Call once per custodian named in the anchor.
- ``record.fetch {request}``: after the reader's ``record.read`` has committed,
  pass the reader's signed read request (``SignedReadRequest``, canonical CBOR)
  to every custodian at once; answers the ciphertext (from one custodian) and
  every share sealed to the reader that custodians gave (``shares``), for the
  client to check against the anchor's digests and combine, and why the others
  refused (``refused``). An error when fewer than the anchor's threshold of
  shares, or no ciphertext, came back.
"""

from __future__ import annotations

from typing import Any

import trio

from p2pmed import codec
from p2pmed.ledger.contracts.records import record
from p2pmed.net.blob_protocol import SHARES_SIZE_MAX, BlobRequest, BlobResponse, SealedShares, SignedReadRequest
from p2pmed.node.api.port import NodePort
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method

__all__ = ["record_methods"]


def record_methods(node: NodePort) -> dict[str, Method]:
    async def custodians(params: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "key": v.key.hex(),
                "moniker": v.moniker,
                "kind": v.kind,
                "encryption_key": v.encryption_key.key.hex(),
                "kem": v.encryption_key.kem.value,
            }
            for v in node.validators
        ]

    def moniker_of(custodian: bytes) -> str:
        validators = node.validators
        keys = [validator.key for validator in validators]
        if custodian not in keys:
            raise RpcError(ErrorCode.INVALID_PARAMS, "custodian: not a validator's key; see record.custodians")
        return validators[keys.index(custodian)].moniker

    async def store(params: dict[str, Any]) -> dict[str, Any]:
        moniker = moniker_of(params["custodian"])
        try:
            shares = codec.decode(SealedShares, params["shares"], SHARES_SIZE_MAX)
        except codec.CodecError as error:
            raise RpcError(ErrorCode.INVALID_PARAMS, f"shares: not sealed key shares: {error}") from None
        request = BlobRequest("put", params["record_id"], params["sealed"], shares.wraps)
        response = await node.ask_custodian(params["custodian"], request)
        if response.error:
            raise RpcError(ErrorCode.REFUSED, f"record.store: custodian {moniker}: {response.error}")
        return {"stored": True, "custodian": params["custodian"].hex()}

    async def fetch(params: dict[str, Any]) -> dict[str, Any]:
        try:
            read = codec.decode(SignedReadRequest, params["request"], len(params["request"]))
        except codec.CodecError as error:
            raise RpcError(ErrorCode.INVALID_PARAMS, f"request: not a signed read request: {error}") from None
        record_id = read.request.record_id
        anchor = record(node.store, record_id)
        if anchor is None:
            raise RpcError(ErrorCode.NOT_FOUND, "record.fetch: no committed anchor has this record id on this node")
        answers: dict[bytes, BlobResponse] = {}

        async def ask(custodian: bytes) -> None:
            answers[custodian] = await node.ask_custodian(custodian, BlobRequest("share", record_id, read=read))

        async with trio.open_nursery() as nursery:
            for custodian in anchor.custodians:
                nursery.start_soon(ask, custodian)
        refused = {moniker_of(key): answers[key].error for key in anchor.custodians if answers[key].error}
        shares = [
            {"custodian": key.hex(), "wrap": answers[key].wraps[0].hex()}
            for key in anchor.custodians
            if not answers[key].error and len(answers[key].wraps) == 1
        ]
        if len(shares) < anchor.threshold:
            raise RpcError(
                ErrorCode.REFUSED,
                f"record.fetch: {len(shares)} of the {anchor.threshold} key shares needed: "
                + "; ".join(f"{name}: {reason}" for name, reason in refused.items()),
            )
        for share in shares:
            custodian = bytes.fromhex(share["custodian"])
            response = await node.ask_custodian(custodian, BlobRequest("sealed", record_id, read=read))
            if not response.error:
                return {"sealed": response.sealed.hex(), "shares": shares, "refused": refused}
            refused[moniker_of(custodian)] = response.error
        raise RpcError(
            ErrorCode.REFUSED,
            "record.fetch: no custodian served the ciphertext: "
            + "; ".join(f"{name}: {reason}" for name, reason in refused.items()),
        )

    return {
        "record.custodians": Method(custodians),
        "record.store": Method(store, {"record_id": bytes, "custodian": bytes, "sealed": bytes, "shares": bytes}),
        "record.fetch": Method(fetch, {"request": bytes}),
    }
