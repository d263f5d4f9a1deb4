"""Retention on both backends: each account keeps its own number of days of events, sessions,
rollups, findings and definition changes (and definitions seen within them), and no more; on
PostgreSQL whole daily partitions are made ahead and dropped, rows of a day with no partition
yet are moved into it, and the migration from an unpartitioned `events` keeps every row and
every column another step added."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from km.insight.findings import Finding
from km.server.retention import DAY_NS, cutoff_ns, partition_name
from km.server.stores.base import EventFilter, EventStore, IngestEvent
from km.server.stores.insight import (
    DefinitionChange,
    DefinitionSeen,
    FindingFilter,
    InsightWrites,
    StoredFinding,
)
from km.server.stores.postgres import PostgresStore
from km.server.stores.postgres_schema import MIGRATIONS
from tests.server.conftest import PG_URL, ingest_event
from tests.server.serve_process import KmServe
from tests.server.stores.test_stores import raw_fetch

NOW = time.time_ns()
AGES_DAYS = (40, 10, 3, 0)  # how old each account's events are
LOG_WAIT_S = 20.0  # bound on waiting for km serve's first retention run to be logged


async def event_ids(store: EventStore, account_id: int) -> set[str]:
    page = await store.list_events(account_id, EventFilter(), None, 1000)
    return {e.id for e in page.items}


async def _seed(store: EventStore, account_id: int, session: str) -> dict[int, list[str]]:
    by_age: dict[int, list[str]] = {}
    for age in AGES_DAYS:
        events = [
            ingest_event(i, session_id=f"{session}-{age}", ts_ns=NOW - age * DAY_NS + i)
            for i in range(7)
        ]
        await store.ingest(account_id, events)
        by_age[age] = [e.id for e in events]
    return by_age


@pytest.mark.asyncio
async def test_each_account_keeps_its_own_days(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("km.server.stores.sqlite.PURGE_BATCH", 3)  # several batches
    monkeypatch.setattr("km.server.stores.postgres_retention.PURGE_BATCH", 3)
    short = await store.create_account("short")
    default = await store.create_account("default")
    assert default.retention_days == 30
    await store.set_retention(short.id, 5)
    short_ids = await _seed(store, short.id, "s")
    default_ids = await _seed(store, default.id, "d")

    report = await store.enforce_retention(NOW)
    assert report.events_deleted == 7 * 3  # short: 40, 10; default: 40
    assert await event_ids(store, short.id) == {*short_ids[3], *short_ids[0]}
    assert await event_ids(store, default.id) == {*default_ids[10], *default_ids[3],
                                                  *default_ids[0]}  # fmt: skip
    sessions = {s.session_id for s in (await store.list_sessions(short.id, None, 100)).items}
    assert sessions == {"s-3", "s-0"}
    sessions = {s.session_id for s in (await store.list_sessions(default.id, None, 100)).items}
    assert sessions == {"d-10", "d-3", "d-0"}
    oldest_kept = cutoff_ns(NOW, 5) - 3600 * 10**9
    assert all(s.hour_ns > oldest_kept for s in await store.stats(short.id, None, None))
    assert sum(s.count for s in await store.stats(default.id, None, None)) == 21
    again = await store.enforce_retention(NOW)
    assert (again.events_deleted, again.sessions_deleted, again.rollups_deleted) == (0, 0, 0)
    # Re-sending what is kept is still a duplicate (ingest stays idempotent).
    resent = [ingest_event(i, session_id="s-0", ts_ns=NOW + i) for i in range(7)]
    resent = [
        e.__class__(**{**_fields(e), "id": i}) for e, i in zip(resent, short_ids[0], strict=True)
    ]
    result = await store.ingest(short.id, resent)
    assert result.accepted == () and len(result.duplicates) == 7


def _insight_rows(events: list[IngestEvent], age: int) -> InsightWrites:
    """A finding, a listing's definition and a change for the first event, `age` days old."""
    e, ts_ns = events[0], NOW - age * DAY_NS
    finding = Finding("P101", "high", "poisoning", f"hidden instruction ({age} days)", "t")
    definition = DefinitionSeen(
        e.id, e.session_id, e.server, "tools/list", "t", f"hash-{age}", None, None, "{}", 3, ts_ns
    )
    change = DefinitionChange(
        str(uuid.uuid4()), e.id, e.session_id, e.server, "tools/list", "t", "changed",
        "old", f"hash-{age}", ("description",), "-a\n+b", False, ts_ns,
    )  # fmt: skip
    return InsightWrites(
        (StoredFinding(str(uuid.uuid4()), e.session_id, e.server, e.id, ts_ns, finding),),
        (definition,),
        (change,),
    )


