"""The healthcare CLI and RPC methods on a real network of four node processes: a site
registers a patient and a clinician with its node key, the patient grants consent
through another node with ``--wait``, and a third node answers ``consent.list`` and
``audit.query`` (as FHIR) with what the ledger decided. Every wait is bounded."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fhir.resources.auditevent import AuditEvent

from p2pmed.cli.main import cli
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import NODE_KEY
from p2pmed.testing.process_network import ProcessNetwork

pytestmark = pytest.mark.xdist_group("health-network")

CONFIG = NodeConfig(log_format="json", request_timeout_ms=1_500, view_change_timeout_ms=1_500)
WAIT_S = 60.0


@pytest.fixture(scope="module")
def net() -> Iterator[ProcessNetwork]:
    directory = Path(tempfile.mkdtemp(prefix="p2pmed-"))  # short: the socket path must fit in 108 bytes
    network = ProcessNetwork(directory, 4, CONFIG)
    try:
        network.start_all(WAIT_S)
        yield network
    finally:
        network.close()
        shutil.rmtree(directory, ignore_errors=True)


def p2pmed(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, f"p2pmed {' '.join(args)}: {result.output}"
    return result.output


def make_person(net: ProcessNetwork, name: str, role: str) -> tuple[str, Path]:
    """Keys made by ``identity keys``, registered by the hospital (node 0's site key); the id and key file."""
    out = net.directory / name
    keys = json.loads(p2pmed("identity", "keys", "--out", str(out), "--json"))
    p2pmed(
        "identity",
        "register-person",
        "--home",
        str(net.homes[0]),
        "--key",
        str(net.homes[0] / NODE_KEY),
        "--role",
        role,
        "--public-key",
        keys["public_key"],
        "--encryption-key",
        keys["encryption_key"],
        "--wait",
        "--timeout",
        str(WAIT_S),
    )
    for index in range(len(net.homes)):  # committed at node 0; the next request may go to any node
        known = functools.partial(net.call, index, "identity.person", id_or_key=keys["public_key"])
        net.wait_for(index, known, WAIT_S, f"to know {name}")
    return keys["public_key"], out / "signing_key.pem"


def test_a_consent_granted_through_the_cli_is_read_back_on_another_node(net: ProcessNetwork) -> None:
    patient, patient_key = make_person(net, "patient", "patient")
    clinician, _ = make_person(net, "clinician", "clinician")
    granted = json.loads(
        p2pmed(
            "consent",
            "grant",
            "--home",
            str(net.homes[1]),
            "--key",
            str(patient_key),
            "--grantee",
            clinician,
            "--category",
            "laboratory",
            "--purpose",
            "TREAT",
            "--expires",
            "2099-12-31",
            "--wait",
            "--timeout",
            str(WAIT_S),
            "--json",
        )
    )
    assert granted["status"] == "committed", granted
    listed = net.wait_for(
        2,
        lambda: (answer := net.call(2, "consent.list", patient=patient))["consents"] and answer,
        WAIT_S,
        "to list the consent",
    )
    [consent] = listed["consents"]
    assert (consent["grantee"], consent["category"], consent["granted_by"]) == (clinician, "laboratory", patient)
    audit = net.call(2, "audit.query", by="patient", subject=patient, format="fhir")
    [event] = [AuditEvent.model_validate(resource) for resource in audit["entries"]]
    assert event.code.coding[0].code == "consent-grant" and event.id == granted["tx_id"]
    assert net.call(3, "identity.person", id_or_key=clinician)["role"] == "clinician"
