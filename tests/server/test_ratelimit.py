"""Token buckets on a clock the test controls."""

from __future__ import annotations

import pytest

from km.server.ratelimit import RateLimit, RateLimiter, TokenBucket, retry_after_header


def test_burst_then_refill() -> None:
    bucket = TokenBucket(RateLimit(rate=2.0, burst=3), now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # 1 token at 2/s
    assert bucket.take(0.25) == pytest.approx(0.25)  # half a token came back
    assert bucket.take(0.5) == 0.0
    assert not bucket.full(0.5)
    assert bucket.full(2.0)
    assert [bucket.take(10.0) for _ in range(4)][-1] > 0  # refill stops at burst


def test_refusals_do_not_spend() -> None:
    bucket = TokenBucket(RateLimit(rate=1.0, burst=1), now=0.0)
    assert bucket.take(0.0) == 0.0
    for _ in range(5):
        assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.take(1.0) == 0.0


def test_clock_going_backwards_is_harmless() -> None:
    bucket = TokenBucket(RateLimit(rate=1.0, burst=1), now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == pytest.approx(1.0)


def test_limiter_is_per_key_and_bounded() -> None:
    limiter = RateLimiter(RateLimit(rate=1.0, burst=1), max_keys=2)
    assert limiter.check("a", 0.0) == 0.0
    assert limiter.check("a", 0.0) > 0
    assert limiter.check("b", 0.0) == 0.0  # another key has its own bucket
    limiter.check("c", 0.0)
    assert len(limiter) == 2  # "a" was least recently used and is forgotten


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.2) == "2"


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5)])
def test_bad_limits(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        RateLimit(rate, burst)
