"""Query-string parsing for the read side (sans-IO): each bad value is a `BadRequest` naming
the parameter and what it accepts."""

from __future__ import annotations

import time
from collections.abc import Mapping

import orjson

from km.insight.cost import DEFAULT_MODEL, Price, PriceError, price_of
from km.insight.filter import Filter, FilterError, parse
from km.insight.findings import FINDING_KINDS, SEVERITIES
from km.server.errors import BadRequest
from km.server.stores.base import EventFilter
from km.server.stores.insight import FindingFilter
from km.server.validate import DIRECTIONS, MAX_INT64, MAX_NAME, MAX_TOOL


def int_param(query: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name}: expected an integer, got {text[:40]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name}: must be between {low} and {high}, got {value}")
    return value


def limit_param(query: Mapping[str, str], default: int, maximum: int) -> int:
    value = int_param(query, "limit", 1, maximum)
    return default if value is None else value


def cursor_param(query: Mapping[str, str]) -> str | None:
    return query.get("cursor") or None


def text_param(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if not value:
        return None
    if "\x00" in value:
        raise BadRequest(f"{name}: contains a NUL character")
    if not is_storable_text(value):
        raise BadRequest(f"{name}: must be UTF-8 text")
    return value


def is_storable_text(value: str) -> bool:
    """Text both stores can compare: no NUL (PostgreSQL text cannot hold it) and no lone
    surrogate (what undecodable bytes become; it has no UTF-8 encoding)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def filter_param(query: Mapping[str, str], now_ns: int | None = None) -> Filter | None:
    """`q=`: the filter language (docs/filters.md); a bad one is a 400 naming the column."""
    text = query.get("q")
    if not text or not text.strip():
        return None
    try:
        return parse(text, now_ns=time.time_ns() if now_ns is None else now_ns)
    except FilterError as exc:
        raise BadRequest(f"q: {exc}") from None


def event_filter(query: Mapping[str, str]) -> EventFilter:
    direction = text_param(query, "direction")
    if direction is not None and direction not in DIRECTIONS:
        raise BadRequest(f"direction: expected one of {', '.join(DIRECTIONS)}")
    since_ns, until_ns = time_range(query)
    return EventFilter(
        session_id=text_param(query, "session"),
        server=text_param(query, "server"),
        method=text_param(query, "method"),
        direction=direction,
        since_ns=since_ns,
        until_ns=until_ns,
        tool=text_param(query, "tool"),
        query=filter_param(query),
    )


def time_range(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    since_ns = int_param(query, "since_ns", 0, MAX_INT64)
    until_ns = int_param(query, "until_ns", 0, MAX_INT64)
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise BadRequest("until_ns: must not be before since_ns")
    return since_ns, until_ns


def finding_filter(query: Mapping[str, str]) -> FindingFilter:
    """`severity` (that severity or worse), `kind`, `server`, `session`, `tool`, time range."""
    severity = text_param(query, "severity")
    if severity is not None and severity not in SEVERITIES:
        raise BadRequest(f"severity: expected one of {', '.join(SEVERITIES)}")
    kind = text_param(query, "kind")
    if kind is not None and kind not in FINDING_KINDS:
        raise BadRequest(f"kind: expected one of {', '.join(FINDING_KINDS)}")
    since_ns, until_ns = time_range(query)
    return FindingFilter(
        min_severity=severity,
        kind=kind,
        server=text_param(query, "server"),
        session_id=text_param(query, "session"),
        tool=text_param(query, "tool"),
        since_ns=since_ns,
        until_ns=until_ns,
    )


def approval(body: bytes) -> tuple[str, str | None]:
    """The (server, tool or None) of a `POST /api/v1/tools/approve` body."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadRequest('expected a JSON object {"server": "...", "tool": "..."}')
    server, tool = doc.get("server"), doc.get("tool")
    if not isinstance(server, str) or not server or "\x00" in server or len(server) > MAX_NAME:
        raise BadRequest(f"server: expected a non-empty string of at most {MAX_NAME} characters")
    if tool is not None and (
        not isinstance(tool, str) or not tool or "\x00" in tool or len(tool) > MAX_TOOL
    ):
        raise BadRequest(f"tool: expected a non-empty string of at most {MAX_TOOL} characters")
    return server, tool


def model_param(query: Mapping[str, str]) -> tuple[str, Price]:
    """`model` (km.insight.cost's default when absent) and its price, for `cost_usd`."""
    model = text_param(query, "model") or DEFAULT_MODEL
    if len(model) > MAX_NAME:
        raise BadRequest(f"model: longer than {MAX_NAME} characters")
    try:
        return model, price_of(model)
    except PriceError as exc:
        raise BadRequest(f"model: {exc}") from None
