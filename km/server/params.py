"""Query-string parsing for the read side (sans-IO): each bad value is a `BadRequest` naming
the parameter and what it accepts."""

from __future__ import annotations

from collections.abc import Mapping

from km.server.errors import BadRequest
from km.server.stores.base import EventFilter
from km.server.validate import DIRECTIONS, MAX_INT64


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
    if not is_storable_text(value):
        raise BadRequest(f"{name}: must be UTF-8 text without NUL characters")
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
    )


def time_range(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    since_ns = int_param(query, "since_ns", 0, MAX_INT64)
    until_ns = int_param(query, "until_ns", 0, MAX_INT64)
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise BadRequest("until_ns: must not be before since_ns")
    return since_ns, until_ns
