"""The merged schema steps on both backends: the retention/audit step (on PostgreSQL, the
rebuild of `events` into day partitions) and the insight step give the same schema whichever
runs first, and a database of the old main schema (step 1 only, with rows) migrated step by step
ends up with the same schema as a fresh one: the insight columns, their partial index, the
insight tables, the partitions, and its rows readable."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from km.server.stores import postgres_schema, sqlite_schema
from km.server.stores.base import EventFilter
from km.server.stores.insight import FindingFilter
from km.server.stores.postgres import PostgresStore
from km.server.stores.sqlite import SqliteStore
from km.server.stores.sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.server.conftest import PG_URL, ingest_event, pg_schema_cm

NOW = time.time_ns()
HOUR_NS = 3600 * 10**9
OLD_ROWS = 50

# Both steps, by name, so that a renumbering at a later merge does not change what is tested.
SQLITE_STEPS = (sqlite_schema._RETENTION_AND_AUDIT, sqlite_schema._INSIGHT)
PG_STEPS = (postgres_schema._RETENTION_AUDIT_PARTITIONS, postgres_schema._INSIGHT)
NEW_TABLES = {"findings", "tool_definitions", "definition_changes", "tool_pins", "audit_log"}
INSIGHT_COLUMNS = ["tool", "status", "tokens", "risk"]


def test_steps_are_in_the_merged_order() -> None:
    assert sqlite_schema.MIGRATIONS[1:] == SQLITE_STEPS
    assert postgres_schema.MIGRATIONS[1:] == PG_STEPS


# -- SQLite


def _sqlite_shape(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name <> 'schema_migrations' ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()
    return [(t, n, tbl, " ".join((sql or "").split())) for t, n, tbl, sql in rows]


def _sqlite_run(path: Path, steps: tuple[tuple[str, ...], ...]) -> None:
    conn = sqlite3.connect(path)
    try:
        for step in steps:
            for statement in step:
                conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def _sqlite_old_rows(path: Path) -> None:
    """What main's store wrote: an account, events of one session, its session and rollup."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO accounts (id, name, created_ns) VALUES (1, 'acme', 0)")
        for i in range(OLD_ROWS):
            conn.execute(
                "INSERT INTO events (account_id, id, session_id, server, direction, ts_ns, kind, "
                "method, size, payload_json, payload_encoding, truncated, received_ns) "
                "VALUES (1, ?, 'old', 'srv', 'c2s', ?, 'request', 'tools/call', 2, '{}', "
                "'utf8', 0, 0)",
                (f"00000000-0000-4000-8000-{i:012d}", NOW - HOUR_NS + i),
            )
        conn.execute(
            "INSERT INTO sessions VALUES (1, 'old', 'srv', NULL, ?, ?, ?, 0)",
            (NOW - HOUR_NS, NOW - HOUR_NS + OLD_ROWS - 1, OLD_ROWS),
        )
        conn.execute(
            "INSERT INTO rollups (account_id, hour_ns, server, method, count, errors, bytes, "
            "lat_count, lat_sum, lat_min, lat_max, lat_hist) "
            "VALUES (1, ?, 'srv', 'tools/call', ?, 0, ?, 0, 0, NULL, NULL, '[]')",
            ((NOW - HOUR_NS) // HOUR_NS * HOUR_NS, OLD_ROWS, 2 * OLD_ROWS),
        )
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ns "
                     "INTEGER NOT NULL)")  # fmt: skip
        conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
        conn.commit()
    finally:
        conn.close()


