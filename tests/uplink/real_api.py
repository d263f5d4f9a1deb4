"""The real `km serve` application (km/server/app.py) over an SQLite or a PostgreSQL event store
(a fresh schema per test, dropped afterwards), served from a thread for uplink tests, with a
tally of what its ingest answers said and a way to hold answers (to kill an uplink after the
server stored its batch but before it heard back). The `backend` fixture runs a test over both."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.uplink.fake_api import SERVE_TIMEOUT_S, ServerThread

BACKENDS = ("sqlite", "postgres")
HAVE_SERVER = os.path.exists(os.path.join(os.path.dirname(__file__), "../../km/server/app.py"))
needs_server = pytest.mark.skipif(not HAVE_SERVER, reason="km/server/app.py has not landed yet")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@dataclass
class RealApi:
    server: ServerThread
    store: Any  # km.server.stores.base.EventStore
    key: str
    key_id: int
    backend: str
    accepted: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    hold: threading.Event | None = None
    log: list[tuple[float, float, int]] = field(default_factory=list)  # arrived, answered, status
    stored_batch: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def json_equal(self) -> bool:
        """The store re-serializes JSON payloads (PostgreSQL JSONB): compare them as JSON."""
        return self.backend == "postgres"

    def new_key(self, account: str = "test") -> str:
        from km.server import keys as keygen

        async def create() -> str:
            acct = await self.store.create_account(account)
            key = keygen.generate_key()
            await self.store.create_key(
                acct.id, keygen.hash_key(key), keygen.display_prefix(key), "test"
            )
            return key

        return self.server.call(create)

    def revoke(self, key_id: int) -> None:
        async def revoke() -> None:
            await self.store.revoke_key(key_id)

        self.server.call(revoke)

    def stored(self) -> tuple[dict[str, int], dict[str, bytes]]:
        """Every event the account holds, read back through the store: (id -> copies,
        id -> payload bytes)."""
        from km.server.stores.base import EventFilter

        async def read() -> list[Any]:
            (acct,) = [a for a in await self.store.list_accounts() if a.name == "test"]
            items: list[Any] = []
            cursor = None
            while True:
                page = await self.store.list_events(acct.id, EventFilter(), cursor, 1000)
                items += page.items
                cursor = page.next_cursor
                if cursor is None:
                    return items

        events = self.server.call(read, 120.0)
        counts: Counter[str] = Counter(e.id for e in events)
        return dict(counts), {e.id: e.payload for e in events}


@contextmanager
def real_api(
    tmp_path: Path, backend: str = "sqlite", rate: float = 1e9, burst: float = 1e9
) -> Iterator[RealApi]:
    if backend == "postgres":
        from tests.server.conftest import create_pg_schema, drop_pg_schema

        schema = asyncio.run(create_pg_schema())  # skips the test when PostgreSQL is down
        try:
            with _real_api(tmp_path, backend, rate, burst, schema) as api:
                yield api
        finally:
            asyncio.run(drop_pg_schema(schema))
        return
    with _real_api(tmp_path, backend, rate, burst, None) as api:
        yield api


@contextmanager
def _real_api(
    tmp_path: Path, backend: str, rate: float, burst: float, schema: str | None
) -> Iterator[RealApi]:
    from km.server import keys as keygen
    from km.server.app import RUNNER_OPTIONS, make_app
    from km.server.config import ServerConfig
    from km.server.ratelimit import RateLimit
    from km.server.stores.base import EventStore
    from km.server.stores.postgres import PostgresStore
    from km.server.stores.sqlite import SqliteStore
    from tests.server.conftest import PG_URL

    server = ServerThread()
    holder: dict[str, RealApi] = {}

    async def open_store() -> tuple[Any, str, int]:
        store: EventStore
        if schema is None:
            store = await SqliteStore.open(str(tmp_path / "server.db"))
        else:
            store = await PostgresStore.open(PG_URL, schema=schema)
        await store.migrate()
        acct = await store.create_account("test")
        key = keygen.generate_key()
        record = await store.create_key(
            acct.id, keygen.hash_key(key), keygen.display_prefix(key), "test"
        )
        return store, key, record.id

    store, key, key_id = server.call(open_store, SERVE_TIMEOUT_S)
    api = RealApi(server, store, key, key_id, backend)
    holder["api"] = api

    @web.middleware
    async def tally(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.method == "POST" and isinstance(response, web.Response):
            api.statuses[response.status] += 1
            if response.status == 200 and isinstance(response.body, bytes):
                doc = orjson.loads(response.body)
                api.accepted.update(doc["accepted"])
                api.duplicates.update(doc["duplicates"])
                api.stored_batch.set()
                if api.hold is not None:
                    await asyncio.to_thread(api.hold.wait, SERVE_TIMEOUT_S * 3)
        return response

    @web.middleware
    async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived = time.monotonic()
        response = await handler(request)
        if request.method == "POST":
            api.log.append((arrived, time.monotonic(), response.status))
        return response

    config = ServerConfig(port=0, rate_limit=RateLimit(rate, burst))
    app = make_app(store, config)
    app.middlewares.append(tally)  # innermost: runs after auth, around the handler
    app.middlewares.insert(0, timing)  # outermost: sees every answer, 429s included
    try:
        server.start(app, 0, **RUNNER_OPTIONS)
        yield api
    finally:
        server.close(store.close)
