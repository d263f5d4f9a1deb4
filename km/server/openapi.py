"""The OpenAPI 3.1 document of the API, as one Python dict (served at /api/v1/openapi.json).

It describes what the handlers do; tests/server/test_openapi.py checks that its paths are
exactly the app's routes, that its examples validate against its schemas, and that live
responses do too. Keep docs/api.md, this file and the handlers in step.
"""

from __future__ import annotations

from typing import Any

from km import __version__
from km.events import KINDS
from km.insight.cost import DEFAULT_MODEL
from km.server import openapi_insight
from km.server.audit import ACTIONS
from km.server.config import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_EVENTS, MAX_PAGE
from km.server.retention import MAX_DAYS, MIN_DAYS
from km.server.validate import DIRECTIONS, ENCODINGS, MAX_METHOD, MAX_NAME, REQUIRED_FIELDS

Schema = dict[str, Any]

_UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_INT64 = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
_EXAMPLE_ID = "0190c5a2-7b3e-7c41-9d2e-5f6a7b8c9d0e"
_EXAMPLE_EVENT = {
    "id": _EXAMPLE_ID,
    "session_id": "0190c5a2-7b3d-7000-8000-000000000001",
    "server": "github",
    "direction": "c2s",
    "ts_ns": 1763780000000000000,
    "kind": "request",
    "method": "tools/call",
    "rpc_id": "1",
    "size": 80,
    "payload": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues"}}',
    "payload_encoding": "utf8",
    "truncated": False,
    "link_id": None,
    "latency_us": None,
    "host": "laptop",
    "km_version": "0.1.0",
    "tool": "search_issues",
    "status": None,
    "tokens": 12,
    "risk": 5,
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: Schema, description: str, example: object = None) -> Schema:
    media: Schema = {"schema": schema}
    if example is not None:
        media["examples"] = {"example": {"value": example}}
    return {"description": description, "content": {"application/json": media}}


def _error(description: str, headers: Schema | None = None) -> Schema:
    response = _json(_ref("Error"), description, {"error": description})
    if headers:
        response["headers"] = headers
    return response


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_AUTH_ERRORS = {
    "401": _error("Missing or unknown API key."),
    "403": _error("Revoked API key."),
    "429": _error(
        "Rate limit of this key reached, or too many bad keys from this address.", _RETRY_AFTER
    ),
    "503": _error("The event store is unavailable: retry with backoff.", _RETRY_AFTER),
}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "Page size.")
_CURSOR = _query("cursor", {"type": "string"}, "`next_cursor` of the previous page, unchanged.")
_Q = _query(
    "q",
    {"type": "string", "maxLength": 4096},
    "A filter in km's filter language (docs/filters.md), e.g. "
    '`tool:git_* -status:ok latency>500ms "denied"`; with the other parameters, both must hold. '
    "For sessions: those with at least one event it selects. A bad filter is a 400 naming the "
    "column.",
)
_SINCE = _query("since_ns", _INT64, "Only from this time on (Unix ns, inclusive).")
_UNTIL = _query("until_ns", _INT64, "Only before this time (Unix ns, exclusive).")


def _event_properties() -> Schema:
    text = {"type": "string", "maxLength": MAX_NAME}
    return {
        "id": {"type": "string", "pattern": _UUID_PATTERN, "description": "A UUID (uuid7)."},
        "session_id": {**text, "minLength": 1},
        "server": {**text, "minLength": 1},
        "direction": {"enum": list(DIRECTIONS)},
        "ts_ns": _INT64,
        "kind": {"enum": list(KINDS)},
        "method": _nullable({"type": "string", "maxLength": MAX_METHOD}),
        "rpc_id": _nullable(
            {
                "type": "string",
                "maxLength": MAX_METHOD,
                "description": "JSON text of the JSON-RPC id.",
            }
        ),
        "size": {**_INT64, "description": "Length of the whole frame in bytes."},
        "payload": {
            "type": "string",
            "description": "The frame's bytes: UTF-8 text, or base64. JSON payloads may read "
            "back re-serialized (equal as JSON, not byte for byte).",
        },
        "payload_encoding": {"enum": list(ENCODINGS)},
        "truncated": _nullable({"type": "boolean"}),
        "link_id": _nullable({"type": "string", "maxLength": MAX_METHOD}),
        "latency_us": _nullable(_INT64),
        "host": _nullable(text),
        "km_version": _nullable(text),
        **openapi_insight.event_properties(),
    }