@pytest.mark.asyncio
async def test_insight_tables_keep_their_accounts_days(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Findings and definition changes go with their account's days, as its events do; a
    tool definition goes once it has not been seen for that long; pins stay."""
    monkeypatch.setattr("km.server.stores.sqlite.PURGE_BATCH", 1)  # several batches
    monkeypatch.setattr("km.server.stores.postgres_retention.PURGE_BATCH", 1)
    short = await store.create_account("short")
    default = await store.create_account("default")
    await store.set_retention(short.id, 5)
    for account in (short, default):
        for age in AGES_DAYS:
            events = [ingest_event(i, session_id=f"s-{age}", ts_ns=NOW - age * DAY_NS + i)
                      for i in range(2)]  # fmt: skip
            await store.ingest(account.id, events, _insight_rows(events, age))
        assert await store.approve(account.id, "github", "t")  # a pin: the operator's choice

    async def ages(account_id: int) -> tuple[list[int], ...]:
        found = (await store.list_findings(account_id, FindingFilter(), None, 100)).items
        inventory = await store.inventory(account_id, None)
        return (
            sorted(round((NOW - f.ts_ns) / DAY_NS) for f in found),
            sorted(round((NOW - c.ts_ns) / DAY_NS) for c in inventory.changes),
            sorted(round((NOW - d.last_seen_ns) / DAY_NS) for d in inventory.definitions),
            [len(inventory.pins)],
        )

    everything = ([0, 3, 10, 40], [0, 3, 10, 40], [0, 3, 10, 40], [1])
    assert await ages(short.id) == await ages(default.id) == everything
    report = await store.enforce_retention(NOW)
    assert (report.findings_deleted, report.changes_deleted, report.definitions_deleted) == (
        3, 3, 3  # short: 40 and 10 days old; default: 40
    )  # fmt: skip
    assert await ages(short.id) == ([0, 3], [0, 3], [0, 3], [1])
    assert await ages(default.id) == ([0, 3, 10], [0, 3, 10], [0, 3, 10], [1])
    again = await store.enforce_retention(NOW)
    assert (again.findings_deleted, again.changes_deleted, again.definitions_deleted) == (0, 0, 0)


def _fields(e: Any) -> dict[str, Any]:
    return {f: getattr(e, f) for f in e.__slots__}


async def _partitions(store: EventStore) -> dict[str, int]:
    rows = await raw_fetch(
        store,
        "SELECT c.relname, (SELECT count(*) FROM pg_class x WHERE x.oid = c.oid) "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass",
    )
    return {r[0]: r[1] for r in rows}


async def _rows_in(store: EventStore, table: str) -> int:
    return int((await raw_fetch(store, f"SELECT count(*) FROM {table}"))[0][0])


@pytest.mark.asyncio
async def test_postgres_days_are_partitions_made_ahead_and_dropped_whole(
    store: EventStore,
) -> None:
    if not isinstance(store, PostgresStore):
        pytest.skip("partitions are PostgreSQL's")
    today = NOW // DAY_NS
    names = await _partitions(store)
    assert {partition_name(d) for d in range(today - 1, today + 8)} <= set(names)
    assert "events_default" in names
    acme = await store.create_account("acme")
    await store.ingest(acme.id, [ingest_event(i, ts_ns=NOW + i) for i in range(5)])
    # An event three weeks ahead (a skewed clock) waits in the default partition...
    ahead = ingest_event(9, ts_ns=NOW + 21 * DAY_NS)
    await store.ingest(acme.id, [ahead])
    assert await _rows_in(store, "events_default") == 1
    # ...and three weeks later its day gets a partition and the row moves into it.
    later = await store.enforce_retention(NOW + 21 * DAY_NS)
    assert partition_name(today + 21) in later.partitions_created
    assert await _rows_in(store, "events_default") == 0
    assert await _rows_in(store, partition_name(today + 21)) == 1
    assert ahead.id in await event_ids(store, acme.id)
    # Past the longest retention (30 days), today's partition is dropped whole.
    much_later = await store.enforce_retention(NOW + 32 * DAY_NS)
    assert partition_name(today) in much_later.partitions_dropped
    assert much_later.events_deleted == 0  # nothing was deleted row by row
    assert partition_name(today) not in await _partitions(store)
    assert await event_ids(store, acme.id) == {ahead.id}


@pytest.mark.asyncio
async def test_postgres_migration_keeps_rows_and_added_columns(pg_schema: str) -> None:
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": pg_schema})
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_ns bigint)"
        )
        for statement in MIGRATIONS[0]:
            await conn.execute(statement)
        await conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
        # Another step added a column and a partial index before this one runs (the insight
        # step's own run after it: tests/server/stores/test_migration_order.py).
        await conn.execute("ALTER TABLE events ADD COLUMN note text")
        await conn.execute(
            "CREATE INDEX events_account_note_ts ON events (account_id, note, ts_ns, id) "
            "WHERE note IS NOT NULL"
        )
        await conn.execute("INSERT INTO accounts (name, created_ns) VALUES ('acme', 0)")
        await conn.execute(
            "INSERT INTO events SELECT 1, gen_random_uuid(), 's', 'srv', 'c2s', $1::bigint + g, "
            "'request', 'tools/call', NULL, 2, '{}'::jsonb, NULL, NULL, 'utf8', false, NULL, "
            "NULL, NULL, NULL, 0, 'search' FROM generate_series(0, 99) g",
            NOW - 400 * DAY_NS,
        )
        await conn.execute(
            "INSERT INTO events SELECT 1, gen_random_uuid(), 's', 'srv', 'c2s', $1::bigint + g, "
            "'request', 'tools/call', NULL, 2, '{}'::jsonb, NULL, NULL, 'utf8', false, NULL, "
            "NULL, NULL, NULL, 0, 'fetch' FROM generate_series(0, 99) g",
            NOW - 2 * DAY_NS,
        )
    finally:
        await conn.close()
    store = await PostgresStore.open(PG_URL, schema=pg_schema)
    try:
        assert await store.migrate() == 1
        rows = await raw_fetch(store, "SELECT note, count(*) FROM events GROUP BY 1 ORDER BY 1")
        assert rows == [("fetch", 100), ("search", 100)]
        indexes = await raw_fetch(
            store,
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexname = 'events_account_note_ts'",
        )
        assert len(indexes) == 1 and " ON ONLY " in indexes[0][0]  # on the partitioned table
        assert "WHERE (note IS NOT NULL)" in indexes[0][0]
        assert await _rows_in(store, partition_name((NOW - 2 * DAY_NS) // DAY_NS)) == 100
        assert await _rows_in(store, "events_default") == 100  # older than a year
        report = await store.enforce_retention(NOW)
        assert report.events_deleted == 100  # the year-old rows, in batches
        assert await _rows_in(store, "events") == 100
    finally:
        await store.close()


def test_km_serve_enforces_retention_from_start_up(tmp_path: Path) -> None:
    import asyncio

    from km.server.stores import open_store

    db = tmp_path / "server.db"

    async def seed() -> None:
        store = await open_store(str(db))
        try:
            await store.migrate()
            acme = await store.create_account("acme")
            await _seed(store, acme.id, "s")
        finally:
            await store.close()

    asyncio.run(seed())
    with KmServe(f"sqlite://{db}") as server:
        deadline = time.monotonic() + LOG_WAIT_S
        while "retention:" not in server.stderr_so_far() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "retention: 7 events, 1 sessions" in server.stderr_so_far()
