"""Session and rollup increments for newly stored events."""

from __future__ import annotations

from km.server import latency
from km.server.stores.aggregate import HOUR_NS, NO_METHOD, aggregate, hour_of
from tests.server.conftest import BASE_TS, ingest_event


def test_sessions_and_rollups() -> None:
    events = [
        ingest_event(0, session_id="b", kind="request", host=None),
        ingest_event(1, session_id="b", kind="error", latency_us=150, host="h1"),
        ingest_event(2, session_id="a", kind="response", latency_us=40, method=None),
        ingest_event(3, session_id="b", ts_ns=BASE_TS + HOUR_NS, kind="response", latency_us=9),
    ]
    sessions, rollups = aggregate(events)
    assert [s.session_id for s in sessions] == ["a", "b"]  # sorted: lock order
    b = sessions[1]
    assert (b.events, b.errors, b.host) == (3, 1, "h1")
    assert (b.first_ts_ns, b.last_ts_ns) == (BASE_TS, BASE_TS + HOUR_NS)
    hour = hour_of(BASE_TS)
    assert hour % HOUR_NS == 0 and hour <= BASE_TS < hour + HOUR_NS
    keys = [(r.hour_ns, r.method) for r in rollups]
    assert keys == sorted(keys)
    first = next(r for r in rollups if r.hour_ns == hour and r.method == "tools/call")
    assert (first.count, first.errors, first.lat_count, first.lat_sum) == (2, 1, 1, 150)
    assert (first.lat_min, first.lat_max) == (150, 150)
    assert first.hist[latency.bucket_of(150)] == 1
    no_method = next(r for r in rollups if r.method == NO_METHOD)
    assert (no_method.count, no_method.lat_min) == (1, 40)
    assert first.bytes == events[0].size + events[1].size


def test_nothing_new_nothing_to_add() -> None:
    assert aggregate([]) == ([], [])


def test_session_host_is_the_earliest_events_whatever_the_order() -> None:
    early = ingest_event(0, session_id="s", host="early")
    late = ingest_event(5, session_id="s", host="late")
    nameless = ingest_event(-1, session_id="s", host=None)
    for order in ([early, late, nameless], [late, nameless, early], [nameless, late, early]):
        [session], _ = aggregate(order)
        assert session.host == "early"
        assert session.first_ts_ns == nameless.ts_ns
