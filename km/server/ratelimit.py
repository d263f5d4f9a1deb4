"""Per-key rate limiting by token bucket (sans-IO: the caller passes the clock).

Each key's bucket holds up to `burst` tokens and refills at `rate` tokens per second; a request
costs one. A refused request learns how long until it would pass, for `Retry-After`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    rate: float  # tokens per second
    burst: float  # bucket size: requests allowed at once after idling

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {self.rate}, {self.burst}")


class TokenBucket:
    __slots__ = ("_limit", "_tokens", "_updated")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self._limit = limit
        self._tokens = limit.burst
        self._updated = now

    def take(self, now: float, cost: float = 1.0) -> float:
        """Spend `cost` tokens and return 0.0, or spend nothing and return the seconds to wait
        until `cost` tokens will be there."""
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._limit.burst, self._tokens + elapsed * self._limit.rate)
        self._updated = now
        if self._tokens >= cost:
            self._tokens -= cost
            return 0.0
        return (cost - self._tokens) / self._limit.rate

    def wait(self, now: float, cost: float = 1.0) -> float:
        """The seconds until `cost` tokens will be there (0.0: now), spending nothing."""
        elapsed = max(0.0, now - self._updated)
        tokens = min(self._limit.burst, self._tokens + elapsed * self._limit.rate)
        return 0.0 if tokens >= cost else (cost - tokens) / self._limit.rate

    def full(self, now: float) -> bool:
        elapsed = max(0.0, now - self._updated)
        return self._tokens + elapsed * self._limit.rate >= self._limit.burst


class RateLimiter:
    """One bucket per key. At most `max_keys` buckets are kept: past that the least recently
    used is dropped, which can only make a limit more lenient for a key idle that long."""

    def __init__(self, limit: RateLimit, max_keys: int = 100_000) -> None:
        self.limit = limit
        self._max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def check(self, key: Hashable, now: float) -> float:
        """0.0 when the request may go ahead, else the seconds to wait."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.limit, now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def wait(self, key: Hashable, now: float) -> float:
        """What `check` would answer, spending nothing: 0.0 when a request may go ahead."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait(now)

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(wait_s: float) -> str:
    """`Retry-After` is whole seconds: round up, and never say 0."""
    return str(max(1, math.ceil(wait_s)))
