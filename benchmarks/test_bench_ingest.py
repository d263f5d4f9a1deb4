"""Ingest throughput of `km serve`: batches of 500 events, one batch per round, sequentially
(one uplink's stream), on uvloop as `km serve` runs.

    .venv/bin/pytest benchmarks/test_bench_ingest.py --benchmark-enable

Groups and their baselines, measured in the same run:
- `ingest-store-postgres`: `PostgresStore.ingest` (validated events in, one transaction with
  the idempotent insert, session and rollup upserts) against the same rows `COPY`ed into a bare
  unindexed table, the most PostgreSQL can take on this machine.
- `ingest-store-sqlite`: `SqliteStore.ingest` against plain `executemany` into a bare table
  under the same pragmas (WAL, synchronous=FULL).
- `ingest-plan`: what the HTTP handler does to a batch before the store (JSON parse, validation,
  server-side redaction with km.redact when it is there), against parsing alone.
- `ingest-http`: POST /api/v1/events to a real `python -m km.server` process on loopback, plain
  JSON and gzip, into each backend: what an uplink sees, parsing, validation and redaction
  included. `json-4-streams` posts 4 batches at once per round (4 uplinks): events/s is then
  2,000 / mean round time.

Every round sends 500 new events (fresh UUIDv7 ids as km makes them, built before the timed
call); `extra_info` holds
events/s (500 / mean round time). PostgreSQL is KM_TEST_DATABASE_URL, in a schema of its own
dropped at the end.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import itertools
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.serve_process import ServeProcess
from km.capture.ids import uuid7
from km.insight.session import SessionAnalyzer
from km.server.batch import parse_batch, plan_batch
from km.server.insight import Ingest
from km.server.redaction import load_redactor
from km.server.serve import loop_factory
from km.server.stores.base import EventStore, IngestEvent
from km.server.stores.postgres import PostgresStore
from km.server.stores.sqlite import SqliteStore
from km.server.validate import validate_event

BATCH = 500
ROUNDS = 60
WARMUP_ROUNDS = 3
PG_URL = os.environ.get("KM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Now, as an uplink sends: on PostgreSQL the rows go to today's partition, not the default one
# that holds only days with no partition (km.server.retention).
BASE_TS = time.time_ns() // 10**9 * 10**9
# A tools/call request and its response: ~300 bytes of JSON each, like a typical MCP call.
REQUEST = (
    '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"search_issues",'
    '"arguments":{"query":"repo:octo/hello is:open label:bug","per_page":30,"page":1}}}'
)
RESPONSE = (
    '{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"Found 3 issues: '
    '#12 crash on start, #15 wrong totals, #19 timeout on large repos"}],"isError":false}}'
)
_seq = itertools.count()


def batch_json(insight: bool = True) -> list[dict[str, Any]]:
    """500 new events: request/response pairs over a few sessions, each response linked to its
    request with a latency. With `insight`, each carries the fields a km with the insight core
    sends (worked out by the core's SessionAnalyzer, before the timed call: tool, status and
    risk; tokens are null, as the capture process counts none and the API counts them on
    ingest); without, it is what an older km sends and the API works them out on ingest."""
    events: list[dict[str, Any]] = []
    request_id = ""
    for _ in range(BATCH):
        n = next(_seq)
        response = n % 2 == 1
        payload = (RESPONSE if response else REQUEST) % (n // 2)
        event_id = uuid7()
        events.append(
            {
                "id": event_id,
                "session_id": f"session-{n // 5000}",
                "server": "github",
                "direction": "s2c" if response else "c2s",
                "ts_ns": BASE_TS + n * 1_000_000,
                "kind": "response" if response else "request",
                "method": "tools/call",
                "rpc_id": str(n // 2),
                "size": len(payload),
                "payload": payload,
                "payload_encoding": "utf8",
                "truncated": False,
                "link_id": request_id if response else None,
                "latency_us": 800 + n % 5000 if response else None,
                "host": "bench",
                "km_version": "0.1.0",
            }
        )
        request_id = event_id
    if insight:
        analyzer = SessionAnalyzer("github", count_tokens=False)  # as km's capture process
        for e in events:
            i = analyzer.observe(
                e["id"], e["direction"], e["kind"], e["method"], e["payload"].encode(),
                e["link_id"],
            )  # fmt: skip
            e.update(tool=i.tool, status=i.status, tokens=i.tokens, risk=i.risk)
    return events


def batch_events(insight: bool = True) -> list[IngestEvent]:
    events = [validate_event(e) for e in batch_json(insight)]
    return [e for e in events if isinstance(e, IngestEvent)]


def record_rate(benchmark: BenchmarkFixture, batches: int = 1) -> None:
    benchmark.extra_info["redactor"] = load_redactor() is not None
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["events_per_s"] = round(batches * BATCH / stats.stats.mean)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner(loop_factory=loop_factory()) as r:
        yield r


@pytest.fixture(scope="module")
def pg_schema(runner: asyncio.Runner) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:12]}"

    async def execute(sql: str) -> None:
        try:
            conn = await asyncpg.connect(PG_URL, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({exc})")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    runner.run(execute(f"CREATE SCHEMA {name}"))
    try:
        yield name
    finally:
        runner.run(execute(f"DROP SCHEMA {name} CASCADE"))


def pg_url(schema: str) -> str:
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}search_path={schema}"


async def migrated(store: EventStore) -> EventStore:
    try:
        await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store


# Analysis modes of the store benchmarks: "off" (the store alone), "on" (what the ingest handler
# does: the SessionAnalyzer over each new event, events carrying their insight fields as a
# current km sends them) and "on-older-km" (events without the fields: the analyzer's are
# filled in, on PostgreSQL by an UPDATE of those rows).
ANALYSIS = pytest.mark.parametrize("analysis", ["off", "on", "on-older-km"])


def bench_store(
    benchmark: BenchmarkFixture, runner: asyncio.Runner, store: EventStore, analysis: str
) -> None:
    try:
        _bench_store(benchmark, runner, store, analysis)
    finally:
        runner.run(store.close())


def _bench_store(
    benchmark: BenchmarkFixture, runner: asyncio.Runner, store: EventStore, analysis: str
) -> None:
    account_id = runner.run(store.create_account("bench")).id
    insight = Ingest()

    async def analysed(events: list[IngestEvent]) -> None:
        await insight.prepare(store, account_id, events)
        analyse = functools.partial(insight.analyse, account_id)
        result = await store.ingest(account_id, events, analyse)
        assert len(result.accepted) == BATCH

    def ingest(events: list[IngestEvent]) -> None:
        if analysis == "off":
            result = runner.run(store.ingest(account_id, events))
            assert len(result.accepted) == BATCH
        else:
            runner.run(analysed(events))

    benchmark.extra_info["analysis"] = analysis
    benchmark.pedantic(  # type: ignore[no-untyped-call]
        ingest,
        setup=lambda: ((batch_events(analysis != "on-older-km"),), {}),
        rounds=ROUNDS,
        warmup_rounds=WARMUP_ROUNDS,
    )
    record_rate(benchmark)


# -- PostgreSQL through the store, and the bare COPY baseline


@pytest.mark.benchmark(group="ingest-store-postgres")
@ANALYSIS
def test_postgres_store_ingest(
    benchmark: BenchmarkFixture, runner: asyncio.Runner, pg_schema: str, analysis: str
) -> None:
    store = runner.run(migrated(runner.run(PostgresStore.open(PG_URL, schema=pg_schema))))
    bench_store(benchmark, runner, store, analysis)


@pytest.mark.benchmark(group="ingest-store-postgres")
def test_postgres_baseline_copy(
    benchmark: BenchmarkFixture, runner: asyncio.Runner, pg_schema: str
) -> None:
    conn = runner.run(asyncpg.connect(PG_URL, server_settings={"search_path": pg_schema}))
    try:
        runner.run(
            conn.execute(
                "CREATE TABLE bare (account_id bigint, id uuid, session_id text, ts_ns bigint, "
                "kind text, method text, size bigint, payload text, latency_us bigint)"
            )
        )

        def copy(rows: list[tuple[Any, ...]]) -> None:
            runner.run(conn.copy_records_to_table("bare", records=rows))

        def rows() -> tuple[tuple[list[tuple[Any, ...]]], dict[str, Any]]:
            return (
                [
                    (1, uuid.UUID(e.id), e.session_id, e.ts_ns, e.kind, e.method, e.size,
                     e.payload.decode(), e.latency_us)
                    for e in batch_events()
                ],
            ), {}  # fmt: skip

        benchmark.pedantic(  # type: ignore[no-untyped-call]
            copy, setup=rows, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS
        )
        record_rate(benchmark)
    finally:
        runner.run(conn.close())


# -- SQLite through the store, and the bare executemany baseline


@pytest.mark.benchmark(group="ingest-store-sqlite")
@ANALYSIS
def test_sqlite_store_ingest(
    benchmark: BenchmarkFixture, runner: asyncio.Runner, tmp_path: Path, analysis: str
) -> None:
    store = runner.run(migrated(runner.run(SqliteStore.open(str(tmp_path / "server.db")))))
    bench_store(benchmark, runner, store, analysis)


@pytest.mark.benchmark(group="ingest-store-sqlite")
def test_sqlite_baseline_executemany(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    conn = sqlite3.connect(str(tmp_path / "bare.db"), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(
            "CREATE TABLE bare (account_id, id, session_id, ts_ns, kind, method, size, payload, "
            "latency_us)"
        )

        def insert(rows: list[tuple[Any, ...]]) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO bare VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")

        def rows() -> tuple[tuple[list[tuple[Any, ...]]], dict[str, Any]]:
            return (
                [
                    (1, e.id, e.session_id, e.ts_ns, e.kind, e.method, e.size, e.payload.decode(),
                     e.latency_us)
                    for e in batch_events()
                ],
            ), {}  # fmt: skip

        benchmark.pedantic(  # type: ignore[no-untyped-call]
            insert, setup=rows, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS
        )
        record_rate(benchmark)
    finally:
        conn.close()


# -- the handler's CPU work before the store


@pytest.mark.benchmark(group="ingest-plan")
@pytest.mark.parametrize("redact", [False, True], ids=["validate", "validate+redact"])
def test_plan_batch(benchmark: BenchmarkFixture, redact: bool) -> None:
    redactor = load_redactor() if redact else None
    if redact and redactor is None:
        pytest.skip("km.redact.redact_payload is not there")

    def plan(body: bytes) -> None:
        assert len(plan_batch(parse_batch(body, BATCH), redactor).events) == BATCH

    benchmark.pedantic(  # type: ignore[no-untyped-call]
        plan,
        setup=lambda: ((orjson.dumps({"events": batch_json()}),), {}),
        rounds=ROUNDS,
        warmup_rounds=WARMUP_ROUNDS,
    )
    record_rate(benchmark)


@pytest.mark.benchmark(group="ingest-plan")
def test_plan_baseline_parse_only(benchmark: BenchmarkFixture) -> None:
    benchmark.pedantic(  # type: ignore[no-untyped-call]
        lambda body: parse_batch(body, BATCH),
        setup=lambda: ((orjson.dumps({"events": batch_json()}),), {}),
        rounds=ROUNDS,
        warmup_rounds=WARMUP_ROUNDS,
    )
    record_rate(benchmark)


# -- HTTP into a real `km serve` process


def bench_http(
    benchmark: BenchmarkFixture,
    runner: asyncio.Runner,
    database_url: str,
    gzipped: bool,
    streams: int,
) -> None:
    server = ServeProcess(database_url)
    key = server.create_key()
    server.start()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"

    async def open_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    http = runner.run(open_session())
    try:

        async def post(body: bytes) -> None:
            async with http.post(f"{server.url}/api/v1/events", data=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                assert len((await r.json())["accepted"]) == BATCH

        async def post_all(bodies: list[bytes]) -> None:
            await asyncio.gather(*(post(b) for b in bodies))

        def bodies() -> tuple[tuple[list[bytes]], dict[str, Any]]:
            raw = [orjson.dumps({"events": batch_json()}) for _ in range(streams)]
            return ([gzip.compress(r, compresslevel=1) if gzipped else r for r in raw],), {}

        benchmark.pedantic(  # type: ignore[no-untyped-call]
            lambda b: runner.run(post_all(b)),
            setup=bodies,
            rounds=ROUNDS,
            warmup_rounds=WARMUP_ROUNDS,
        )
        record_rate(benchmark, streams)
    finally:
        runner.run(http.close())
        server.stop()


HTTP_CASES = pytest.mark.parametrize(
    ("gzipped", "streams"),
    [(False, 1), (True, 1), (False, 4)],
    ids=["json", "gzip", "json-4-streams"],
)


@pytest.mark.benchmark(group="ingest-http")
@HTTP_CASES
def test_http_postgres(
    benchmark: BenchmarkFixture,
    runner: asyncio.Runner,
    pg_schema: str,
    gzipped: bool,
    streams: int,
) -> None:
    bench_http(benchmark, runner, pg_url(pg_schema), gzipped, streams)


@pytest.mark.benchmark(group="ingest-http")
@HTTP_CASES
def test_http_sqlite(
    benchmark: BenchmarkFixture, runner: asyncio.Runner, gzipped: bool, streams: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench_http(benchmark, runner, f"sqlite://{tmp}/server.db", gzipped, streams)


def test_batches_are_what_the_api_accepts() -> None:
    """Runs in the default (benchmark-disabled) mode too: the fixture data is valid."""
    events = batch_json()
    assert len(events) == BATCH
    assert all(isinstance(validate_event(e), IngestEvent) for e in events)
