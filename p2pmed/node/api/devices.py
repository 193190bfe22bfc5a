"""JSON-RPC reads of the device registry and batch anchors (changes are signed transactions
sent with ``tx.submit``): ``device.get`` (as ledger fields, or as a FHIR R5 ``Device``) and
``device.batch``, whose ``key`` is the state key ``state.proof`` proves. A malformed UDI is
INVALID_PARAMS in the ledger's words; one never registered, or a batch never anchored, is
NOT_FOUND. Every answer is one state read."""

from __future__ import annotations

from typing import Any

from p2pmed.interop.fhir_devices import device_resource
from p2pmed.ledger.contracts.devices import Device, batch_anchor, batch_key, device, udi_problem, udi_text
from p2pmed.node.api.health import plain
from p2pmed.node.api.port import NodePort
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param

__all__ = ["DEVICE_FORMATS", "device_methods"]

DEVICE_FORMATS = ("entries", "fhir")
SEQUENCE_MAX = (1 << 63) - 1


def _udi(method: str, params: dict[str, Any]) -> tuple[str, str]:
    problem = udi_problem(params["gtin"], params["serial"])
    if problem is not None:
        raise RpcError(ErrorCode.INVALID_PARAMS, f"{method}: {problem}")
    return params["gtin"], params["serial"]


def _rendered(found: Device) -> dict[str, Any]:
    return {**plain(found), "udi": udi_text(found.gtin, found.serial), "active": found.revoked_ms is None}


def device_methods(node: NodePort) -> dict[str, Method]:
    store = node.store

    async def get_device(params: dict[str, Any]) -> dict[str, Any]:
        gtin, serial = _udi("device.get", params)
        if params["format"] not in DEVICE_FORMATS:
            raise RpcError(ErrorCode.INVALID_PARAMS, f'device.get: "format" is one of {", ".join(DEVICE_FORMATS)}')
        found = device(store, gtin, serial)
        if found is None:
            raise RpcError(ErrorCode.NOT_FOUND, f"no device {udi_text(gtin, serial)} was ever registered")
        return device_resource(found) if params["format"] == "fhir" else _rendered(found)

    async def get_batch(params: dict[str, Any]) -> dict[str, Any]:
        gtin, serial = _udi("device.batch", params)
        sequence = params["sequence"]
        if not 0 < sequence <= SEQUENCE_MAX:
            raise RpcError(ErrorCode.INVALID_PARAMS, 'device.batch: "sequence" is a batch number, from 1')
        found = batch_anchor(store, gtin, serial, sequence)
        if found is None:
            raise RpcError(ErrorCode.NOT_FOUND, f"device {udi_text(gtin, serial)} has no batch {sequence}")
        return {**plain(found), "key": batch_key(gtin, serial, sequence)}

    return {
        "device.get": Method(
            get_device, {"gtin": str, "serial": str, "format": Param(str, optional=True, default="entries")}
        ),
        "device.batch": Method(get_batch, {"gtin": str, "serial": str, "sequence": int}),
    }
