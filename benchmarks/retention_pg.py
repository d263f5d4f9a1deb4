"""Retention on PostgreSQL at 10 million events: the partitioned `events` against the same rows
in the unpartitioned table it replaced, in the same run. Run once, by hand (minutes, bounded):

    .venv/bin/python -m benchmarks.retention_pg [--rows 10000000] [--days 40]

1. load: `--rows` events over `--days` days (4 accounts) with `generate_series` straight into
   the partitioned table (the indexes maintained as in production); the same rows are copied
   into an unpartitioned copy (the schema before retention);
2. ingest: batches of 500 current events through `PostgresStore.ingest` into each, with the
   10M rows there (events/s: the median of `INGEST_ROUNDS` rounds of `INGEST_BATCHES`
   batches, the two tables in turn);
3. purge, three accounts at 30 days and one at 7: `enforce_retention` on the partitioned table
   (whole days dropped, bounded batches only for the 7-day account's share of days 8-30)
   against batched `DELETE`s of the same rows from the unpartitioned table; meanwhile an
   ingest probe sends a batch every `PROBE_PAUSE_S` and records how long each took (the lock
   waits a purge causes show up there); table sizes before and after.

Each run uses two schemas of its own in KM_TEST_DATABASE_URL, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import uuid
from typing import Any

import asyncpg
import orjson

from km.capture.ids import uuid7
from km.server.retention import DAY_NS, PURGE_BATCH, cutoff_ns, partition_name
from km.server.stores.base import IngestEvent
from km.server.stores.postgres import PostgresStore
from km.server.validate import validate_event

PG_URL = os.environ.get("KM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
ACCOUNTS = 4  # account 4 keeps 7 days, the others 30
SHORT_DAYS, LONG_DAYS = 7, 30
BATCH = 500
INGEST_BATCHES = 20  # per round
INGEST_ROUNDS = 7
PROBE_PAUSE_S = 0.05
PAYLOAD = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues"}}'

_LOAD_DAY = """
    INSERT INTO events (account_id, id, session_id, server, direction, ts_ns, kind, method,
                        rpc_id, size, payload_json, payload_encoding, truncated, received_ns)
    SELECT 1 + g % $4, gen_random_uuid(), 'session-' || (g / 2000), 'github', 'c2s',
           $1::bigint + g * $2::bigint, 'request', 'tools/call', g::text, 80,
           jsonb_build_object('jsonrpc', '2.0', 'id', g, 'method', 'tools/call'),
           'utf8', false, 0
    FROM generate_series(0, $3 - 1) g
"""


def batch(now_ns: int) -> list[IngestEvent]:
    out = []
    for i in range(BATCH):
        e = validate_event(
            {"id": uuid7(), "session_id": "probe", "server": "github", "direction": "c2s",
             "ts_ns": now_ns + i, "kind": "request", "method": "tools/call", "rpc_id": str(i),
             "size": len(PAYLOAD), "payload": PAYLOAD, "payload_encoding": "utf8"}
        )  # fmt: skip
        assert isinstance(e, IngestEvent)
        out.append(e)
    return out


async def size_mb(conn: Any, schema: str) -> float:
    total = await conn.fetchval(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname LIKE 'events%'",
        schema,
    )
    return round(int(total) / 2**20, 1)


async def load(conn: Any, rows: int, days: int, now_ns: int) -> float:
    per_day = rows // days
    step = DAY_NS // per_day
    today = now_ns // DAY_NS
    for day in range(today - days + 1, today + 1):
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF events "
            f"FOR VALUES FROM ({day * DAY_NS}) TO ({(day + 1) * DAY_NS})"
        )
    started = time.perf_counter()
    for day in range(today - days + 1, today + 1):
        await conn.execute(_LOAD_DAY, day * DAY_NS, step, per_day, ACCOUNTS)
    return time.perf_counter() - started


async def ingest_rates(stores: dict[str, PostgresStore], account_id: int) -> dict[str, int]:
    """Events/s of each store, the median of `INGEST_ROUNDS` rounds taken in turn (A, B, A, B,
    ...), so that the machine's load moves both alike."""
    rates: dict[str, list[float]] = {name: [] for name in stores}
    for _ in range(INGEST_ROUNDS):
        for name, store in stores.items():
            batches = [batch(time.time_ns()) for _ in range(INGEST_BATCHES)]
            started = time.perf_counter()
            for b in batches:
                await store.ingest(account_id, b)
            rates[name].append(INGEST_BATCHES * BATCH / (time.perf_counter() - started))
    return {name: round(statistics.median(r)) for name, r in rates.items()}


