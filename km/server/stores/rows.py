"""SQL pieces and row conversions shared by both backends (sans-IO).

Placeholders differ (`?` for SQLite, `$n` for PostgreSQL), so the read-side WHERE clauses are
built here with a `Params` object that writes the right one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from km.insight.filter import Filter
from km.insight.filter_sql import SERVER_POSTGRES, SERVER_SQLITE, to_sql
from km.server import cursor as cursors
from km.server import latency
from km.server.audit import AuditEntry, AuditRecord
from km.server.errors import BadCursor
from km.server.stores.aggregate import HOUR_NS, NO_METHOD, NO_TOOL
from km.server.stores.base import EventFilter, HourStat, IngestEvent, SessionSummary
from km.server.stores.payload import from_columns
from km.server.validate import canonical_id

EVENTS_CURSOR = "e"
SESSIONS_CURSOR = "s"

# The order every backend selects event columns in (`event_from_row` relies on it).
EVENT_COLUMNS = (
    "id",
    "session_id",
    "server",
    "direction",
    "ts_ns",
    "kind",
    "method",
    "rpc_id",
    "size",
    "payload_json",
    "payload_text",
    "payload_bytes",
    "payload_encoding",
    "truncated",
    "link_id",
    "latency_us",
    "host",
    "km_version",
    "tool",
    "status",
    "tokens",
    "risk",
)


class Params:
    """Collects query parameters and writes their placeholders."""

    def __init__(self, style: str, *first: object) -> None:
        self.style = style  # "qmark" (SQLite) or "numeric" (PostgreSQL)
        self.values: list[object] = list(first)

    def add(self, value: object, cast: str = "") -> str:
        self.values.append(value)
        if self.style == "qmark":
            return "?"
        return f"${len(self.values)}{cast}"


def query_sql(
    params: Params,
    query: Filter,
    table: str = "events",
    elsewhere: tuple[tuple[str, str], ...] = (),
) -> str:
    """The filter language's condition over the events table (named `table` in the query)."""
    target = SERVER_POSTGRES if params.style == "numeric" else SERVER_SQLITE
    return to_sql(query, replace(target, alias=table, elsewhere=elsewhere), params.values)


def sessions_query_sql(params: Params, query: Filter) -> str:
    """Sessions (the `sessions` table) with at least one event `query` selects. A session's
    events all have its server and session id, so those terms are decided per session."""
    session_fields = (("server", "sessions.server"), ("session_id", "sessions.session_id"))
    inner = query_sql(params, query, elsewhere=session_fields)
    return (
        "EXISTS (SELECT 1 FROM events WHERE events.account_id = sessions.account_id"
        f" AND events.session_id = sessions.session_id AND {inner})"
    )


def event_where(params: Params, filters: EventFilter, cursor: str | None, uuid_cast: str) -> str:
    """Conditions after `account_id = <first param>`, joined with AND (leading AND included)."""
    parts: list[str] = []
    if filters.session_id is not None:
        parts.append(f"session_id = {params.add(filters.session_id)}")
    if filters.server is not None:
        parts.append(f"server = {params.add(filters.server)}")
    if filters.method is not None:
        parts.append(f"method = {params.add(filters.method)}")
    if filters.direction is not None:
        parts.append(f"direction = {params.add(filters.direction)}")
    if filters.tool is not None:
        parts.append(f"tool = {params.add(filters.tool)}")
    if filters.since_ns is not None:
        parts.append(f"ts_ns >= {params.add(filters.since_ns)}")
    if filters.until_ns is not None:
        parts.append(f"ts_ns < {params.add(filters.until_ns)}")
    if filters.query is not None:
        parts.append(query_sql(params, filters.query))
    if cursor is not None:
        ts_ns, last_id = cursors.decode(EVENTS_CURSOR, cursor)
        if canonical_id(last_id) != last_id:  # event ids are canonical UUIDs: a forged cursor
            raise BadCursor(cursor)
        # Spelled out (not a row comparison) so that SQLite also uses the (ts_ns, id) index.
        ts1, ts2 = params.add(ts_ns), params.add(ts_ns)
        parts.append(f"ts_ns >= {ts1} AND (ts_ns > {ts2} OR id > {params.add(last_id, uuid_cast)})")
    return "".join(f" AND {p}" for p in parts)


