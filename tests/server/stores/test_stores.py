"""One suite, both backends (`store` is parametrized over SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from typing import Any

import asyncpg
import orjson
import pytest

from km.server.errors import BadCursor, StoreError, StoreTooNew, StoreUnavailable
from km.server.stores.aggregate import HOUR_NS, hour_of
from km.server.stores.base import EventFilter, EventStore, IngestEvent
from km.server.stores.postgres import PostgresStore
from km.server.stores.postgres_schema import MIGRATIONS as PG_MIGRATIONS
from km.server.stores.sqlite import SqliteStore
from km.server.stores.sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.server.conftest import BASE_TS, PG_URL, ingest_event


async def raw_fetch(store: EventStore, sql: str) -> list[tuple[Any, ...]]:
    """Run SQL on the store's database through a connection of its own."""
    if isinstance(store, SqliteStore):
        conn = sqlite3.connect(store.path)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.commit()
            conn.close()
    assert isinstance(store, PostgresStore) and store.schema
    pg = await asyncpg.connect(PG_URL, server_settings={"search_path": store.schema})
    try:
        return [tuple(r) for r in await pg.fetch(sql)]
    finally:
        await pg.close()


async def all_events(store: EventStore, account_id: int, **filters: Any) -> list[IngestEvent]:
    page = await store.list_events(account_id, EventFilter(**filters), None, 1000)
    assert page.next_cursor is None
    return list(page.items)


# -- schema


def latest(store: EventStore) -> int:
    return len(SQLITE_MIGRATIONS if isinstance(store, SqliteStore) else PG_MIGRATIONS)


