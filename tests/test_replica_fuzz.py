"""Valid signed consensus messages, mutated, fed to a replica: it never raises and never
moves backwards. The corpus is what four real validators sent each other while committing,
changing view after their primary crashed, checkpointing and catching a node up."""

from __future__ import annotations

import functools
import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pmed import codec
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.messages import (
    Checkpoint,
    Envelope,
    Message,
    NewView,
    PrePrepare,
    ViewChange,
    Vote,
    decode_message,
    encode_message,
)
from p2pmed.consensus.replica import Replica, ReplicaConfig
from p2pmed.crypto import Ed25519Verifier, SigningKey
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import sign_transaction
from p2pmed.testing.local_network import LocalNetwork, validator_keys
from signing import signed
from strategies import mutated

CHAIN = "replica-fuzz"
KEYS = validator_keys(4)
CONFIG = ReplicaConfig(checkpoint_interval=2, watermark_window=8, batch_size_max=2)


@functools.cache
def corpus() -> tuple[tuple[int, bytes], ...]:
    """(sender, encoded message) pairs, every kind of message among them."""
    sent: list[tuple[int, bytes]] = []
    with tempfile.TemporaryDirectory() as directory:
        network = LocalNetwork(Path(directory), CHAIN, config=CONFIG)
        send_from = network.send_from

        def record(source: int, outgoing: list[tuple[bytes, bytes]]) -> None:
            sent.extend((source, data) for _, data in outgoing)
            send_from(source, outgoing)

        network.send_from = record  # type: ignore[method-assign]
        sender = SigningKey.from_seed(b"z" * 32)
        nonce = 0
        for phase in range(3):
            if phase == 1:
                network.crash(0)  # a view change
            if phase == 2:
                network.crash(3)
                network.restart(0)
            for _ in range(4):
                network.submit_everywhere(sign_transaction(sender, CHAIN, "load.probe", nonce, Probe(f"{nonce}")))
                nonce += 1
                network.run(200)
            network.run(3_000)
        network.restart(3)
        network.run(5_000)
        network.close()
    kinds = {decode_message(data).__class__.__name__ for _, data in sent}
    assert kinds >= {"PrePrepare", "Vote", "Checkpoint", "ViewChange", "NewView", "FetchBlocks", "Blocks"}, kinds
    return tuple(dict.fromkeys(sent))


def fresh_replica(index: int) -> Replica:
    validators = Validators(CHAIN, tuple(key.public_key for key in KEYS), Ed25519Verifier())
    return Replica(validators, KEYS[index], CONFIG, lambda tx: True, now_ms=1_000)


def _mutate_value(value: Any, rng: random.Random) -> Any:
    """Change one leaf of a decoded message: an integer, a byte string, a string or a flag."""
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        return {**value, key: _mutate_value(value[key], rng)}
    if isinstance(value, list | tuple) and value:
        index = rng.randrange(len(value))
        return [*value[:index], _mutate_value(value[index], rng), *value[index + 1 :]]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice([0, 1, value + 1, max(0, value - 1), 1 << 62, -1])
    if isinstance(value, bytes):
        return rng.randbytes(len(value)) if value and rng.random() < 0.5 else rng.randbytes(rng.choice([0, 31, 32, 64]))
    if isinstance(value, str):
        return value + "x"
    return value


def resigned(message: Message) -> Message:
    """What a Byzantine validator sends: the altered message signed again with its own key."""
    if isinstance(message, PrePrepare):
        return PrePrepare(resigned(message.vote), message.proposal)  # type: ignore[arg-type]
    if isinstance(message, Vote | Checkpoint | ViewChange | NewView):
        if 0 <= message.replica < len(KEYS):
            return signed(message, KEYS[message.replica], CHAIN)
    return message


@st.composite
def field_mutated(draw: st.DrawFn) -> tuple[int, bytes]:
    """One field of a real message changed; signed again by its (Byzantine) author when it still decodes."""
    sender, data = draw(st.sampled_from(corpus()))
    envelope = codec.decode(Envelope, data, codec.MESSAGE_SIZE_MAX)
    rng = random.Random(draw(st.integers(0, 2**32)))
    encoded = codec.encode(Envelope(envelope.kind, _mutate_value(codec.to_value(envelope.body), rng)))
    try:
        return sender, encode_message(resigned(decode_message(encoded)))
    except codec.CodecError:
        return sender, encoded


def feed(replica: Replica, sender: int, data: bytes, now_ms: int) -> None:
    view, executed, stable = replica.view, replica.last_executed, replica.stable_sequence
    replica.receive(sender, data, now_ms)  # must not raise
    assert replica.view >= view and replica.last_executed >= executed and replica.stable_sequence >= stable
    assert replica.next_deadline_ms() > 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_messages_never_crash_a_replica_or_move_it_backwards(data: st.DataObject) -> None:
    replica = fresh_replica(data.draw(st.integers(1, 3)))
    now_ms = 1_000
    for _ in range(data.draw(st.integers(1, 6))):
        now_ms += data.draw(st.integers(0, 5_000))
        if data.draw(st.booleans()):
            sender, encoded = data.draw(field_mutated())
        else:
            sender, original = data.draw(st.sampled_from(corpus()))
            encoded = data.draw(mutated(st.just(original)))
        sender = data.draw(st.sampled_from([sender, sender, 0, 1, 2, 3]))
        if sender != replica.index:
            feed(replica, sender, encoded, now_ms)
        replica.tick(now_ms)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(range(40)), st.integers(1, 3))
def test_valid_messages_in_any_order_never_crash_a_replica(order: list[int], index: int) -> None:
    replica = fresh_replica(index)
    messages = corpus()
    now_ms = 1_000
    for position in order:
        sender, data = messages[position * len(messages) // 40]
        now_ms += 50
        if sender != index:
            feed(replica, sender, data, now_ms)