def event_from_row(row: Sequence[Any]) -> IngestEvent:
    return IngestEvent(
        id=str(row[0]),
        session_id=row[1],
        server=row[2],
        direction=row[3],
        ts_ns=row[4],
        kind=row[5],
        method=row[6],
        rpc_id=row[7],
        size=row[8],
        payload=from_columns(row[9], row[10], row[11]),
        payload_encoding=row[12],
        truncated=bool(row[13]),
        link_id=row[14],
        latency_us=row[15],
        host=row[16],
        km_version=row[17],
        tool=row[18],
        status=row[19],
        tokens=row[20],
        risk=row[21],
    )


def events_page(rows: Sequence[Sequence[Any]], limit: int) -> tuple[list[IngestEvent], str | None]:
    events = [event_from_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    last = events[-1] if events else None
    next_cursor = cursors.encode(EVENTS_CURSOR, last.ts_ns, last.id) if more and last else None
    return events, next_cursor


SESSION_COLUMNS = "session_id, server, host, first_ts_ns, last_ts_ns, events, errors"


def sessions_page(
    rows: Sequence[Sequence[Any]], limit: int
) -> tuple[list[SessionSummary], str | None]:
    sessions = [SessionSummary(*r) for r in rows[:limit]]
    more = len(rows) > limit
    last = sessions[-1] if sessions else None
    if not (more and last):
        return sessions, None
    return sessions, cursors.encode(SESSIONS_CURSOR, last.first_ts_ns, last.session_id)


def stats_range(since_ns: int | None, until_ns: int | None) -> tuple[int, int]:
    """Bounds on a rollup row's hour start for hours overlapping [since_ns, until_ns)."""
    low = -(2**63) if since_ns is None else since_ns - HOUR_NS  # hour_ns > low
    high = 2**63 - 1 if until_ns is None else until_ns  # hour_ns < high
    return low, high


STATS_COLUMNS = (
    "server, method, hour_ns, count, errors, bytes, lat_min, lat_max, lat_hist, tool, "
    "tool_errors, tokens, tokens_out"
)


def stat_from_row(row: Sequence[Any], hist: Sequence[int]) -> HourStat:
    lat_min, lat_max = row[6], row[7]
    p50 = p95 = None
    if lat_min is not None and lat_max is not None:
        p50 = latency.percentile(hist, 0.50, lat_min, lat_max)
        p95 = latency.percentile(hist, 0.95, lat_min, lat_max)
    return HourStat(
        server=row[0],
        method=None if row[1] == NO_METHOD else row[1],
        hour_ns=row[2],
        count=row[3],
        errors=row[4],
        bytes=row[5],
        latency_p50_us=p50,
        latency_p95_us=p95,
        tool=None if row[9] == NO_TOOL else row[9],
        tool_errors=row[10],
        tokens=row[11],
        tokens_out=row[12],
    )


AUDIT_CURSOR = "a"
AUDIT_COLUMNS = "id, account_id, ts_ns, action, actor, target, detail, count, until_ns"


def audit_position(cursor: str) -> tuple[int, int]:
    """The (ts_ns, id) after which the next audit page starts (newest first)."""
    ts_ns, key = cursors.decode(AUDIT_CURSOR, cursor)
    if not key.isascii() or not key.isdigit() or len(key) > 18:
        raise BadCursor(cursor)
    return ts_ns, int(key)


def audit_page(rows: Sequence[Sequence[Any]], limit: int) -> tuple[list[AuditEntry], str | None]:
    entries = [
        AuditEntry(
            id=r[0],
            account_id=r[1],
            ts_ns=r[2],
            action=r[3],
            actor=r[4],
            target=r[5],
            detail=orjson.loads(r[6]) if r[6] else {},
            count=r[7],
            until_ns=r[8],
        )
        for r in rows[:limit]
    ]
    last = entries[-1] if entries else None
    more = len(rows) > limit
    if not (more and last):
        return entries, None
    return entries, cursors.encode(AUDIT_CURSOR, last.ts_ns, str(last.id))


def audit_row(record: AuditRecord) -> tuple[object, ...]:
    """(account_id, ts_ns, action, actor, target, detail JSON, count, until_ns)."""
    return (
        record.account_id, record.ts_ns, record.action, record.actor, record.target,
        orjson.dumps(record.detail).decode(), record.count, record.until_ns,
    )  # fmt: skip