def _schemas() -> Schema:
    props = _event_properties()
    stored = {**props, "truncated": {"type": "boolean"}}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "IngestEvent": {
            "type": "object",
            "required": list(REQUIRED_FIELDS),
            "properties": props,
            "description": "Unknown fields are ignored.",
        },
        "IngestRequest": {
            "type": "object",
            "required": ["events"],
            "properties": {
                "events": {
                    "type": "array",
                    "items": {"description": "An IngestEvent; others are rejected one by one."},
                    "description": f"At most {DEFAULT_MAX_BATCH_EVENTS} by default.",
                }
            },
        },
        "Rejection": {
            "type": "object",
            "required": ["id", "index", "reason"],
            "properties": {
                "id": _nullable({"type": "string"}),
                "index": {"type": "integer", "minimum": 0, "description": "Position in the batch."},
                "reason": {"type": "string"},
            },
        },
        "IngestResponse": {
            "type": "object",
            "required": ["accepted", "duplicates", "rejected"],
            "properties": {
                "accepted": {"type": "array", "items": {"type": "string"}},
                "duplicates": {"type": "array", "items": {"type": "string"}},
                "rejected": {"type": "array", "items": _ref("Rejection")},
            },
        },
        "Event": {
            "type": "object",
            "required": list(stored),
            "properties": stored,
        },
        "EventsPage": {
            "type": "object",
            "required": ["events", "next_cursor"],
            "properties": {
                "events": {"type": "array", "items": _ref("Event")},
                "next_cursor": _nullable({"type": "string"}),
            },
        },
        "Session": {
            "type": "object",
            "required": [
                "session_id",
                "server",
                "host",
                "first_ts_ns",
                "last_ts_ns",
                "events",
                "errors",
            ],
            "properties": {
                "session_id": {"type": "string"},
                "server": {"type": "string"},
                "host": _nullable({"type": "string"}),
                "first_ts_ns": _INT64,
                "last_ts_ns": _INT64,
                "events": {"type": "integer", "minimum": 1},
                "errors": {"type": "integer", "minimum": 0},
            },
        },
        "SessionsPage": {
            "type": "object",
            "required": ["sessions", "next_cursor"],
            "properties": {
                "sessions": {"type": "array", "items": _ref("Session")},
                "next_cursor": _nullable({"type": "string"}),
            },
        },
        "HourStat": {
            "type": "object",
            "required": [
                "server",
                "method",
                "hour",
                "count",
                "errors",
                "latency_p50_us",
                "latency_p95_us",
                "bytes",
                *openapi_insight.stat_properties(),
            ],
            "properties": {
                "server": {"type": "string"},
                "method": _nullable({"type": "string"}),
                "hour": {
                    "type": "string",
                    "format": "date-time",
                    "description": "Hour start, UTC.",
                },
                "count": {"type": "integer", "minimum": 1},
                "errors": {"type": "integer", "minimum": 0},
                "latency_p50_us": _nullable({"type": "integer", "minimum": 0}),
                "latency_p95_us": _nullable({"type": "integer", "minimum": 0}),
                "bytes": {"type": "integer", "minimum": 0},
                **openapi_insight.stat_properties(),
            },
        },
        "Stats": {
            "type": "object",
            "required": ["stats", "model"],
            "properties": {
                "stats": {"type": "array", "items": _ref("HourStat")},
                "model": {"type": "string", "description": "Whose prices `cost_usd` uses."},
            },
        },
        "Status": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"enum": ["ok", "ready"]}},
        },
        **openapi_insight.schemas(),
    }


def _paths() -> Schema:
    public: list[Schema] = []
    return {
        "/api/v1/events": {
            "post": {
                "operationId": "ingestEvents",
                "summary": "Ingest a batch of events (idempotent on id, per account).",
                "parameters": [
                    {
                        "name": "Content-Encoding",
                        "in": "header",
                        "required": False,
                        "schema": {"enum": ["gzip", "identity"]},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref("IngestRequest"),
                            "examples": {"batch": {"value": {"events": [_EXAMPLE_EVENT]}}},
                        }
                    },
                    "description": f"At most {DEFAULT_MAX_BATCH_BYTES} bytes after "
                    "decompression by default.",
                },
                "responses": {
                    "200": _json(
                        _ref("IngestResponse"),
                        "The batch was read: each event is accepted, a duplicate, or rejected.",
                        {
                            "accepted": [_EXAMPLE_ID],
                            "duplicates": [],
                            "rejected": [{"id": None, "index": 1, "reason": "id: required"}],
                        },
                    ),
                    "400": _error("The body is not JSON or has no events array."),
                    "408": _error("The body did not arrive in time."),
                    "413": _error("The batch is too big (bytes or events): split it."),
                    "415": _error("Unsupported Content-Encoding."),
                    **_AUTH_ERRORS,
                },
            },
            "get": {
                "operationId": "listEvents",
                "summary": "Events of the caller's account, oldest first.",
                "parameters": [
                    _query("session", {"type": "string"}, "Only this session_id."),
                    _query("server", {"type": "string"}, "Only this server."),
                    _query("method", {"type": "string"}, "Only this JSON-RPC method."),
                    _query("direction", {"enum": list(DIRECTIONS)}, "Only this direction."),
                    _query("tool", {"type": "string"}, "Only events acting on this tool."),
                    _Q,
                    _SINCE,
                    _UNTIL,
                    _LIMIT,
                    _CURSOR,
                ],
                "responses": {
                    "200": _json(
                        _ref("EventsPage"),
                        "One page.",
                        {"events": [_EXAMPLE_EVENT], "next_cursor": None},
                    ),
                    "400": _error("A bad query parameter or cursor."),
                    **_AUTH_ERRORS,
                },
            },
        },
        "/api/v1/sessions": {
            "get": {
                "operationId": "listSessions",
                "summary": "Sessions of the caller's account, newest first (by first event).",
                "parameters": [_LIMIT, _CURSOR, _Q],
                "responses": {
                    "200": _json(_ref("SessionsPage"), "One page."),
                    "400": _error("A bad query parameter or cursor."),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/stats": {
            "get": {
                "operationId": "getStats",
                "summary": "Hourly counts, errors, tool errors, tokens, bytes and latency "
                "percentiles per server, method and tool, for the hours overlapping "
                "[since_ns, until_ns).",
                "parameters": [
                    _SINCE,
                    _UNTIL,
                    _query(
                        "model",
                        {"type": "string"},
                        f"Price tokens as this model's (default {DEFAULT_MODEL}).",
                    ),
                ],
                "responses": {
                    "200": _json(_ref("Stats"), "Hourly rollups, by hour, server, method, tool."),
                    "400": _error("A bad query parameter."),
                    **_AUTH_ERRORS,
                },
            }
        },
        **openapi_insight.paths(
            _json, _error, _query, _AUTH_ERRORS, [_SINCE, _UNTIL, _LIMIT, _CURSOR]
        ),
        **_admin_paths(),
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "The process answers.",
                "security": public,
                "responses": {"200": _json(_ref("Status"), "Alive.", {"status": "ok"})},
            }
        },
        "/ready": {
            "get": {
                "operationId": "ready",
                "summary": "The event store answers.",
                "security": public,
                "responses": {
                    "200": _json(_ref("Status"), "Ready.", {"status": "ready"}),
                    "503": _error("The event store is unavailable."),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "security": public,
                "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")},
            }
        },
    }


