"""/health answers while the process runs; /ready only while the store answers: 503 when it
is closed, or when PostgreSQL cannot be reached (through a TCP proxy the test cuts)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from km.server.stores.postgres import PostgresStore
from tests.server.conftest import PG_URL, Api, event_json, serve_api
from tests.server.schema_check import check_response
from tests.server.tcp_proxy import TcpProxy


@pytest.mark.asyncio
async def test_health_and_ready(api: Api) -> None:
    for path, expected in (("/health", "ok"), ("/ready", "ready")):
        status, body, _ = await api.get(path)
        assert (status, body) == (200, {"status": expected})
        check_response("GET", path, 200, body)


@pytest.mark.asyncio
async def test_a_closed_store_makes_ready_503_and_ingest_503(api: Api) -> None:
    key = await api.new_key("acme")
    await api.store.close()
    status, body, _ = await api.get("/ready")
    assert status == 503
    check_response("GET", "/ready", 503, body)
    assert "closed" in body["error"]
    status, body, _ = await api.get("/health")
    assert status == 200  # the process still runs
    # Authentication itself needs the store: 503 with Retry-After, never a 401.
    status, body, resp = await api.post_events(key, [event_json()])
    assert status == 503
    assert resp.headers["Retry-After"] == "1"
    check_response("POST", "/api/v1/events", 503, body)


@pytest.mark.asyncio
async def test_ready_follows_postgres_going_away_and_coming_back(pg_schema: str) -> None:
    parts = urlsplit(PG_URL)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    try:
        netloc = (
            f"{parts.username}@127.0.0.1:{proxy.port}"
            if parts.username
            else f"127.0.0.1:{proxy.port}"
        )
        dsn = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        store = await PostgresStore.open(dsn, schema=pg_schema)
        try:
            await store.migrate()
            async with serve_api(store) as api:
                key = await api.new_key("acme")
                assert (await api.get("/ready"))[0] == 200
                await proxy.cut()
                status, body, _ = await api.get("/ready")
                assert status == 503, body
                check_response("GET", "/ready", 503, body)
                status, _, resp = await api.post_events(key, [event_json()])
                assert status == 503 and resp.headers["Retry-After"] == "1"
                await proxy.start()  # the same port again
                assert (await api.get("/ready"))[0] == 200
                status, body, _ = await api.post_events(key, [event_json()])
                assert status == 200 and len(body["accepted"]) == 1
        finally:
            await store.close()
    finally:
        await proxy.cut()