async def probe(store: PostgresStore, stop: asyncio.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        b = batch(time.time_ns())
        started = time.perf_counter()
        await store.ingest(1, b)
        latencies.append((time.perf_counter() - started) * 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROBE_PAUSE_S)


async def flat_purge(conn: Any, now_ns: int) -> int:
    """What retention costs without partitions: batched DELETEs of the same rows."""
    deleted = 0
    for account in range(1, ACCOUNTS + 1):
        days = SHORT_DAYS if account == ACCOUNTS else LONG_DAYS
        while True:
            status = await conn.execute(
                "DELETE FROM events WHERE ctid = ANY(ARRAY(SELECT ctid FROM events "
                f"WHERE account_id = $1 AND ts_ns < $2 LIMIT {PURGE_BATCH}))",
                account,
                cutoff_ns(now_ns, days),
            )
            n = int(status.split()[-1])
            deleted += n
            if n < PURGE_BATCH:
                break
    return deleted


async def timed_with_probe(store: PostgresStore, work: Any) -> tuple[float, Any, list[float]]:
    stop = asyncio.Event()
    latencies: list[float] = []
    task = asyncio.create_task(probe(store, stop, latencies))
    started = time.perf_counter()
    try:
        result = await work
    finally:
        elapsed = time.perf_counter() - started
        stop.set()
        await task
    return elapsed, result, latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "batches": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1 if len(ordered) > 1 else 0], 1),
        "max_ms": round(ordered[-1], 1),
    }


async def main(rows: int, days: int) -> dict[str, Any]:
    part, flat = f"bench_part_{uuid.uuid4().hex[:8]}", f"bench_flat_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_URL)
    results: dict[str, Any] = {"rows": rows, "days": days}
    now_ns = time.time_ns()
    try:
        for schema in (part, flat):
            await admin.execute(f"CREATE SCHEMA {schema}")
        p_store = await PostgresStore.open(PG_URL, schema=part)
        await p_store.migrate()
        for i in range(1, ACCOUNTS + 1):
            account = await p_store.create_account(f"bench-{i}")
            await p_store.set_retention(account.id, SHORT_DAYS if i == ACCOUNTS else LONG_DAYS)
        await admin.execute(f"SET search_path = {part}")
        load_s = await load(admin, rows, days, now_ns)
        results["load_partitioned"] = {"s": round(load_s, 1), "rows_per_s": round(rows / load_s)}
        # The unpartitioned table as it was before retention, holding the same rows.
        from km.server.stores.postgres_schema import MIGRATIONS

        await admin.execute(f"SET search_path = {flat}")
        for statement in MIGRATIONS[0]:
            await admin.execute(statement)
        started = time.perf_counter()
        await admin.execute(f"INSERT INTO {flat}.events SELECT * FROM {part}.events")
        copy_s = time.perf_counter() - started
        results["copy_unpartitioned"] = {"s": round(copy_s, 1), "rows_per_s": round(rows / copy_s)}
        await admin.execute(f"VACUUM ANALYZE {flat}.events")
        await admin.execute(f"ANALYZE {part}.events")
        f_store = await PostgresStore.open(PG_URL, schema=flat)
        results["size_mb_before"] = {
            "partitioned": await size_mb(admin, part),
            "unpartitioned": await size_mb(admin, flat),
        }
        results["ingest_events_per_s_at_full_size"] = await ingest_rates(
            {"partitioned": p_store, "unpartitioned": f_store}, 1
        )
        elapsed, report, lat = await timed_with_probe(p_store, p_store.enforce_retention(now_ns))
        results["purge_partitioned"] = {
            "s": round(elapsed, 2),
            "partitions_dropped": len(report.partitions_dropped),
            "rows_deleted_in_batches": report.events_deleted,
            "ingest_during": summary(lat),
        }
        flat_conn = await asyncpg.connect(PG_URL, server_settings={"search_path": flat})
        try:
            elapsed, deleted, lat = await timed_with_probe(f_store, flat_purge(flat_conn, now_ns))
        finally:
            await flat_conn.close()
        results["purge_unpartitioned"] = {
            "s": round(elapsed, 2),
            "rows_deleted_in_batches": deleted,
            "ingest_during": summary(lat),
        }
        results["size_mb_after"] = {
            "partitioned": await size_mb(admin, part),
            "unpartitioned": await size_mb(admin, flat),
        }
        results["rows_left"] = {
            "partitioned": await admin.fetchval(f"SELECT count(*) FROM {part}.events"),
            "unpartitioned": await admin.fetchval(f"SELECT count(*) FROM {flat}.events"),
        }
        await p_store.close()
        await f_store.close()
    finally:
        for schema in (part, flat):
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=40)
    options = parser.parse_args()
    print(orjson.dumps(asyncio.run(main(options.rows, options.days)),
                       option=orjson.OPT_INDENT_2).decode())  # fmt: skip