_AUDIT_EXAMPLE = {
    "id": 7,
    "ts_ns": 1763780040000000000,
    "action": "auth.refused",
    "actor": "203.0.113.9",
    "target": "km_live_Ab3d",
    "detail": {"reason": "revoked"},
    "count": 12,
    "until_ns": 1763780100000000000,
}


def _admin_schemas() -> Schema:
    return {
        "AuditEntry": {
            "type": "object",
            "required": list(_AUDIT_EXAMPLE),
            "properties": {
                "id": {"type": "integer"},
                "ts_ns": {**_INT64, "description": "When; for a roll-up, its window's start."},
                "action": {"enum": list(ACTIONS)},
                "actor": {
                    "type": "string",
                    "description": "`operator` (km serve on the server machine) or the client "
                    "address of a refused sign-in.",
                },
                "target": _nullable(
                    {"type": "string", "description": "Account name or key prefix."}
                ),
                "detail": {"type": "object"},
                "count": {"type": "integer", "minimum": 1},
                "until_ns": _nullable({**_INT64, "description": "A roll-up's window end."}),
            },
        },
        "AuditPage": {
            "type": "object",
            "required": ["entries", "next_cursor"],
            "properties": {
                "entries": {"type": "array", "items": _ref("AuditEntry")},
                "next_cursor": _nullable({"type": "string"}),
            },
        },
        "Retention": {
            "type": "object",
            "required": ["days", "min_days", "max_days"],
            "properties": {
                "days": {"type": "integer", "minimum": MIN_DAYS, "maximum": MAX_DAYS},
                "min_days": {"type": "integer"},
                "max_days": {"type": "integer"},
            },
        },
    }


def _admin_paths() -> Schema:
    return {
        "/api/v1/audit": {
            "get": {
                "operationId": "listAudit",
                "summary": "The caller's account's audit log, newest first: keys created and "
                "revoked, retention changed, refused sign-ins (one row per minute, counted).",
                "parameters": [_LIMIT, _CURSOR],
                "responses": {
                    "200": _json(
                        _ref("AuditPage"),
                        "One page.",
                        {"entries": [_AUDIT_EXAMPLE], "next_cursor": None},
                    ),
                    "400": _error("A bad query parameter or cursor."),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/retention": {
            "get": {
                "operationId": "getRetention",
                "summary": "How many days the caller's account keeps its events (set by the "
                "operator: `km serve retention set`).",
                "responses": {
                    "200": _json(
                        _ref("Retention"),
                        "The account's retention.",
                        {"days": 30, "min_days": MIN_DAYS, "max_days": MAX_DAYS},
                    ),
                    **_AUTH_ERRORS,
                },
            }
        },
    }


def document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kilometers API",
            "version": __version__,
            "description": "Where the km uplink delivers captured MCP traffic (docs/api.md). "
            "JSON answers carry `X-Content-Type-Options: nosniff` and `Cache-Control: no-store`.",
        },
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key, km_live_...",
                }
            },
            "schemas": {**_schemas(), **_admin_schemas()},
        },
    }
