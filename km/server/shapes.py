"""The JSON shapes of the read side (sans-IO), as docs/api.md and openapi.py describe them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson

from km.insight.cost import MILLION, Price
from km.insight.inventory import pin_findings
from km.server.stores.base import HourStat, IngestEvent, SessionSummary
from km.server.stores.insight import (
    TOOLS_LIST,
    DefinitionChange,
    Inventory,
    Pin,
    StoredDefinition,
    StoredFinding,
    current_definitions,
)


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


def stat_json(s: HourStat, price: Price) -> dict[str, object]:
    """`tokens_out` are what the model wrote (client-to-server: call arguments), `tokens_in`
    what it read (results, listings); `cost_usd` prices them (km.insight.cost)."""
    tokens_in = s.tokens - s.tokens_out
    cost = (tokens_in * price.input_per_m + s.tokens_out * price.output_per_m) / MILLION
    return {
        "server": s.server,
        "method": s.method,
        "tool": s.tool,
        "hour": hour_iso(s.hour_ns),
        "count": s.count,
        "errors": s.errors,
        "tool_errors": s.tool_errors,
        "tokens": s.tokens,
        "tokens_in": tokens_in,
        "tokens_out": s.tokens_out,
        "cost_usd": round(cost, 9),
        "latency_p50_us": s.latency_p50_us,
        "latency_p95_us": s.latency_p95_us,
        "bytes": s.bytes,
    }


def finding_json(s: StoredFinding) -> dict[str, object]:
    return {
        "id": s.id,
        "session_id": s.session_id,
        "event_id": s.event_id,
        "ts_ns": s.ts_ns,
        **s.finding.to_json(),
        "server": s.server,
    }


# A definition's review state, as `km tools` shows it (km/tools_cli/views.py): `changed` when
# the core's pin_findings flags it (its current hash is not its baseline: the approved one, or
# the first ever seen), else `approved` when pinned, else `unreviewed`; `previous` for the
# versions no longer current.
APPROVED, CHANGED, UNREVIEWED, PREVIOUS = "approved", "changed", "unreviewed", "previous"
REVIEW_STATES = (APPROVED, CHANGED, UNREVIEWED, PREVIOUS)


def tools_json(inventory: Inventory) -> dict[str, object]:
    """Per server: every version of every definition (the current ones with their review state
    against the pins), the server's tool-list tokens, and the changes recorded."""
    current = current_definitions(inventory.definitions)
    pins = {(p.server, p.name): p for p in inventory.pins}
    flagged = _flagged(inventory, current, pins)
    servers: dict[str, dict[str, Any]] = {}
    for d in inventory.definitions:
        entry = servers.get(d.server)
        if entry is None:
            entry = servers[d.server] = {
                "server": d.server,
                "server_name": None,
                "server_version": None,
                "tokens": 0,
                "definitions": [],
                "changes": [],
                "_seen": -1,
            }
        is_current = current.get((d.server, d.kind), {}).get(d.name) is d
        pin = pins.get((d.server, d.name)) if d.kind == TOOLS_LIST else None
        if not is_current:
            state = PREVIOUS
        elif (d.server, d.kind, d.name) in flagged:
            state = CHANGED
        else:
            state = APPROVED if pin is not None else UNREVIEWED
        if d.last_seen_ns > entry["_seen"]:
            entry["_seen"] = d.last_seen_ns
            entry["server_name"], entry["server_version"] = d.server_name, d.server_version
        if is_current and d.kind == TOOLS_LIST:
            entry["tokens"] += d.tokens or 0
        entry["definitions"].append(
            {
                "kind": d.kind,
                "name": d.name,
                "hash": d.hash,
                "tokens": d.tokens,
                "first_seen_ns": d.first_seen_ns,
                "last_seen_ns": d.last_seen_ns,
                "sessions": d.sessions,
                "current": is_current,
                "state": state,
                "pinned_hash": pin.hash if pin is not None else None,
                "definition": _definition(d.definition),
            }
        )
    for c in inventory.changes:
        if c.server in servers:
            servers[c.server]["changes"].append(change_json(c))
    out = []
    for name in sorted(servers):
        entry = servers[name]
        del entry["_seen"]
        out.append(entry)
    return {"servers": out}


def _flagged(
    inventory: Inventory,
    current: dict[tuple[str, str], dict[str, StoredDefinition]],
    pins: dict[tuple[str, str], Pin],
) -> set[tuple[str, str, str]]:
    """(server, kind, name) of the current definitions the core's `pin_findings` flags."""
    first: dict[tuple[str, str, str], StoredDefinition] = {}
    for d in inventory.definitions:
        key = (d.server, d.kind, d.name)
        if key not in first or d.first_seen_ns < first[key].first_seen_ns:
            first[key] = d
    out: set[tuple[str, str, str]] = set()
    for (server, kind), defs in current.items():
        approved = {n for n in defs if kind == TOOLS_LIST and (server, n) in pins}
        baseline = {
            n: pins[server, n].hash if n in approved else first[server, kind, n].hash for n in defs
        }
        hashes = {n: d.hash for n, d in defs.items()}
        for f in pin_findings(server, hashes, baseline, kind, approved=approved):
            if f.tool is not None:
                out.add((server, kind, f.tool))
    return out


def _definition(text: str) -> object:
    """The stored canonical JSON as JSON (as text if redaction ever left it unparsable)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def change_json(c: DefinitionChange) -> dict[str, object]:
    return {
        "kind": c.kind,
        "name": c.name,
        "change": c.change,
        "old_hash": c.old_hash,
        "new_hash": c.new_hash,
        "fields": list(c.fields),
        "diff": c.diff,
        "version_changed": c.version_changed,
        "session_id": c.session_id,
        "ts_ns": c.ts_ns,
    }


def pin_json(p: Pin) -> dict[str, object]:
    return {"server": p.server, "tool": p.name, "hash": p.hash, "pinned_ns": p.pinned_ns}
