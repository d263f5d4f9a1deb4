"""The JSON shapes of the read side (sans-IO), as docs/api.md and openapi.py describe them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from km.server.stores.base import HourStat, IngestEvent, SessionSummary


def event_json(e: IngestEvent) -> dict[str, object]:
    encoding = e.payload_encoding
    if encoding == "utf8":
        try:
            payload = e.payload.decode("utf-8")
        except UnicodeDecodeError:  # the redactor left bytes that are not UTF-8
            encoding = "base64"
    if encoding == "base64":
        payload = base64.b64encode(e.payload).decode("ascii")
    return {
        "id": e.id,
        "session_id": e.session_id,
        "server": e.server,
        "direction": e.direction,
        "ts_ns": e.ts_ns,
        "kind": e.kind,
        "method": e.method,
        "rpc_id": e.rpc_id,
        "size": e.size,
        "payload": payload,
        "payload_encoding": encoding,
        "truncated": e.truncated,
        "link_id": e.link_id,
        "latency_us": e.latency_us,
        "host": e.host,
        "km_version": e.km_version,
        "tool": e.tool,
        "status": e.status,
        "tokens": e.tokens,
        "risk": e.risk,
    }


def session_json(s: SessionSummary) -> dict[str, object]:
    return {
        "session_id": s.session_id,
        "server": s.server,
        "host": s.host,
        "first_ts_ns": s.first_ts_ns,
        "last_ts_ns": s.last_ts_ns,
        "events": s.events,
        "errors": s.errors,
    }


def hour_iso(hour_ns: int) -> str:
    """`2025-11-22T03:00:00Z`."""
    return datetime.fromtimestamp(hour_ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stat_json(s: HourStat) -> dict[str, object]:
    return {
        "server": s.server,
        "method": s.method,
        "tool": s.tool,
        "hour": hour_iso(s.hour_ns),
        "count": s.count,
        "errors": s.errors,
        "tool_errors": s.tool_errors,
        "tokens": s.tokens,
        "latency_p50_us": s.latency_p50_us,
        "latency_p95_us": s.latency_p95_us,
        "bytes": s.bytes,
    }
