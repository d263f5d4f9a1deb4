"""Backoff: full jitter under an exponential, capped ceiling; never before a Retry-After."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from km.uplink.backoff import MAX_RETRY_AFTER_S, Backoff, BackoffPolicy, parse_retry_after


def test_ceiling_doubles_up_to_the_cap() -> None:
    policy = BackoffPolicy(base_s=0.5, cap_s=10.0)
    assert [policy.ceiling(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert policy.ceiling(10_000) == 10.0  # no overflow however long the API is down


@pytest.mark.parametrize("bad", [(0.0, 1.0, 2.0), (2.0, 1.0, 2.0), (0.5, 1.0, 0.5)])
def test_policy_refuses_nonsense(bad: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(*bad)


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    low = Backoff(BackoffPolicy(base_s=1.0, cap_s=60.0), rand=lambda: 0.0)
    high = Backoff(BackoffPolicy(base_s=1.0, cap_s=60.0), rand=lambda: 0.999)
    for n in range(1, 10):
        assert low.failure(100.0) == 100.0
        assert high.failure(100.0) == pytest.approx(100.0 + 0.999 * min(60.0, 2.0 ** (n - 1)))
    assert high.failures == 9


def test_success_starts_over_but_keeps_a_pending_wait() -> None:
    b = Backoff(BackoffPolicy(base_s=1.0, cap_s=60.0), rand=lambda: 0.5)
    for _ in range(5):
        b.failure(0.0)
    assert b.failures == 5
    b.success()
    assert b.failures == 0
    assert b.failure(1000.0) == pytest.approx(1000.5)  # the first ceiling again


def test_retry_after_is_a_floor() -> None:
    b = Backoff(BackoffPolicy(base_s=0.1, cap_s=0.2), rand=lambda: 0.0)
    assert b.failure(10.0, retry_after_s=30.0) == 40.0
    assert b.wait_s(10.0) == 30.0
    assert b.wait_s(39.9) == pytest.approx(0.1)
    assert b.wait_s(40.0) == 0.0


def test_defer_waits_without_counting_a_failure() -> None:
    b = Backoff()
    assert b.defer(5.0, 2.0) == 7.0
    assert b.failures == 0
    assert b.defer(5.0, 1.0) == 7.0  # a shorter wait never shortens one already promised
    assert b.defer(5.0, -3.0) == 7.0


@given(
    failures=st.integers(0, 80),
    rand=st.floats(0.0, 1.0, exclude_max=True),
    retry_after=st.none() | st.floats(0.0, 1e6),
    now=st.floats(0.0, 1e9),
)
def test_never_before_retry_after_never_past_cap(
    failures: int, rand: float, retry_after: float | None, now: float
) -> None:
    policy = BackoffPolicy(base_s=0.5, cap_s=60.0)
    b = Backoff(policy, rand=lambda: rand)
    for _ in range(failures):
        b.failure(0.0)
    b.not_before = 0.0
    at = b.failure(now, retry_after)
    assert at >= now
    if retry_after is not None:
        assert at >= now + min(retry_after, MAX_RETRY_AFTER_S)
        assert at <= now + max(policy.cap_s, min(retry_after, MAX_RETRY_AFTER_S))
    else:
        assert at <= now + policy.cap_s


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-4", 0.0),
        ("nan", None),
        ("inf", MAX_RETRY_AFTER_S),
        ("1e12", MAX_RETRY_AFTER_S),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: now
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now_epoch_s=2_000_000_000.0) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    now = 1_763_780_000.0
    when = datetime.fromtimestamp(now + 90, UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), now) == pytest.approx(90.0)
    naive = format_datetime(when.replace(tzinfo=None))  # "-0000": GMT all the same
    assert parse_retry_after(naive, now) == pytest.approx(90.0)


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises(text: str) -> None:
    value = parse_retry_after(text, 1_763_780_000.0)
    assert value is None or (0.0 <= value <= MAX_RETRY_AFTER_S and not math.isnan(value))
