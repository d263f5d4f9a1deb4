"""When to try again (sans-IO): exponential backoff with full jitter, and `Retry-After`.

`Backoff.failure(now, retry_after_s)` records one failed attempt and returns the earliest time
the next request may go: a delay drawn uniformly from `[0, min(cap, base * 2**n))` (AWS's
"full jitter", so many km processes that failed together do not retry together), but never
earlier than a `Retry-After` the server asked for. `success()` starts over. Nothing here ever
gives up: the uplink retries for as long as it runs, and events stay in the spool meanwhile.

Times are plain floats on the caller's monotonic clock; the random source is injectable.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER_S = 24 * 3600.0  # a larger Retry-After is taken as this (a day: a server bug)


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base_s: float = 0.5  # the first retry waits up to this long
    cap_s: float = 60.0  # no retry waits longer than this (a Retry-After may ask for more)
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s or self.multiplier < 1:
            raise ValueError(
                f"need 0 < base_s <= cap_s and multiplier >= 1, got {self.base_s}, "
                f"{self.cap_s}, {self.multiplier}"
            )

    def ceiling(self, failures: int) -> float:
        """The largest delay after `failures` consecutive failures (1 = the first)."""
        if failures <= 0:
            return 0.0
        exponent = min(failures - 1, 1024)  # 2.0**1024 overflows; the cap is reached long before
        try:
            grown = self.base_s * self.multiplier**exponent
        except OverflowError:
            return self.cap_s
        return min(self.cap_s, grown)


class Backoff:
    """Consecutive failures and the time before which no request may be sent."""

    __slots__ = ("_random", "failures", "not_before", "policy")

    def __init__(
        self, policy: BackoffPolicy | None = None, rand: Callable[[], float] = random.random
    ) -> None:
        self.policy = policy or BackoffPolicy()
        self._random = rand  # uniform in [0, 1)
        self.failures = 0
        self.not_before = 0.0  # monotonic seconds; requests wait until then

    def failure(self, now: float, retry_after_s: float | None = None) -> float:
        """Record a failed attempt at `now`; return `not_before`, the earliest next request."""
        self.failures += 1
        delay = self._random() * self.policy.ceiling(self.failures)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
        self.not_before = max(self.not_before, now + delay)
        return self.not_before

    def defer(self, now: float, retry_after_s: float) -> float:
        """Wait at least `retry_after_s` without counting a failure (a 429: the server is fine,
        this client is just too fast). Returns `not_before`."""
        wait = min(max(0.0, retry_after_s), MAX_RETRY_AFTER_S)
        self.not_before = max(self.not_before, now + wait)
        return self.not_before

    def success(self) -> None:
        self.failures = 0

    def wait_s(self, now: float) -> float:
        """Seconds until a request may be sent (0.0: now)."""
        return max(0.0, self.not_before - now)


def parse_retry_after(value: str | None, now_epoch_s: float) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds (`120`, also `1.5`) or an
    HTTP-date; None when absent or unreadable. A date in the past means 0."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(seconds):
            return None
        return min(max(0.0, seconds), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 9110 dates are GMT anyway
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now_epoch_s), MAX_RETRY_AFTER_S)
