"""The memoised signed-peer-record check: verify each peer's record once, refuse what fails."""

from __future__ import annotations

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.pubsub.pb.rpc_pb2 import RPC

from p2pmed.net.peer_records import _memoised_consume


def peer() -> ID:
    return ID.from_pubkey(create_new_key_pair().public_key)


def rpc(record: bytes | None) -> RPC:
    message = RPC()
    if record is not None:
        message.senderRecord = record
    return message


def test_a_record_that_verified_is_not_verified_again_and_a_changed_one_is() -> None:
    calls: list[bytes] = []

    def verify(message: RPC, _host: object, _peer: ID) -> bool:
        calls.append(message.senderRecord)
        return message.senderRecord.startswith(b"good")

    consume = _memoised_consume(verify)  # type: ignore[arg-type]
    alice, bob = peer(), peer()
    assert consume(rpc(b"good-1"), None, alice) and consume(rpc(b"good-1"), None, alice)  # type: ignore[arg-type]
    assert calls == [b"good-1"]
    assert consume(rpc(b"good-1"), None, bob)  # type: ignore[arg-type]  # another peer: its own check
    assert consume(rpc(b"good-2"), None, alice)  # type: ignore[arg-type]  # a new record: checked
    assert calls == [b"good-1", b"good-1", b"good-2"]


def test_a_record_that_fails_is_refused_every_time_and_no_record_passes_unchecked() -> None:
    calls: list[bytes] = []

    def verify(message: RPC, _host: object, _peer: ID) -> bool:
        calls.append(message.senderRecord)
        return False

    consume = _memoised_consume(verify)  # type: ignore[arg-type]
    mallory = peer()
    assert not consume(rpc(b"forged"), None, mallory)  # type: ignore[arg-type]
    assert not consume(rpc(b"forged"), None, mallory)  # type: ignore[arg-type]
    assert calls == [b"forged", b"forged"]
    assert consume(rpc(None), None, mallory)  # type: ignore[arg-type]  # py-libp2p accepts an RPC without one
    assert len(calls) == 2