@pytest.mark.asyncio
async def test_sqlite_any_order_and_from_main_give_the_fresh_schema(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    store = await SqliteStore.open(str(fresh))
    try:
        assert await store.migrate() == 0
    finally:
        await store.close()
    want = _sqlite_shape(fresh)
    names = {name for kind, name, _, _ in want if kind == "table"}
    assert names >= NEW_TABLES
    assert ("index", "events_account_tool_ts", "events") in {w[:3] for w in want}

    reverse = tmp_path / "reverse.db"
    _sqlite_run(reverse, (SQLITE_MIGRATIONS[0], SQLITE_STEPS[1], SQLITE_STEPS[0]))
    assert _sqlite_shape(reverse) == want

    old = tmp_path / "old.db"
    _sqlite_run(old, (SQLITE_MIGRATIONS[0],))
    _sqlite_old_rows(old)
    store = await SqliteStore.open(str(old))
    try:
        assert await store.migrate() == 1
        assert _sqlite_shape(old) == want
        await _old_rows_are_read(store)
    finally:
        await store.close()


async def _old_rows_are_read(store: SqliteStore | PostgresStore) -> None:
    (acme,) = await store.list_accounts()
    assert acme.retention_days == 30
    page = await store.list_events(acme.id, EventFilter(), None, 1000)
    assert len(page.items) == OLD_ROWS
    assert {(e.tool, e.status, e.tokens, e.risk) for e in page.items} == {(None,) * 4}
    (stat,) = await store.stats(acme.id, None, None)
    assert (stat.method, stat.tool, stat.count, stat.tokens) == ("tools/call", None, OLD_ROWS, 0)
    # New events (with the insight fields) go in beside them; a retry is still a duplicate.
    new = [ingest_event(i, session_id="new", ts_ns=NOW + i, tool="t", status="ok", tokens=5)
           for i in range(3)]  # fmt: skip
    assert len((await store.ingest(acme.id, new)).accepted) == 3
    assert len((await store.ingest(acme.id, new)).duplicates) == 3
    page = await store.list_events(acme.id, EventFilter(session_id="new"), None, 10)
    assert {(e.tool, e.tokens) for e in page.items} == {("t", 5)}
    # The insight tables are there and empty.
    assert (await store.list_findings(acme.id, FindingFilter(), None, 10)).items == ()
    inventory = await store.inventory(acme.id, None)
    assert (inventory.definitions, inventory.changes, inventory.pins) == ((), (), ())
    # Retention reaches the old rows too.
    await store.enforce_retention(NOW + 32 * 86400 * 10**9)
    assert (await store.list_events(acme.id, EventFilter(), None, 10)).items == ()


# -- PostgreSQL


_PG_COLUMNS = """
    SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND c.relname <> 'schema_migrations' AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY 1, 2
"""
_PG_INDEXES = """
    SELECT i.tablename, i.indexname, replace(i.indexdef, current_schema() || '.', '')
    FROM pg_indexes i JOIN pg_class c ON c.relname = i.tablename
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname
    WHERE i.schemaname = current_schema() AND NOT c.relispartition
      AND i.tablename <> 'schema_migrations'
    ORDER BY 1, 2
"""
_PG_CONSTRAINTS = """
    SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND NOT c.relispartition
      AND c.relname <> 'schema_migrations'
    ORDER BY 1, 2
"""
# Each index of the partitioned `events` has one child per partition (none missing).
_PG_PARTITION_INDEXES = """
    SELECT p.relname,
           (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = p.oid),
           (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = 'events'::regclass)
    FROM pg_index x JOIN pg_class p ON p.oid = x.indexrelid
    WHERE x.indrelid = 'events'::regclass
"""


async def _pg_shape(conn: asyncpg.Connection) -> tuple[list[Any], ...]:
    partitioned = await conn.fetchval(
        "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'events'::regclass"
    )
    assert partitioned == 1
    for index, children, partitions in await conn.fetch(_PG_PARTITION_INDEXES):
        assert children == partitions > 0, index
    shape = []
    for sql in (_PG_COLUMNS, _PG_INDEXES, _PG_CONSTRAINTS):
        shape.append([tuple(r) for r in await conn.fetch(sql)])
    return tuple(shape)


async def _pg_connect(schema: str) -> asyncpg.Connection:
    return await asyncpg.connect(PG_URL, server_settings={"search_path": schema})


@pytest.mark.asyncio
async def test_postgres_any_order_and_from_main_give_the_fresh_schema() -> None:
    async with pg_schema_cm() as schema:
        store = await PostgresStore.open(PG_URL, schema=schema)
        try:
            assert await store.migrate() == 0
        finally:
            await store.close()
        conn = await _pg_connect(schema)
        try:
            want = await _pg_shape(conn)
        finally:
            await conn.close()
    columns, indexes, _ = want
    assert {r[0] for r in columns} >= NEW_TABLES
    assert [r[2] for r in columns if r[0] == "events"][-4:] == INSIGHT_COLUMNS
    tool_index = next(r[2] for r in indexes if r[1] == "events_account_tool_ts")
    assert " ON ONLY events " in tool_index and "WHERE (tool IS NOT NULL)" in tool_index

    async with pg_schema_cm() as schema:  # the insight step first, then the rebuild
        conn = await _pg_connect(schema)
        try:
            async with conn.transaction():
                for step in (postgres_schema.MIGRATIONS[0], PG_STEPS[1], PG_STEPS[0]):
                    for statement in step:
                        await conn.execute(statement)
            assert await _pg_shape(conn) == want
        finally:
            await conn.close()

    async with pg_schema_cm() as schema:  # main's schema with rows, migrated step by step
        conn = await _pg_connect(schema)
        try:
            await conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_ns bigint)"
            )
            for statement in postgres_schema.MIGRATIONS[0]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
            await conn.execute("INSERT INTO accounts (name, created_ns) VALUES ('acme', 0)")
            await conn.execute(
                "INSERT INTO events (account_id, id, session_id, server, direction, ts_ns, kind, "
                "method, size, payload_json, payload_encoding, truncated, received_ns) "
                "SELECT 1, gen_random_uuid(), 'old', 'srv', 'c2s', $1::bigint + g, 'request', "
                "'tools/call', 2, '{}'::jsonb, 'utf8', false, 0 FROM generate_series(0, $2 - 1) g",
                NOW - HOUR_NS,
                OLD_ROWS,
            )
            await conn.execute(
                "INSERT INTO sessions VALUES (1, 'old', 'srv', NULL, $1, $2, $3, 0)",
                NOW - HOUR_NS,
                NOW - HOUR_NS + OLD_ROWS - 1,
                OLD_ROWS,
            )
            await conn.execute(
                "INSERT INTO rollups VALUES (1, $1, 'srv', 'tools/call', $2, 0, $3, 0, 0, NULL, "
                "NULL, '{}')",
                (NOW - HOUR_NS) // HOUR_NS * HOUR_NS,
                OLD_ROWS,
                2 * OLD_ROWS,
            )
        finally:
            await conn.close()
        store = await PostgresStore.open(PG_URL, schema=schema)
        try:
            assert await store.migrate() == 1
            conn = await _pg_connect(schema)
            try:
                assert await _pg_shape(conn) == want
            finally:
                await conn.close()
            await _old_rows_are_read(store)
        finally:
            await store.close()
