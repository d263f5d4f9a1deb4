"""The PostgreSQL store when the server ends its connections (what `pg_ctl stop -m fast` or
`pg_terminate_backend` do): whenever the next query comes relative to the termination, it either
succeeds on a fresh connection or raises `StoreUnavailable` (503, retry), never a raw asyncpg
error (which the API answered with 500 and a traceback: `InternalClientError: cannot switch to
state 11; another operation (2) is in progress` when the query raced the server's FATAL)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest

from km.server.errors import StoreUnavailable
from km.server.stores.postgres import PostgresStore
from tests.server.conftest import PG_URL

T = TypeVar("T")
RETRYABLE = (StoreUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError,
             asyncpg.InternalClientError, OSError)  # fmt: skip
ATTEMPTS = 120
STEP_S = 0.0001  # the query comes 0, 0.1, 0.2, ... ms after the termination


@pytest.mark.asyncio
async def test_terminated_connections_are_unavailable_then_replaced(pg_schema: str) -> None:
    store = await PostgresStore.open(PG_URL, schema=pg_schema, min_size=1, max_size=1)
    admin = await asyncpg.connect(PG_URL, timeout=5)
    outcomes: Counter[str] = Counter()
    try:
        await store.migrate()
        for attempt in range(ATTEMPTS):
            # Only this store's own backend: other tests share the server.
            pid: int = await retried(lambda: store._pool.fetchval("SELECT pg_backend_pid()"))
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            await asyncio.sleep(attempt % 40 * STEP_S)
            try:
                await store.find_key("no-such-hash")
            except StoreUnavailable:
                outcomes["unavailable"] += 1
            else:
                outcomes["ok"] += 1
        assert await retried(lambda: store.find_key("no-such-hash")) is None
    finally:
        await admin.close()
        await store.close()
    assert outcomes["unavailable"] >= 1, outcomes  # the termination was seen at all


async def retried(call: Callable[[], Awaitable[T]], attempts: int = 20) -> T:
    """`call()` once the pool has a working connection again (a few tries)."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except RETRYABLE:
            await asyncio.sleep(0.05)
    return await call()
