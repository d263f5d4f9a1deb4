"""Fixtures for the server: a store of each backend (SQLite in tmp_path, PostgreSQL in a fresh
schema per test, dropped at teardown), and the API served over loopback with a client.

PostgreSQL is the one at KM_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test);
tests that need it are skipped, saying so, when it cannot be reached.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from km.server import keys as keygen
from km.server.app import RUNNER_OPTIONS, make_app
from km.server.config import ServerConfig
from km.server.ratelimit import RateLimit
from km.server.stores.base import EventStore, IngestEvent
from km.server.stores.postgres import PostgresStore
from km.server.stores.sqlite import SqliteStore

PG_URL = os.environ.get("KM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgres")
BASE_TS = 1_763_780_000_000_000_000  # 2025-11-22T02:53:20Z
HOUR_NS = 3600 * 10**9
# A limit no functional test reaches: rate limiting has its own tests.
UNLIMITED = ServerConfig(port=0, rate_limit=RateLimit(1e9, 1e9))


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({exc}); set KM_TEST_DATABASE_URL")


async def create_pg_schema() -> str:
    name = f"test_{secrets.token_hex(6)}"
    conn = await _admin()
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
    finally:
        await conn.close()
    return name


async def drop_pg_schema(name: str) -> None:
    conn = await _admin()
    try:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
    finally:
        await conn.close()


@asynccontextmanager
async def pg_schema_cm() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema, dropped (with everything in it) on exit."""
    name = await create_pg_schema()
    try:
        yield name
    finally:
        await drop_pg_schema(name)


@pytest_asyncio.fixture
async def pg_schema() -> AsyncIterator[str]:
    async with pg_schema_cm() as name:
        yield name


def pg_url_in(schema: str) -> str:
    """PG_URL with every connection's search_path set to `schema` (asyncpg passes unknown
    query parameters on as server settings)."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}search_path={schema}"


@asynccontextmanager
async def open_backend(backend: str, tmp_path: Path) -> AsyncIterator[EventStore]:
    """A migrated store of `backend`, closed (and for PostgreSQL, its schema dropped) on exit."""
    if backend == "sqlite":
        store: EventStore = await SqliteStore.open(str(tmp_path / "server.db"))
        try:
            await store.migrate()
            yield store
        finally:
            await store.close()
        return
    async with pg_schema_cm() as schema:
        store = await PostgresStore.open(PG_URL, schema=schema)
        try:
            await store.migrate()
            yield store
        finally:
            await store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest_asyncio.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[EventStore]:
    async with open_backend(backend, tmp_path) as s:
        yield s


# -- events


def event_json(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid event as the uplink sends it; `n` spaces timestamps 1 ms apart."""
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "session_id": "session-1",
        "server": "github",
        "direction": "c2s",
        "ts_ns": BASE_TS + n * 1_000_000,
        "kind": "request",
        "method": "tools/call",
        "rpc_id": str(n),
        "size": 0,
        "payload": orjson.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/call"}).decode(),
        "payload_encoding": "utf8",
        "truncated": False,
        "link_id": None,
        "latency_us": None,
        "host": "laptop",
        "km_version": "0.1.0",
        # What a km with the insight core sends (tests/server/test_insight_ingest.py covers an
        # older km that omits them).
        "tool": None,
        "status": None,
        "tokens": None,
        "risk": None,
    }
    event.update(overrides)
    if "size" not in overrides:
        event["size"] = len(str(event["payload"]).encode())
    return event


def ingest_event(n: int = 0, **overrides: Any) -> IngestEvent:
    from km.server.validate import validate_event

    result = validate_event(event_json(n, **overrides))
    assert isinstance(result, IngestEvent), result
    return result


# -- the API over loopback


@dataclass
class Api:
    """A running server and a client session for it."""

    url: str
    store: EventStore
    http: aiohttp.ClientSession
    app: web.Application | None = None

    async def new_key(self, account: str, label: str | None = None) -> str:
        acct = await self.store.create_account(account)
        key = keygen.generate_key()
        await self.store.create_key(
            acct.id, keygen.hash_key(key), keygen.display_prefix(key), label
        )
        return key

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def post_events(
        self, key: str, events: list[Any], **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.http.post(
            f"{self.url}/api/v1/events", json={"events": events}, headers=self.auth(key), **kwargs
        ) as resp:
            return resp.status, await resp.json(), resp

    async def post_raw(
        self, key: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.http.post(
            f"{self.url}/api/v1/events",
            data=body,
            headers={**self.auth(key), "Content-Type": "application/json", **(headers or {})},
        ) as resp:
            return resp.status, await resp.json(), resp

    async def get(
        self, path: str, key: str | None = None, **params: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        query = {k: str(v) for k, v in params.items() if v is not None}
        headers = self.auth(key) if key else {}
        async with self.http.get(f"{self.url}{path}", params=query, headers=headers) as resp:
            return resp.status, await resp.json(), resp


@asynccontextmanager
async def serve_api(store: EventStore, config: ServerConfig = UNLIMITED) -> AsyncIterator[Api]:
    """`make_app` served on 127.0.0.1 (a free port) exactly as `km serve` serves it."""
    app = make_app(store, config)
    runner = web.AppRunner(app, **RUNNER_OPTIONS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            yield Api(f"http://127.0.0.1:{port}", store, http, app)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def api(store: EventStore) -> AsyncIterator[Api]:
    async with serve_api(store) as a:
        yield a
