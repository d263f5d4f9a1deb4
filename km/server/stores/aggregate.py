"""Session and hourly rollup increments for a set of newly stored events (sans-IO).

Both backends call `aggregate()` on exactly the events their insert reported as new, and apply
the increments in the same transaction: a duplicate is never counted twice. Increments are
sorted by key so that concurrent transactions take row locks in the same order (no deadlock).
"""

from __future__ import annotations

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
    sessions: dict[str, SessionDelta] = {}
    rollups: dict[tuple[int, str, str, str], RollupDelta] = {}
    for e in events:
        is_error = e.kind == ERROR
        s = sessions.get(e.session_id)
        if s is None:
            s = sessions[e.session_id] = SessionDelta(
                e.session_id, e.server, None, e.ts_ns, e.ts_ns
            )
        if e.host is not None and (s.host is None or e.ts_ns < s.host_ts_ns):
            s.host = e.host  # the host of the earliest event that names one
            s.host_ts_ns = e.ts_ns
        s.first_ts_ns = min(s.first_ts_ns, e.ts_ns)
        s.last_ts_ns = max(s.last_ts_ns, e.ts_ns)
        s.events += 1
        s.errors += is_error
        key = (hour_of(e.ts_ns), e.server, e.method or NO_METHOD, e.tool or NO_TOOL)
        r = rollups.get(key)
        if r is None:
            r = rollups[key] = RollupDelta(*key)
        r.count += 1
        r.errors += is_error
        r.tool_errors += e.status == TOOL_ERROR
        if e.tokens is not None:
            r.tokens += e.tokens
            if e.direction == C2S:
                r.tokens_out += e.tokens
        r.bytes += e.size
        if e.latency_us is not None:
            r.lat_count += 1
            r.lat_sum += e.latency_us
            r.lat_min = e.latency_us if r.lat_min is None else min(r.lat_min, e.latency_us)
            r.lat_max = e.latency_us if r.lat_max is None else max(r.lat_max, e.latency_us)
            r.hist[latency.bucket_of(e.latency_us)] += 1
    return (
        [sessions[k] for k in sorted(sessions)],
        [rollups[k] for k in sorted(rollups)],
    )