@pytest.mark.asyncio
async def test_migrate_is_idempotent_and_recorded(store: EventStore) -> None:
    n = latest(store)
    assert await store.migrate() == n
    versions = await raw_fetch(store, "SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [(v,) for v in range(1, n + 1)]


@pytest.mark.asyncio
async def test_a_newer_schema_is_refused(store: EventStore) -> None:
    await raw_fetch(store, "INSERT INTO schema_migrations VALUES (99, 0)")
    with pytest.raises(StoreTooNew) as info:
        await store.migrate()
    assert (info.value.version, info.value.known) == (99, latest(store))


# -- accounts and keys


@pytest.mark.asyncio
async def test_accounts_are_created_once(store: EventStore) -> None:
    a = await store.create_account("acme")
    assert await store.create_account("acme") == a
    b = await store.create_account("globex")
    assert a.id != b.id
    assert [x.name for x in await store.list_accounts()] == ["acme", "globex"]


@pytest.mark.asyncio
async def test_keys_create_find_list_revoke(store: EventStore) -> None:
    acct = await store.create_account("acme")
    key = await store.create_key(acct.id, "h1", "km_live_abcd", "laptop")
    assert (key.account_name, key.prefix, key.label, key.revoked) == (
        "acme",
        "km_live_abcd",
        "laptop",
        False,
    )
    assert await store.find_key("h1") == key
    assert await store.find_key("nope") is None
    other = await store.create_key(acct.id, "h2", "km_live_efgh", None)
    assert [k.id for k in await store.list_keys()] == [key.id, other.id]
    revoked = await store.revoke_key(key.id)
    assert revoked is not None and revoked.revoked
    again = await store.revoke_key(key.id)
    assert again is not None and again.revoked_ns == revoked.revoked_ns  # idempotent
    found = await store.find_key("h1")
    assert found is not None and found.revoked
    assert await store.revoke_key(99999) is None
    with pytest.raises(StoreError):
        await store.create_key(acct.id, "h2", "km_live_dupe", None)  # hashes are unique


# -- ingest


@pytest.mark.asyncio
async def test_ingest_accepts_new_and_reports_duplicates(store: EventStore) -> None:
    acct = await store.create_account("acme")
    events = [ingest_event(i) for i in range(10)]
    first = await store.ingest(acct.id, events[:6])
    assert first.accepted == tuple(e.id for e in events[:6]) and first.duplicates == ()
    second = await store.ingest(acct.id, events)
    assert second.accepted == tuple(e.id for e in events[6:])
    assert second.duplicates == tuple(e.id for e in events[:6])
    assert len(await all_events(store, acct.id)) == 10
    assert await store.ingest(acct.id, []) == first.__class__((), ())


@pytest.mark.asyncio
async def test_payloads_round_trip(store: EventStore) -> None:
    acct = await store.create_account("acme")
    json_payload = b'{"jsonrpc": "2.0", "id": 1, "result": {"b": [1, 2.5, null], "a": "\\u00e9"}}'
    cases = {
        "json": ingest_event(0, payload=json_payload.decode()),
        "text": ingest_event(1, payload="plain text, not json"),
        "truncated": ingest_event(2, payload='{"jsonrpc":"2.0","id":1,"res', truncated=True),
        "nul": ingest_event(3, payload="a\x00b"),
        "binary": ingest_event(4, payload="/w==", payload_encoding="base64"),  # b"\xff"
        "empty": ingest_event(5, payload=""),
    }
    await store.ingest(acct.id, list(cases.values()))
    stored = {e.id: e for e in await all_events(store, acct.id)}
    for name, sent in cases.items():
        got = stored[sent.id]
        if name == "json":  # PostgreSQL keeps JSON as JSONB: equal as JSON
            assert orjson.loads(got.payload) == orjson.loads(sent.payload), name
            assert got == sent.__class__(**{**_fields(sent), "payload": got.payload})
        else:
            assert got == sent, name


def _fields(e: IngestEvent) -> dict[str, Any]:
    return {f: getattr(e, f) for f in e.__slots__}


@pytest.mark.asyncio
async def test_a_batch_holding_a_stored_event_stores_the_rest_as_a_fresh_batch_would(
    store: EventStore,
) -> None:
    """On PostgreSQL a batch goes in by `COPY` straight into `events`; one that holds an event
    already stored goes in another way (a staging table, `ON CONFLICT DO NOTHING`): the rows
    and the session and rollup counts come out the same."""
    acct = await store.create_account("acme")
    payloads = [
        '{"jsonrpc": "2.0", "id": 1, "result": {"a": "\\u00e9"}}',
        "plain text, not json",
        "a\x00b",
        "",
    ]
    sent = [
        ingest_event(i, payload=p, latency_us=10 * i, tool="t", tokens=i, risk=i)
        for i, p in enumerate(payloads)
    ]
    sent.append(ingest_event(4, payload="/w==", payload_encoding="base64", truncated=True))
    first = await store.ingest(acct.id, sent[2:3])
    assert first.accepted == (sent[2].id,)
    again = await store.ingest(acct.id, sent)  # holds sent[2], stored already
    assert again.accepted == tuple(e.id for i, e in enumerate(sent) if i != 2)
    assert again.duplicates == (sent[2].id,)
    stored = {e.id: e for e in await all_events(store, acct.id)}
    assert len(stored) == len(sent)
    for e in sent:
        got = stored[e.id]
        if e.payload.startswith(b"{"):  # JSONB on PostgreSQL: equal as JSON
            assert orjson.loads(got.payload) == orjson.loads(e.payload)
            got = got.__class__(**{**_fields(got), "payload": e.payload})
        assert got == e
    (session,) = (await store.list_sessions(acct.id, None, 10)).items
    assert session.events == len(sent)
    assert sum(s.count for s in await store.stats(acct.id, None, None)) == len(sent)


@pytest.mark.asyncio
async def test_accounts_never_see_each_other(store: EventStore) -> None:
    a = await store.create_account("a")
    b = await store.create_account("b")
    shared = [ingest_event(i, session_id="shared", latency_us=100) for i in range(5)]
    only_a = [ingest_event(10 + i, session_id="a-only") for i in range(3)]
    assert len((await store.ingest(a.id, shared + only_a)).accepted) == 8
    # The same ids in another account are new there, not duplicates, and reveal nothing.
    result = await store.ingest(b.id, shared)
    assert result.accepted == tuple(e.id for e in shared) and result.duplicates == ()
    assert {e.id for e in await all_events(store, b.id)} == {e.id for e in shared}
    assert len(await all_events(store, a.id)) == 8
    assert await all_events(store, b.id, session_id="a-only") == []
    b_sessions = await store.list_sessions(b.id, None, 100)
    assert [(s.session_id, s.events) for s in b_sessions.items] == [("shared", 5)]
    a_stats = await store.stats(a.id, None, None)
    b_stats = await store.stats(b.id, None, None)
    assert sum(s.count for s in a_stats) == 8 and sum(s.count for s in b_stats) == 5
    nobody = await store.create_account("c")
    assert await all_events(store, nobody.id) == []
    assert (await store.list_sessions(nobody.id, None, 10)).items == ()
    assert await store.stats(nobody.id, None, None) == []


@pytest.mark.asyncio
async def test_concurrent_overlapping_ingests_store_each_event_once(store: EventStore) -> None:
    acct = await store.create_account("acme")
    events = [ingest_event(i, session_id=f"s{i % 3}", latency_us=i) for i in range(300)]
    rng = random.Random(1)
    batches = [rng.sample(events, 120) for _ in range(12)] + [events]
    results = await asyncio.gather(*(store.ingest(acct.id, batch) for batch in batches))
    accepted = [i for r in results for i in r.accepted]
    assert sorted(accepted) == sorted(e.id for e in events)  # each exactly once
    for batch, r in zip(batches, results, strict=True):
        assert set(r.accepted) | set(r.duplicates) == {e.id for e in batch}
        assert not set(r.accepted) & set(r.duplicates)
    assert len(await all_events(store, acct.id)) == 300
    sessions = (await store.list_sessions(acct.id, None, 10)).items
    assert sum(s.events for s in sessions) == 300
    assert sum(s.count for s in await store.stats(acct.id, None, None)) == 300


# -- read side


@pytest.mark.asyncio
async def test_event_filters(store: EventStore) -> None:
    acct = await store.create_account("acme")
    events = [
        ingest_event(0, session_id="s1", server="github", method="tools/call", direction="c2s"),
        ingest_event(1, session_id="s1", server="github", method="tools/list", direction="s2c"),
        ingest_event(2, session_id="s2", server="slack", method="tools/call", direction="c2s"),
        ingest_event(3, session_id="s2", server="slack", method=None, direction="km"),
    ]
    await store.ingest(acct.id, events)

    async def ids(**filters: Any) -> list[str]:
        return [e.id for e in await all_events(store, acct.id, **filters)]

    e = [x.id for x in events]
    assert await ids() == e
    assert await ids(session_id="s1") == e[:2]
    assert await ids(server="slack") == e[2:]
    assert await ids(method="tools/call") == [e[0], e[2]]
    assert await ids(direction="km") == [e[3]]
    assert await ids(since_ns=events[1].ts_ns) == e[1:]
    assert await ids(until_ns=events[1].ts_ns) == e[:1]  # until is exclusive
    assert await ids(since_ns=events[1].ts_ns, until_ns=events[3].ts_ns, server="slack") == [e[2]]
    assert await ids(session_id="s1", method="tools/call") == [e[0]]
    assert await ids(session_id="missing") == []


@pytest.mark.asyncio
@pytest.mark.parametrize("session", [None, "s"])
async def test_event_pages_miss_and_repeat_nothing(store: EventStore, session: str | None) -> None:
    acct = await store.create_account("acme")
    rng = random.Random(5)
    # Many events share a timestamp, so pages must break ties by id.
    events = [ingest_event(0, session_id="s", ts_ns=BASE_TS + rng.randrange(8)) for _ in range(60)]
    await store.ingest(acct.id, events)
    expected = [e.id for e in sorted(events, key=lambda e: (e.ts_ns, e.id))]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.list_events(acct.id, EventFilter(session_id=session), cursor, 7)
        seen += [e.id for e in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert pages == 9  # 60 / 7 rounded up
    # Events arriving after the cursor was issued appear on later pages, earlier ones do not.
    late = ingest_event(0, session_id="s", ts_ns=BASE_TS + 100)
    await store.ingest(acct.id, [late])
    page = await store.list_events(acct.id, EventFilter(session_id=session), cursor, 7)
    assert late.id in [e.id for e in page.items]


@pytest.mark.asyncio
async def test_session_pages_newest_first(store: EventStore) -> None:
    acct = await store.create_account("acme")
    events = [
        ingest_event(0, session_id=f"s{i:02d}", ts_ns=BASE_TS + (i // 3) * 1000, host=f"h{i}")
        for i in range(25)
    ]
    events.append(ingest_event(0, session_id="s00", ts_ns=BASE_TS + 10**9, kind="error"))
    await store.ingest(acct.id, events)
    seen = []
    cursor = None
    while True:
        page = await store.list_sessions(acct.id, cursor, 4)
        seen += list(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    order = [(s.first_ts_ns, s.session_id) for s in seen]
    assert order == sorted(order, reverse=True)
    assert len({s.session_id for s in seen}) == 25 == len(seen)
    s00 = next(s for s in seen if s.session_id == "s00")
    assert (s00.events, s00.errors, s00.host) == (2, 1, "h0")
    assert (s00.first_ts_ns, s00.last_ts_ns) == (BASE_TS, BASE_TS + 10**9)


@pytest.mark.asyncio
async def test_bad_cursors(store: EventStore) -> None:
    acct = await store.create_account("acme")
    await store.ingest(acct.id, [ingest_event(i, session_id=f"s{i}") for i in range(3)])
    sessions = await store.list_sessions(acct.id, None, 1)
    assert sessions.next_cursor is not None
    with pytest.raises(BadCursor):
        await store.list_events(acct.id, EventFilter(), sessions.next_cursor, 1)
    with pytest.raises(BadCursor):
        await store.list_sessions(acct.id, "garbage", 1)


@pytest.mark.asyncio
async def test_stats_hand_computed(store: EventStore) -> None:
    acct = await store.create_account("acme")
    hour = hour_of(BASE_TS)
    latencies = [120, 150, 180, 300, 400, 450, 700, 800, 900, 4000]
    responses = [
        ingest_event(i, kind="error" if i < 2 else "response", latency_us=lat, size=100)
        for i, lat in enumerate(latencies)
    ]
    requests = [ingest_event(20 + i, size=10) for i in range(5)]
    other_hour = [ingest_event(0, ts_ns=hour + HOUR_NS + 5, method="tools/list", size=7)]
    await store.ingest(acct.id, responses[:4] + requests)
    await store.ingest(acct.id, responses + other_hour)  # rollups merge; duplicates not counted
    stats = await store.stats(acct.id, None, None)
    assert [(s.hour_ns, s.method) for s in stats] == [
        (hour, "tools/call"),
        (hour + HOUR_NS, "tools/list"),
    ]
    first, second = stats
    assert (first.count, first.errors, first.bytes) == (15, 2, 10 * 100 + 5 * 10)
    # Same samples as tests/server/test_latency.py: p50 400, p95 4000.
    assert (first.latency_p50_us, first.latency_p95_us) == (400, 4000)
    assert (second.count, second.bytes, second.latency_p50_us, second.latency_p95_us) == (
        1,
        7,
        None,
        None,
    )
    # Hours overlapping [since, until): the first hour ends where the second begins.
    assert [s.hour_ns for s in await store.stats(acct.id, hour + HOUR_NS, None)] == [hour + HOUR_NS]
    assert [s.hour_ns for s in await store.stats(acct.id, hour + HOUR_NS - 1, None)] == [
        hour,
        hour + HOUR_NS,
    ]
    assert [s.hour_ns for s in await store.stats(acct.id, None, hour + HOUR_NS)] == [hour]
    assert await store.stats(acct.id, hour + 2 * HOUR_NS, None) == []


# -- failure


@pytest.mark.asyncio
async def test_a_closed_store_is_unavailable(store: EventStore) -> None:
    acct = await store.create_account("acme")
    await store.ping()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.ingest(acct.id, [ingest_event()])
    await store.close()  # idempotent
