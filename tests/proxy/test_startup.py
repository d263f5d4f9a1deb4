"""When the capture process may start and when the start-up spill ends (sans-IO)."""

from __future__ import annotations

from km.proxy.startup import END_SPILL, HOLD_S, NOTHING, RELEASE, START_S, WINDOW_S, StartUp

MAX = 1000
SPILL = 16_000
FRAMES = 100
MS = 0.001


def run(s: StartUp, start: float, busy: float, blocked: float, steps: int) -> tuple[float, int]:
    """Polls that each wait `blocked` s after `busy` s of forwarding; the first action."""
    t = start
    for _ in range(steps):
        t += busy + blocked
        action = s.step(t, blocked, 5000, 10)
        if action != NOTHING:
            return t, action
    return t, NOTHING


def test_a_burst_holds_the_capture_process() -> None:
    s = StartUp(0.0, MAX, SPILL, FRAMES)
    # Forwarding 3 ms for each 1 ms it waits (a burst): a quarter idle, not released.
    t, action = run(s, 0.0, 3 * MS, 1 * MS, steps=int(HOLD_S / (4 * MS)) - 1)
    assert action == NOTHING and t < HOLD_S and s.held


def test_an_idle_session_releases_within_two_windows() -> None:
    s = StartUp(10.0, MAX, SPILL, FRAMES)
    assert s.step(10.0 + WINDOW_S, WINDOW_S, 0, 0) == RELEASE
    assert not s.held


def test_a_paced_stream_releases_within_two_windows() -> None:
    s = StartUp(0.0, MAX, SPILL, FRAMES)
    # 0.1 ms of forwarding per 0.4 ms waiting: mostly idle.
    t, action = run(s, 0.0, 0.1 * MS, 0.4 * MS, steps=1000)
    assert action == RELEASE and t <= 2 * WINDOW_S


def test_half_the_spill_used_releases_at_once() -> None:
    s = StartUp(0.0, MAX, SPILL, FRAMES)
    assert s.step(MS, 0.0, MAX + SPILL // 2 - 1, 0) == NOTHING
    assert s.step(2 * MS, 0.0, MAX + SPILL // 2, 0) == RELEASE


def test_a_flood_of_small_messages_releases_at_half_the_spill_frames() -> None:
    s = StartUp(0.0, MAX, SPILL, FRAMES)
    assert s.step(MS, 0.0, 500, FRAMES // 2 - 1) == NOTHING
    assert s.step(2 * MS, 0.0, 500, FRAMES // 2) == RELEASE


def test_busy_all_the_time_still_releases_after_the_hold() -> None:
    s = StartUp(0.0, MAX, SPILL, FRAMES)
    t, action = run(s, 0.0, 1 * MS, 0.0, steps=10_000)
    assert action == RELEASE and HOLD_S <= t < HOLD_S + 2 * MS


def test_the_spill_ends_after_the_start_up() -> None:
    s = StartUp(0.0, MAX, SPILL, FRAMES)
    assert s.step(WINDOW_S, WINDOW_S, 0, 0) == RELEASE
    assert s.step(0.5, 0.0, MAX * 5, 0) == NOTHING, "released early, the spill still takes"
    assert s.step(START_S, 0.0, MAX * 5, 0) == END_SPILL
