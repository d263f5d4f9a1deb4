"""Retention on PostgreSQL: daily partitions of `events` made ahead and dropped whole.

One run, on one connection, under a session advisory lock (one replica at a time):

1. make the partitions of yesterday through a week ahead (a day whose rows already sit in
   `events_default` gets them moved into its new partition, in one transaction);
2. drop every partition wholly past the longest retention of any account: a `DROP TABLE`,
   no row is deleted, no table bloats;
3. where accounts with a shorter retention share older partitions with longer ones (and in
   `events_default`), delete their expired rows `PURGE_BATCH` at a time, each batch its own
   short transaction (TID scans on one partition at a time);
4. the same for sessions, rollups and the insight tables of each account (findings and
   definition changes by their time, tool definitions not seen since), and the audit log past
   its own horizon.

Every DDL statement runs with `lock_timeout` (`DDL_LOCK_TIMEOUT_MS`): if ingest or a long read
holds the table, the statement gives up and the next run tries again, so ingest never queues
behind retention for longer than that.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from km.server.audit import AUDIT_RETENTION_DAYS
from km.server.retention import (
    DAY_NS,
    DEFAULT_DAYS,
    PURGE_BATCH,
    cutoff_ns,
    droppable,
    partition_day,
    partition_name,
    wanted_days,
)
from km.server.stores.aggregate import HOUR_NS
from km.server.stores.base import RetentionReport

log = logging.getLogger("km.server")

DDL_LOCK_TIMEOUT_MS = 1000
DEFAULT_PARTITION = "events_default"

_LOCK = "hashtext('km-retention:' || current_schema())"
_PARTITIONS = """
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'events'::regclass
"""


async def enforce(conn: Any, now_ns: int) -> RetentionReport:
    report = RetentionReport()
    if not await conn.fetchval(f"SELECT pg_try_advisory_lock({_LOCK})"):
        return report  # another replica is at it
    try:
        await conn.execute(f"SET lock_timeout = {DDL_LOCK_TIMEOUT_MS:d}")
        await _make_partitions(conn, now_ns, report)
        accounts = await conn.fetch("SELECT id, retention_days FROM accounts")
        days = [int(a["retention_days"]) for a in accounts]
        longest, shortest = max(days, default=DEFAULT_DAYS), min(days, default=DEFAULT_DAYS)
        await _drop_partitions(conn, now_ns, longest, report)
        horizon = cutoff_ns(now_ns, shortest)  # nothing newer than this is past anyone's
        for name in await _partition_names(conn):
            day = partition_day(name)
            if name == DEFAULT_PARTITION or (day is not None and day * DAY_NS < horizon):
                report.events_deleted += await _purge(
                    conn,
                    name,
                    f"SELECT e.ctid FROM {name} e JOIN accounts a ON a.id = e.account_id "
                    "WHERE e.ts_ns < $1 - a.retention_days * $2::bigint",
                    now_day_start(now_ns),
                    DAY_NS,
                )
        report.sessions_deleted = await _purge(
            conn,
            "sessions",
            "SELECT s.ctid FROM sessions s JOIN accounts a ON a.id = s.account_id "
            "WHERE s.last_ts_ns < $1 - a.retention_days * $2::bigint",
            now_day_start(now_ns),
            DAY_NS,
        )
        report.rollups_deleted = await _purge(
            conn,
            "rollups",
            "SELECT r.ctid FROM rollups r JOIN accounts a ON a.id = r.account_id "
            f"WHERE r.hour_ns + {HOUR_NS:d} <= $1 - a.retention_days * $2::bigint",
            now_day_start(now_ns),
            DAY_NS,
        )
        # The insight tables: findings and definition changes by when they happened, tool
        # definitions not seen since the account's cutoff (pins, the operator's choices, stay).
        report.findings_deleted = await _purge_expired(conn, "findings", "ts_ns", now_ns)
        report.changes_deleted = await _purge_expired(conn, "definition_changes", "ts_ns", now_ns)
        report.definitions_deleted = await _purge_expired(
            conn, "tool_definitions", "last_seen_ns", now_ns
        )
        report.audit_deleted = await _purge(
            conn,
            "audit_log",
            "SELECT ctid FROM audit_log WHERE ts_ns < $1",
            cutoff_ns(now_ns, AUDIT_RETENTION_DAYS),
        )
    finally:
        await conn.execute("RESET lock_timeout")
        await conn.execute(f"SELECT pg_advisory_unlock({_LOCK})")
    return report


def now_day_start(now_ns: int) -> int:
    """`cutoff_ns(now, days)` is this minus `days` days."""
    return cutoff_ns(now_ns, 0)


async def _partition_names(conn: Any) -> list[str]:
    return [r[0] for r in await conn.fetch(_PARTITIONS)]


async def _make_partitions(conn: Any, now_ns: int, report: RetentionReport) -> None:
    existing = set(await _partition_names(conn))
    for day in wanted_days(now_ns):
        name = partition_name(day)
        if name in existing:
            continue
        low, high = day * DAY_NS, (day + 1) * DAY_NS
        try:
            try:
                await conn.execute(
                    f"CREATE TABLE {name} PARTITION OF events FOR VALUES FROM ({low}) TO ({high})"
                )
            except asyncpg.CheckViolationError:
                await _move_out_of_default(conn, name, low, high)
        except asyncpg.PostgresError as exc:  # a lock not granted in time: the next run
            log.warning("retention: cannot make partition %s yet (%s)", name, exc)
            continue
        report.partitions_created.append(name)


async def _move_out_of_default(conn: Any, name: str, low: int, high: int) -> None:
    """`events_default` holds rows of the day: give them their partition."""
    async with conn.transaction():
        await conn.execute(
            f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING GENERATED INCLUDING STORAGE)"
        )
        await conn.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
            f"WHERE ts_ns >= {low} AND ts_ns < {high} RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        )
        await conn.execute(
            f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})"
        )


async def _drop_partitions(
    conn: Any, now_ns: int, longest_days: int, report: RetentionReport
) -> None:
    days = {partition_day(n): n for n in await _partition_names(conn)}
    days.pop(None, None)
    for day in droppable([d for d in days if d is not None], now_ns, longest_days):
        name = days[day]
        try:
            await conn.execute(f"DROP TABLE {name}")
        except asyncpg.PostgresError as exc:
            log.warning("retention: cannot drop partition %s yet (%s)", name, exc)
            continue
        report.partitions_dropped.append(name)


async def _purge_expired(conn: Any, table: str, column: str, now_ns: int) -> int:
    """Rows of `table` (per account) whose `column` is past their account's retention."""
    return await _purge(
        conn,
        table,
        f"SELECT t.ctid FROM {table} t JOIN accounts a ON a.id = t.account_id "
        f"WHERE t.{column} < $1 - a.retention_days * $2::bigint",
        now_day_start(now_ns),
        DAY_NS,
    )


async def _purge(conn: Any, table: str, select_ctids: str, *params: int) -> int:
    """Delete the rows `select_ctids` finds, `PURGE_BATCH` at a time, one transaction each."""
    sql = f"DELETE FROM {table} WHERE ctid = ANY(ARRAY({select_ctids} LIMIT {PURGE_BATCH:d}))"
    total = 0
    while True:
        status = await conn.execute(sql, *params)
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < PURGE_BATCH:
            return total
        await asyncio.sleep(0)
