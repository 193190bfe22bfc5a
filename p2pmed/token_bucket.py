"""A token bucket: a rate with a burst, for requests (the RPC server) or bytes (peers);
``PeerBudgets``, one bucket per peer."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["PeerBudgets", "TokenBucket"]

K = TypeVar("K", bound=Hashable)


class TokenBucket:
    """At most ``burst`` tokens at once (requests, bytes), refilled at ``rate`` per second.

    Pure: time comes in as ``now`` (seconds, any monotonic origin), so the same
    bucket works under trio's clock and in a test with made-up times.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float, amount: int = 1) -> float:
        """Take ``amount`` tokens (at most ``burst``): ``0.0`` if there were enough, else
        how many seconds until there are (nothing is taken then)."""
        assert 1 <= amount <= self.burst, "a bucket cannot hold what is asked of it"
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._updated) * self.rate)
        self._updated = max(self._updated, now)
        if self._tokens >= amount:
            self._tokens -= amount
            return 0.0
        return (amount - self._tokens) / self.rate

    def charge(self, now: float, amount: int) -> None:
        """Take ``amount`` tokens even if there are fewer, leaving the bucket in debt: for a
        cost known only once it is spent (an answer's bytes). ``take`` then waits out the debt."""
        assert amount >= 0
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._updated) * self.rate) - amount
        self._updated = max(self._updated, now)


class PeerBudgets(Generic[K]):
    """One ``TokenBucket`` per peer, made on the peer's first use; at most ``peers_max``
    are remembered, the least recently used forgotten first (it starts full again)."""

    def __init__(self, rate: float, burst: int, peers_max: int = 10_000) -> None:
        TokenBucket(rate, burst, 0.0)  # checks the arguments now, not at a peer's first use
        self.rate, self.burst, self.peers_max = rate, burst, peers_max
        self._buckets: dict[K, TokenBucket] = {}

    def take(self, peer: K, now: float, amount: int = 1) -> float:
        """``TokenBucket.take`` on ``peer``'s bucket."""
        bucket = self._buckets.pop(peer, None)  # re-inserted: the dict stays in last-use order
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
        self._buckets[peer] = bucket
        while len(self._buckets) > self.peers_max:
            del self._buckets[next(iter(self._buckets))]
        return bucket.take(now, amount)

    def charge(self, peer: K, now: float, amount: int) -> None:
        """``TokenBucket.charge`` on ``peer``'s bucket, if it has one (``take`` made it)."""
        bucket = self._buckets.get(peer)
        if bucket is not None:
            bucket.charge(now, amount)

    def forget(self, peer: K) -> None:
        """Drop ``peer``'s bucket: its next use starts full."""
        self._buckets.pop(peer, None)
