"""Circuit breaker: closed -> open -> half-open (one probe) -> closed or open again."""

from __future__ import annotations

import pytest

from km.uplink.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=threshold, open_s=10.0, max_open_s=35.0, clock=clock)


def test_opens_after_consecutive_failures_only(clock: Clock) -> None:
    b = make(clock)
    b.failure()
    b.failure()
    b.success()  # the run of failures is broken
    b.failure()
    b.failure()
    assert b.state == CLOSED and b.allow()
    b.failure()
    assert b.state == OPEN
    assert not b.allow()
    assert b.wait_s() == 10.0
    assert b.open_until == 1010.0


def test_half_open_lets_exactly_one_probe_through(clock: Clock) -> None:
    b = make(clock, threshold=1)
    b.failure()
    clock.now += 9.99
    assert b.state == OPEN and not b.allow()
    clock.now += 0.01
    assert b.state == HALF_OPEN
    assert b.wait_s() == 0.0
    assert b.allow()  # the probe
    assert not b.allow()  # nobody else while it is out
    assert b.wait_s() == float("inf")
    b.success()
    assert b.state == CLOSED and b.allow() and b.failures == 0


def test_failed_probes_double_the_open_time_up_to_the_max(clock: Clock) -> None:
    b = make(clock, threshold=1)
    b.failure()
    waits = []
    for _ in range(4):
        clock.now += b.wait_s()
        assert b.allow()
        b.failure()
        assert b.state == OPEN
        waits.append(b.wait_s())
    assert waits == [20.0, 35.0, 35.0, 35.0]
    clock.now += 35.0
    assert b.allow()
    b.success()
    b.failure()  # closed again: threshold 1 opens it at the base time
    assert b.wait_s() == 10.0


def test_hold_keeps_it_open_at_least_that_long(clock: Clock) -> None:
    b = make(clock, threshold=1)
    b.failure(hold_s=120.0)  # a Retry-After longer than the open time
    assert b.wait_s() == 120.0
    clock.now += 60.0
    b.failure(hold_s=100.0)  # a request already out when it opened
    assert b.wait_s() == 100.0


def test_neutral_answer_releases_the_probe(clock: Clock) -> None:
    b = make(clock, threshold=1)
    b.failure()
    clock.now += 10.0
    assert b.allow()
    b.neutral()  # a 429: says nothing about health
    assert b.state == HALF_OPEN and b.allow()


@pytest.mark.parametrize("args", [(0, 1.0, 2.0), (1, 0.0, 2.0), (1, 5.0, 2.0)])
def test_refuses_nonsense(args: tuple[int, float, float]) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(*args)
