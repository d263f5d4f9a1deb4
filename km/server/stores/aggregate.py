"""Session and hourly rollup increments for a set of newly stored events (sans-IO).

Both backends call `aggregate()` on exactly the events their insert reported as new, and apply
the increments in the same transaction: a duplicate is never counted twice. Increments are
sorted by key so that concurrent transactions take row locks in the same order (no deadlock).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from km.events import C2S, ERROR
from km.server import latency
from km.server.stores.base import IngestEvent

HOUR_NS = 3600 * 1_000_000_000
NO_METHOD = ""  # rollup key for events without a method (a key column cannot be NULL)
NO_TOOL = ""  # rollup key for events without a tool
TOOL_ERROR = "tool-error"  # the status of a tools/call result with isError: true


@dataclass(slots=True)
class SessionDelta:
    session_id: str
    server: str
    host: str | None
    first_ts_ns: int
    last_ts_ns: int
    events: int = 0
    errors: int = 0
    host_ts_ns: int = 2**63  # time of the event `host` came from


@dataclass(slots=True)
class RollupDelta:
    hour_ns: int
    server: str
    method: str  # NO_METHOD when the events had none
    tool: str  # NO_TOOL when the events had none
    count: int = 0
    errors: int = 0  # JSON-RPC errors
    tool_errors: int = 0  # tool results with isError: true
    tokens: int = 0
    tokens_out: int = 0  # of client-to-server events: what the model wrote (call arguments)
    bytes: int = 0
    lat_count: int = 0
    lat_sum: int = 0
    lat_min: int | None = None
    lat_max: int | None = None
    hist: list[int] = field(default_factory=latency.empty)


def hour_of(ts_ns: int) -> int:
    return ts_ns - ts_ns % HOUR_NS


def aggregate(events: Iterable[IngestEvent]) -> tuple[list[SessionDelta], list[RollupDelta]]:
    # Per event on ingest: attributes read once, comparisons instead of min()/max() calls.
    sessions: dict[str, SessionDelta] = {}
    rollups: dict[tuple[int, str, str, str], RollupDelta] = {}
    bounds, bisect_left = latency.BOUNDS_US, bisect.bisect_left
    for e in events:
        ts_ns = e.ts_ns
        is_error = e.kind == ERROR
        s = sessions.get(e.session_id)
        if s is None:
            s = sessions[e.session_id] = SessionDelta(e.session_id, e.server, None, ts_ns, ts_ns)
        elif ts_ns < s.first_ts_ns:
            s.first_ts_ns = ts_ns
        elif ts_ns > s.last_ts_ns:
            s.last_ts_ns = ts_ns
        host = e.host
        if host is not None and (s.host is None or ts_ns < s.host_ts_ns):
            s.host = host  # the host of the earliest event that names one
            s.host_ts_ns = ts_ns
        s.events += 1
        key = (ts_ns - ts_ns % HOUR_NS, e.server, e.method or NO_METHOD, e.tool or NO_TOOL)
        r = rollups.get(key)
        if r is None:
            r = rollups[key] = RollupDelta(*key)
        r.count += 1
        if is_error:
            s.errors += 1
            r.errors += 1
        if e.status == TOOL_ERROR:
            r.tool_errors += 1
        tokens = e.tokens
        if tokens is not None:
            r.tokens += tokens
            if e.direction == C2S:
                r.tokens_out += tokens
        r.bytes += e.size
        lat = e.latency_us
        if lat is not None:
            r.lat_count += 1
            r.lat_sum += lat
            if r.lat_min is None or lat < r.lat_min:
                r.lat_min = lat
            if r.lat_max is None or lat > r.lat_max:
                r.lat_max = lat
            r.hist[bisect_left(bounds, lat if lat > 0 else 0)] += 1  # latency.bucket_of
    return (
        [sessions[k] for k in sorted(sessions)],
        [rollups[k] for k in sorted(rollups)],
    )
