"""The refused sign-in roll-up (sans-IO): one record per group and window, counted; windows
handed over once they end, none lost when a refusal arrives after a window ended; a bounded
number of groups."""

from __future__ import annotations

from km.server.audit import RefusalRollup, shown_prefix

W = 60 * 10**9
T0 = 1_000 * W  # a window start


def test_refusals_are_counted_per_group_and_window() -> None:
    r = RefusalRollup(W)
    for _ in range(5):
        r.add(T0 + 1, "10.0.0.1", "km_live_abcd", "unknown")
    r.add(T0 + 2, "10.0.0.1", None, "missing")
    r.add(T0 + 3, "10.0.0.2", "km_live_abcd", "revoked", account_id=7)
    assert r.due(T0 + W - 1) == []  # not ended yet
    records = r.due(T0 + W)
    assert [(x.actor, x.target, x.detail["reason"], x.count, x.account_id) for x in records] == [
        ("10.0.0.1", None, "missing", 1, None),
        ("10.0.0.1", "km_live_abcd", "unknown", 5, None),
        ("10.0.0.2", "km_live_abcd", "revoked", 1, 7),
    ]
    assert {(x.ts_ns, x.until_ns) for x in records} == {(T0, T0 + W)}
    assert r.due(T0 + 5 * W) == [] and len(r) == 0


def test_a_refusal_after_a_window_ended_starts_the_next_and_loses_nothing() -> None:
    r = RefusalRollup(W)
    r.add(T0, "a", None, "missing")
    r.add(T0 + W + 5, "a", None, "missing")  # the first window ended unseen
    r.add(T0 + W + 6, "a", None, "missing")
    first, second = r.due(T0 + 2 * W + 1)
    assert (first.ts_ns, first.count) == (T0, 1)
    assert (second.ts_ns, second.count) == (T0 + W, 2)


def test_flush_hands_over_the_current_window_and_groups_are_bounded() -> None:
    r = RefusalRollup(W, max_groups=3)
    for i in range(10):
        r.add(T0 + i, f"10.0.0.{i}", None, "unknown")
    assert len(r) == 4  # three groups and "(other)"
    records = r.flush()
    assert sum(x.count for x in records) == 10
    assert [x.actor for x in records if x.count == 7] == ["(other)"]
    assert r.flush() == []


def test_only_a_km_key_prefix_is_kept_and_never_a_control_character() -> None:
    assert shown_prefix("km_live_abcdefgh", "km_live_", 12) == "km_live_abcd"
    assert shown_prefix("ghp_secretsecret", "km_live_", 12) is None
    assert shown_prefix(None, "km_live_", 12) is None
    assert shown_prefix("km_live_\x1b]0;", "km_live_", 12) == "km_live_??0?"
