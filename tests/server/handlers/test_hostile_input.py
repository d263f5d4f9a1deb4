"""Hostile input on the read side answers 400 on both backends (never a 500), and no error a
client sees names the database: its host, port, database name or driver."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import orjson
import pytest

from km.server import cursor as cursors
from tests.server.conftest import PG_URL, Api, event_json
from tests.server.schema_check import check_response

RAW_TIMEOUT_S = 10.0


async def raw_get(api: Api, target: bytes, key: str) -> tuple[int, dict[str, object]]:
    """GET with a request target sent byte for byte (no client-side quoting)."""
    parts = urlsplit(api.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(
            b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\n\r\n"
        )
        async with asyncio.timeout(RAW_TIMEOUT_S):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body) if body.startswith(b"{") else {}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/events", {"cursor": cursors.encode("e", 5, "not-a-uuid")}),
        ("/api/v1/events", {"cursor": cursors.encode("e", 5, "' OR 1=1 --")}),
        ("/api/v1/events", {"cursor": cursors.encode("e", 5, "a\x00b")}),
        ("/api/v1/sessions", {"cursor": cursors.encode("s", 5, "a\x00b")}),
        ("/api/v1/events", {"server": "git\x00hub"}),
        ("/api/v1/events", {"session": "\x00"}),
        ("/api/v1/events", {"method": "tools/\x00call"}),
    ],
)
async def test_forged_cursors_and_nul_filters_are_400(
    api: Api, path: str, params: dict[str, str]
) -> None:
    key = await api.new_key("acme")
    await api.post_events(key, [event_json(i) for i in range(3)])
    status, body, _ = await api.get(path, key, **params)
    assert status == 400, body
    check_response("GET", path, 400, body)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "target",
    [
        b"/api/v1/events?server=%ff%fe",  # percent-encoded invalid UTF-8
        b"/api/v1/events?server=\xff\xfe",  # raw invalid UTF-8 in the request line
        b"/api/v1/events?session=%00",
        b"/api/v1/sessions?cursor=" + cursors.encode("s", 1, "x\x00").encode(),
    ],
)
async def test_raw_invalid_utf8_and_nul_never_500(api: Api, target: bytes) -> None:
    key = await api.new_key("acme")
    await api.post_events(key, [event_json()])
    status, body = await raw_get(api, target, key)
    assert status in (200, 400), (status, body)  # a replacement character matches nothing
    if status == 200:
        assert body.get("events") == []


def _database_words() -> list[str]:
    parts = urlsplit(PG_URL)
    words = ["asyncpg", "postgres", "sqlite", "server.db", str(parts.port or 5432)]
    words += [parts.hostname or "127.0.0.1", parts.path.strip("/")]
    return [w for w in words if w]


@pytest.mark.asyncio
async def test_store_errors_name_no_database_and_are_logged_once(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    key = await api.new_key("acme")
    await api.store.close()
    caplog.set_level(logging.WARNING, logger="km.server")
    bodies = []
    for _ in range(5):
        status, body, _ = await api.post_events(key, [event_json()])
        assert status == 503
        bodies.append(body)
        status, body, _ = await api.get("/api/v1/events", key)
        assert status == 503
        bodies.append(body)
        status, body, _ = await api.get("/ready")
        assert status == 503
        bodies.append(body)
    for body in bodies:
        text = body["error"].lower()
        assert "retry" in text or "unreachable" in text
        for word in _database_words():
            assert word.lower() not in text, (word, text)
    warnings = [r for r in caplog.records if r.name == "km.server"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one cause, one line
    assert "closed" in warnings[0].getMessage()
