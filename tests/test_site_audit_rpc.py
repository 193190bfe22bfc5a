"""``site.audit`` and what ``audit.query`` leaves in the site audit log: handlers called as
the RPC server calls them (params bound and checked first), over a real store and log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fhir.resources.auditevent import AuditEvent

from health_world import FAR_MS, NURSE, FakeNode, P, StoreHarness, build_world
from ledger_harness import CHAIN
from p2pmed.node.api.health import health_methods
from p2pmed.node.api.site import site_methods
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method
from p2pmed.store.audit_log import verify_log


class SiteNode(FakeNode):
    """A ``FakeNode`` that also says which key it is, as ``site.audit`` asks."""

    chain_id = CHAIN

    @property
    def node_key(self) -> bytes:
        return self.site_key.public_key


@pytest.fixture
def node(tmp_path: Path) -> SiteNode:
    harness = StoreHarness(tmp_path / "store.db")
    build_world(harness)
    return SiteNode(harness.store)


@pytest.fixture
def methods(node: SiteNode) -> dict[str, Method]:
    return {**health_methods(node), **site_methods(node)}  # type: ignore[arg-type]


async def call(methods: dict[str, Method], name: str, **params: Any) -> Any:
    method = methods[name]
    return await method.handler(method.bind(name, params))


async def test_a_read_of_a_patients_trail_is_in_the_site_audit_log(methods: dict[str, Method], node: SiteNode) -> None:
    await call(methods, "audit.query", by="patient", subject=P.hex(), since_ms=5, until_ms=FAR_MS, format="fhir")
    await call(methods, "audit.query", by="actor", subject=NURSE.public_key.hex())  # not a patient's whole trail
    answer = await call(methods, "site.audit")
    assert answer["site"] == node.site_key.public_key.hex() and answer["chain_id"] == CHAIN
    (entry,) = answer["entries"]
    assert entry["kind"] == "trail-read" and entry["time_ms"] == node.now_ms()
    assert entry["fields"] == {"patient": P.hex(), "since_ms": 5, "until_ms": FAR_MS, "limit": 100, "format": "fhir"}
    assert verify_log(node.site_audit.log.path, node.site_key.public_key, CHAIN).ok


async def test_site_audit_as_fhir_is_valid_audit_events(methods: dict[str, Method], node: SiteNode) -> None:
    await call(methods, "audit.query", by="patient", subject=P.hex())
    (event,) = (await call(methods, "site.audit", format="fhir"))["entries"]
    AuditEvent.model_validate(event)
    assert event["code"]["coding"][0]["code"] == "trail-read"
    assert event["patient"]["identifier"]["value"] == P.hex()
    assert event["agent"][0]["who"]["display"] == "the site's operator"


async def test_site_audit_pages_by_time_and_limit(methods: dict[str, Method], node: SiteNode) -> None:
    for _ in range(3):
        await call(methods, "audit.query", by="patient", subject=P.hex())
    assert len((await call(methods, "site.audit", limit=2))["entries"]) == 2
    assert (await call(methods, "site.audit", since_ms=node.now_ms() + 1))["entries"] == []


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({"since_ms": -1}, '"since_ms"'), ({"limit": 0}, '"limit"'), ({"format": "xml"}, '"format"')],
)
async def test_site_audit_refuses_bad_params(methods: dict[str, Method], params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(RpcError) as raised:
        await call(methods, "site.audit", **params)
    assert raised.value.code == ErrorCode.INVALID_PARAMS and fragment in raised.value.message
