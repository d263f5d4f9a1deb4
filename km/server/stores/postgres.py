"""The PostgreSQL store, through an asyncpg pool.

Ingest is one transaction whatever the batch size: the events are COPYed into `events` (when
one of them is already stored: into a temporary staging table, then moved into `events` with
`ON CONFLICT DO NOTHING RETURNING id`, the ids that come back being the new ones; `_STAGING`),
then the session and hourly rollup increments of exactly the new ones go in through `unnest`.
Rows are sent sorted by key so concurrent batches lock in the same order. Several API replicas
can share one database; migrations serialize on an advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from km.insight.filter import Filter
from km.server import cursor as cursors
from km.server.audit import (
    ACCOUNT_CREATED,
    KEY_CREATED,
    KEY_REVOKED,
    OPERATOR,
    RETENTION_CHANGED,
    AuditEntry,
    AuditRecord,
)
from km.server.errors import StoreError, StoreTooNew, StoreUnavailable
from km.server.retention import check_days
from km.server.stores import describe_dsn, postgres_insight
from km.server.stores.aggregate import aggregate
from km.server.stores.base import (
    Account,
    ApiKeyRecord,
    EventFilter,
    EventStore,
    HourStat,
    IngestEvent,
    IngestResult,
    Page,
    RetentionReport,
    SessionSummary,
)
from km.server.stores.insight import (
    TOOLS_LIST,
    Analyser,
    FindingFilter,
    InsightWrites,
    Inventory,
    Pin,
    StoredDefinition,
    StoredFinding,
    analysis_writes,
    change_from_row,
    current_definitions,
    definition_from_row,
    finding_where,
    findings_page,
    kept,
    pins_to_set,
    resolve,
)
from km.server.stores.payload import to_columns
from km.server.stores.postgres_schema import MIGRATIONS
from km.server.stores.rows import (
    AUDIT_COLUMNS,
    EVENT_COLUMNS,
    SESSION_COLUMNS,
    SESSIONS_CURSOR,
    STATS_COLUMNS,
    Params,
    audit_page,
    audit_position,
    audit_row,
    event_where,
    events_page,
    sessions_page,
    sessions_query_sql,
    stat_from_row,
    stats_range,
)

CONNECT_TIMEOUT_S = 10.0  # opening a connection: past this the server is unreachable (503)
PING_TIMEOUT_S = 2.0  # /ready answers within this
POOL_MIN = 1
POOL_MAX = 10  # per API process; PostgreSQL's max_connections is shared by all replicas

# Errors after which a retry can succeed: the connection went away, the server is shutting
# down or refusing connections, a deadlock or serialization failure chose this transaction.
# InternalClientError ("cannot switch to state N; another operation is in progress") is what a
# query gets when it races the server's FATAL on a terminated connection (`pg_ctl stop -m fast`,
# pg_terminate_backend): the connection is gone, the pool replaces it.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.InsufficientResourcesError,
)

# A batch is COPYed (binary) straight into `events`, in key order, with its account and
# receive time: the common case, where every event is new. An event already stored (a batch
# sent again, or sent by two uplinks at once) makes that COPY fail on the primary key, and the
# batch goes in again, in a new transaction, the idempotent way: COPYed into a per-connection
# temporary staging table, then moved into `events` with `ON CONFLICT DO NOTHING RETURNING id`
# (the ids that come back are the new ones). The direct COPY costs PostgreSQL ~4 us of CPU per
# event less than the staging table and `INSERT ... SELECT` (which also write and read every
# row twice, and empty the staging table at commit). The staging path is still 25-30% faster
# than binding the batch as 18 arrays for `unnest`. The staging table is created, if missing,
# inside the transaction that uses it and emptied at every commit, so it also works behind
# PgBouncer in transaction mode (whatever server connection the transaction gets). The table
# name carries the column set: a connection that made an older staging table (before an
# upgrade of the running API) does not reuse it.
_COPY_COLUMNS = ("account_id", *EVENT_COLUMNS, "received_ns")
_STAGING = "km_ingest_staging_3"
_CREATE_STAGING = f"""
    CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (
        account_id bigint, id uuid, session_id text, server text, direction text, ts_ns bigint,
        kind text, method text, rpc_id text, size bigint, payload_json jsonb, payload_text text,
        payload_bytes bytea, payload_encoding text, truncated boolean, link_id text,
        latency_us bigint, host text, km_version text, tool text, status text, tokens bigint,
        risk smallint, received_ns bigint
    ) ON COMMIT DELETE ROWS
"""
# After the direct COPY failed: the failed transaction ended and a new one begun with the
# staging table there, in one round trip.
_RESTART_STAGED = f"ROLLBACK; BEGIN; {_CREATE_STAGING}"
_INSERT_STAGED = f"""
    INSERT INTO events ({", ".join(_COPY_COLUMNS)})
    SELECT {", ".join(_COPY_COLUMNS)} FROM {_STAGING} ORDER BY id
    ON CONFLICT DO NOTHING
    RETURNING id::text
"""
_UPSERT_ROLLUPS = """
    WITH sessions_upsert AS (
        INSERT INTO sessions AS s (account_id, session_id, server, host, first_ts_ns,
                                   last_ts_ns, events, errors)
        SELECT $1, t.* FROM unnest($17::text[], $18::text[], $19::text[], $20::int8[],
                                   $21::int8[], $22::int8[], $23::int8[]) AS t
        ON CONFLICT (account_id, session_id) DO UPDATE SET
            host = coalesce(s.host, excluded.host),
            first_ts_ns = least(s.first_ts_ns, excluded.first_ts_ns),
            last_ts_ns = greatest(s.last_ts_ns, excluded.last_ts_ns),
            events = s.events + excluded.events,
            errors = s.errors + excluded.errors
    )
    INSERT INTO rollups AS r (account_id, hour_ns, server, method, tool, count, errors,
                              tool_errors, tokens, tokens_out, bytes, lat_count, lat_sum,
                              lat_min, lat_max, lat_hist)
    SELECT $1, t.hour_ns, t.server, t.method, t.tool, t.count, t.errors, t.tool_errors,
           t.tokens, t.tokens_out, t.bytes, t.lat_count, t.lat_sum, t.lat_min, t.lat_max,
           t.lat_hist::int8[]
    FROM unnest($2::int8[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[],
                $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[],
                $14::int8[], $15::int8[], $16::text[])
        AS t(hour_ns, server, method, tool, count, errors, tool_errors, tokens, tokens_out,
             bytes, lat_count, lat_sum, lat_min, lat_max, lat_hist)
    ON CONFLICT (account_id, hour_ns, server, method, tool) DO UPDATE SET
        count = r.count + excluded.count,
        errors = r.errors + excluded.errors,
        tool_errors = r.tool_errors + excluded.tool_errors,
        tokens = r.tokens + excluded.tokens,
        tokens_out = r.tokens_out + excluded.tokens_out,
        bytes = r.bytes + excluded.bytes,
        lat_count = r.lat_count + excluded.lat_count,
        lat_sum = r.lat_sum + excluded.lat_sum,
        lat_min = least(r.lat_min, excluded.lat_min),
        lat_max = greatest(r.lat_max, excluded.lat_max),
        lat_hist = ARRAY(
            SELECT coalesce(a, 0) + coalesce(b, 0)
            FROM unnest(r.lat_hist, excluded.lat_hist) WITH ORDINALITY AS h(a, b, i)
            ORDER BY i
        )
"""
_ACCOUNT_SELECT = "SELECT id, name, created_ns, retention_days FROM accounts"
_INSERT_AUDIT = """
    INSERT INTO audit_log (account_id, ts_ns, action, actor, target, detail, count, until_ns)
    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
"""
# The batch's events already stored. An event's identity is (account_id, id, ts_ns), the
# primary key of the day-partitioned table (postgres_schema.py), so "already stored" means the
# same id at the same ts_ns, as for the insert's ON CONFLICT. A join with the (id, ts_ns) pairs:
# one index probe per event, each in its day's partition only (~1.5 ms for 500), where
# `id = ANY(..) AND ts_ns = ANY(..)` scanned the cross product (~580 ms for 500 events over 10
# partitions: an older km's batches went in at ~3,300 events/s).
_EXISTING = """
    SELECT e.id::text, e.ts_ns FROM unnest($2::uuid[], $3::int8[]) AS t(id, ts_ns)
    JOIN events e ON e.account_id = $1 AND e.id = t.id AND e.ts_ns = t.ts_ns
"""
_KEY_SELECT = """
    SELECT k.id, k.account_id, a.name, k.key_hash, k.prefix, k.label, k.created_ns, k.revoked_ns
    FROM api_keys k JOIN accounts a ON a.id = k.account_id
"""


async def _audit(conn: Any, record: AuditRecord) -> None:
    await conn.execute(_INSERT_AUDIT, *audit_row(record))


class PostgresStore(EventStore):
    """Open with `await PostgresStore.open(dsn)`, then `migrate()`; `close()` when done.
    `schema` puts every table in that PostgreSQL schema (it must exist)."""

    def __init__(self, where: str, pool: asyncpg.Pool, schema: str | None = None) -> None:
        self.where = where
        self.schema = schema
        self._pool = pool
        self._closed = False

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        schema: str | None = None,
        min_size: int = POOL_MIN,
        max_size: int = POOL_MAX,
    ) -> PostgresStore:
        where = describe_dsn(dsn)
        settings = {"search_path": schema} if schema else None
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                server_settings=settings,
                timeout=CONNECT_TIMEOUT_S,
                connection_class=_Connection,
            )
        except _TRANSIENT as exc:
            raise StoreUnavailable(where, f"cannot connect ({exc})") from None
        except asyncpg.PostgresError as exc:
            raise StoreError(where, str(exc)) from None
        return cls(where, pool, schema)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pool.close()

    async def ping(self) -> None:
        async with self._guard():
            await self._pool.fetchval("SELECT 1", timeout=PING_TIMEOUT_S)

    async def migrate(self) -> int:
        latest = len(MIGRATIONS)
        async with self._transaction() as conn:
            # One migrator at a time per schema, across every replica.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('km:' || current_schema()))")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version integer PRIMARY KEY, applied_ns bigint NOT NULL)"
            )
            found = int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
            )
            if found > latest:
                raise StoreTooNew(self.where, found, latest)
            for version in range(found, latest):
                for statement in MIGRATIONS[version]:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES ($1, $2)", version + 1, time.time_ns()
                )
        return found

    # -- accounts and keys

    async def create_account(self, name: str, *, actor: str = OPERATOR) -> Account:
        now = time.time_ns()
        async with self._transaction() as conn:
            new_id = await conn.fetchval(
                "INSERT INTO accounts (name, created_ns) VALUES ($1, $2) "
                "ON CONFLICT (name) DO NOTHING RETURNING id",
                name,
                now,
            )
            if new_id is not None:
                await _audit(conn, AuditRecord(ACCOUNT_CREATED, actor, now, new_id, name))
            row = await conn.fetchrow(f"{_ACCOUNT_SELECT} WHERE name = $1", name)
        return Account(*row)

    async def list_accounts(self) -> list[Account]:
        rows = await self._fetch(f"{_ACCOUNT_SELECT} ORDER BY id")
        return [Account(*r) for r in rows]

    async def create_key(
        self,
        account_id: int,
        key_hash: str,
        prefix: str,
        label: str | None,
        *,
        actor: str = OPERATOR,
    ) -> ApiKeyRecord:
        now = time.time_ns()
        async with self._transaction() as conn:
            key_id = await conn.fetchval(
                "INSERT INTO api_keys (account_id, key_hash, prefix, label, created_ns) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                account_id,
                key_hash,
                prefix,
                label,
                now,
            )
            detail = {"key_id": key_id, "label": label}
            await _audit(conn, AuditRecord(KEY_CREATED, actor, now, account_id, prefix, detail))
            row = await conn.fetchrow(_KEY_SELECT + " WHERE k.id = $1", key_id)
        return ApiKeyRecord(*row)

    async def find_key(self, key_hash: str) -> ApiKeyRecord | None:
        rows = await self._fetch(_KEY_SELECT + " WHERE k.key_hash = $1", key_hash)
        return ApiKeyRecord(*rows[0]) if rows else None

    async def list_keys(self) -> list[ApiKeyRecord]:
        rows = await self._fetch(_KEY_SELECT + " ORDER BY k.id")
        return [ApiKeyRecord(*r) for r in rows]

    async def revoke_key(self, key_id: int, *, actor: str = OPERATOR) -> ApiKeyRecord | None:
        now = time.time_ns()
        async with self._transaction() as conn:
            changed = await conn.fetchval(
                "UPDATE api_keys SET revoked_ns = $1 WHERE id = $2 AND revoked_ns IS NULL "
                "RETURNING id",
                now,
                key_id,
            )
            row = await conn.fetchrow(_KEY_SELECT + " WHERE k.id = $1", key_id)
            key = ApiKeyRecord(*row) if row else None
            if changed is not None and key is not None:
                record = AuditRecord(
                    KEY_REVOKED, actor, now, key.account_id, key.prefix, {"key_id": key.id}
                )
                await _audit(conn, record)
        return key

    async def set_retention(
        self, account_id: int, days: int, *, actor: str = OPERATOR
    ) -> tuple[int, int] | None:
        check_days(days)
        async with self._transaction() as conn:
            row = await conn.fetchrow(f"{_ACCOUNT_SELECT} WHERE id = $1 FOR UPDATE", account_id)
            if row is None:
                return None
            account = Account(*row)
            if account.retention_days != days:
                await conn.execute(
                    "UPDATE accounts SET retention_days = $1 WHERE id = $2", days, account_id
                )
                detail = {"from": account.retention_days, "to": days}
                record = AuditRecord(
                    RETENTION_CHANGED, actor, time.time_ns(), account_id, account.name, detail
                )
                await _audit(conn, record)
        return account.retention_days, days

    # -- the audit log

    async def record_audit(self, records: Sequence[AuditRecord]) -> None:
        if records:
            async with self._transaction() as conn:
                await conn.executemany(_INSERT_AUDIT, [audit_row(r) for r in records])

    async def list_audit(
        self, account_id: int | None, cursor: str | None, limit: int
    ) -> Page[AuditEntry]:
        params = Params("numeric")
        where: list[str] = []
        if account_id is not None:
            where.append(f"account_id = {params.add(account_id)}")
        if cursor is not None:
            ts_ns, last_id = audit_position(cursor)
            where.append(f"(ts_ns, id) < ({params.add(ts_ns)}, {params.add(last_id)})")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._fetch(
            f"SELECT {AUDIT_COLUMNS.replace('detail', 'detail::text')} FROM audit_log{clause} "
            f"ORDER BY ts_ns DESC, id DESC LIMIT {params.add(limit + 1)}",
            *params.values,
        )
        items, next_cursor = audit_page(rows, limit)
        return Page(tuple(items), next_cursor)

    # -- retention (km/server/postgres_retention.py)

    async def enforce_retention(self, now_ns: int) -> RetentionReport:
        from km.server.stores.postgres_retention import enforce

        async with self._guard(), self._pool.acquire() as conn:
            return await enforce(conn, now_ns)

    # -- events

    async def ingest(
        self,
        account_id: int,
        events: Sequence[IngestEvent],
        insight: InsightWrites | Analyser | None = None,
    ) -> IngestResult:
        if not events:
            return IngestResult((), ())
        ordered = sorted(events, key=lambda e: e.id)  # lock order: see the module docstring
        async with self._ingest_transaction() as conn:
            before = None
            if callable(insight) and not all(e.analysed for e in events):
                # An older km's events get their insight fields before they are inserted (an
                # UPDATE after would rewrite every row and its indexes): analyse what is not
                # stored yet. (A concurrent copy of the same event inserted between this look-up
                # and the insert is not stored twice; only its findings are dropped below.)
                found = await conn.fetch(
                    _EXISTING, account_id, [e.id for e in events], [e.ts_ns for e in events]
                )
                existing = {(r[0], r[1]) for r in found}
                before = insight([e for e in events if (e.id, e.ts_ns) not in existing])
                analysed = {e.id: e for e in before.events}
                ordered = [analysed.get(e.id, e) for e in ordered]
            inserted = await _insert(conn, account_id, ordered)
            if before is not None:
                new = [e for e in before.events if e.id in inserted]
                writes = kept(analysis_writes(before), inserted)
            else:  # analysed after the insert: exactly the new events, in batch order
                new, writes = resolve(insight, [e for e in events if e.id in inserted])
            sessions, rollups = aggregate(new)
            if sessions:  # and so rollups: one statement upserts both
                await conn.execute(
                    _UPSERT_ROLLUPS,
                    account_id,
                    [r.hour_ns for r in rollups],
                    [r.server for r in rollups],
                    [r.method for r in rollups],
                    [r.tool for r in rollups],
                    [r.count for r in rollups],
                    [r.errors for r in rollups],
                    [r.tool_errors for r in rollups],
                    [r.tokens for r in rollups],
                    [r.tokens_out for r in rollups],
                    [r.bytes for r in rollups],
                    [r.lat_count for r in rollups],
                    [r.lat_sum for r in rollups],
                    [r.lat_min for r in rollups],
                    [r.lat_max for r in rollups],
                    ["{" + ",".join(map(str, r.hist)) + "}" for r in rollups],
                    [s.session_id for s in sessions],
                    [s.server for s in sessions],
                    [s.host for s in sessions],
                    [s.first_ts_ns for s in sessions],
                    [s.last_ts_ns for s in sessions],
                    [s.events for s in sessions],
                    [s.errors for s in sessions],
                )
            await postgres_insight.write(conn, account_id, writes)
        return IngestResult(
            tuple(e.id for e in events if e.id in inserted),
            tuple(e.id for e in events if e.id not in inserted),
        )

    async def list_sessions(
        self, account_id: int, cursor: str | None, limit: int, query: Filter | None = None
    ) -> Page[SessionSummary]:
        where = ""
        params: list[object] = [account_id]
        if cursor is not None:
            first_ts_ns, session_id = cursors.decode(SESSIONS_CURSOR, cursor)
            where = " AND (first_ts_ns, session_id) < ($2, $3)"
            params += [first_ts_ns, session_id]
        if query is not None:
            held = Params("numeric", *params)
            where += f" AND {sessions_query_sql(held, query)}"
            params = held.values
        rows = await self._fetch(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE account_id = $1{where} "
            f"ORDER BY first_ts_ns DESC, session_id DESC LIMIT ${len(params) + 1}",
            *params,
            limit + 1,
        )
        items, next_cursor = sessions_page(rows, limit)
        return Page(tuple(items), next_cursor)

    async def list_events(
        self, account_id: int, filters: EventFilter, cursor: str | None, limit: int
    ) -> Page[IngestEvent]:
        params = Params("numeric", account_id)
        where = event_where(params, filters, cursor, uuid_cast="::uuid")
        as_text = {"id": "id::text", "payload_json": "payload_json::text"}
        columns = ", ".join(as_text.get(c, c) for c in EVENT_COLUMNS)
        sql = (
            f"SELECT {columns} FROM events WHERE account_id = $1{where} "
            f"ORDER BY ts_ns, id LIMIT {params.add(limit + 1)}"
        )
        rows = await self._fetch(sql, *params.values)
        items, next_cursor = events_page(rows, limit)
        return Page(tuple(items), next_cursor)

    async def stats(
        self, account_id: int, since_ns: int | None, until_ns: int | None
    ) -> list[HourStat]:
        low, high = stats_range(since_ns, until_ns)
        rows = await self._fetch(
            f"SELECT {STATS_COLUMNS} FROM rollups "
            "WHERE account_id = $1 AND hour_ns > $2 AND hour_ns < $3 "
            "ORDER BY hour_ns, server, method, tool",
            account_id,
            low,
            high,
        )
        return [stat_from_row(r, r[8]) for r in rows]

    # -- insight

    async def list_findings(
        self, account_id: int, filters: FindingFilter, cursor: str | None, limit: int
    ) -> Page[StoredFinding]:
        params = Params("numeric", account_id)
        where = finding_where(params, filters, cursor, uuid_cast="::uuid")
        rows = await self._fetch(
            f"{postgres_insight.SELECT_FINDINGS}{where} "
            f"ORDER BY ts_ns, id LIMIT {params.add(limit + 1)}",
            *params.values,
        )
        items, next_cursor = findings_page(rows, limit)
        return Page(tuple(items), next_cursor)

    async def definitions(self, account_id: int, server: str | None) -> list[StoredDefinition]:
        sql, params = postgres_insight.by_server(
            postgres_insight.SELECT_DEFINITIONS, account_id, server
        )
        rows = await self._fetch(sql + " ORDER BY server, kind, tool, first_seen_ns", *params)
        return [definition_from_row(r) for r in rows]

    async def pins(self, account_id: int, server: str) -> list[Pin]:
        sql, params = postgres_insight.by_server(postgres_insight.SELECT_PINS, account_id, server)
        return [Pin(*r) for r in await self._fetch(sql + " ORDER BY tool", *params)]

    async def inventory(self, account_id: int, server: str | None) -> Inventory:
        definitions = await self.definitions(account_id, server)
        sql, params = postgres_insight.by_server(
            postgres_insight.SELECT_CHANGES, account_id, server
        )
        changes = await self._fetch(sql + " ORDER BY ts_ns, id", *params)
        sql, params = postgres_insight.by_server(postgres_insight.SELECT_PINS, account_id, server)
        pins = await self._fetch(sql + " ORDER BY server, tool", *params)
        return Inventory(
            tuple(definitions),
            tuple(change_from_row(r) for r in changes),
            tuple(Pin(*r) for r in pins),
        )

    async def approve(self, account_id: int, server: str, tool: str | None) -> list[Pin]:
        now = time.time_ns()
        async with self._transaction() as conn:
            rows = await conn.fetch(
                postgres_insight.SELECT_DEFINITIONS + " AND server = $2 AND kind = $3",
                account_id,
                server,
                TOOLS_LIST,
            )
            current = current_definitions([definition_from_row(r) for r in rows])
            chosen = pins_to_set(current.get((server, TOOLS_LIST), {}), tool)
            if chosen:
                await conn.executemany(
                    postgres_insight.UPSERT_PIN,
                    [(account_id, server, name, digest, now) for name, digest in chosen],
                )
        return [Pin(server, name, digest, now) for name, digest in chosen]

    # -- plumbing

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        if self._closed:
            raise StoreUnavailable(self.where, "the store is closed")
        try:
            yield
        except _TRANSIENT as exc:
            raise StoreUnavailable(self.where, f"{type(exc).__name__}: {exc}") from None
        except asyncpg.PostgresError as exc:
            raise StoreError(self.where, f"{type(exc).__name__}: {exc}") from None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        async with self._guard(), self._pool.acquire() as conn:
            async with conn.transaction():
                yield conn
            conn.left_no_state()

    @asynccontextmanager
    async def _ingest_transaction(self) -> AsyncIterator[Any]:
        """A transaction as `_transaction`'s, whose end `_insert` may replace with a new one
        (asyncpg's `transaction()` would refuse)."""
        async with self._guard(), self._pool.acquire() as conn:
            await conn.execute("BEGIN")
            try:
                yield conn
            except BaseException:
                # Else the pool rolls back as it takes the connection back (and logs it).
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")
            conn.left_no_state()

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        async with self._guard(), self._pool.acquire() as conn:
            rows = list(await conn.fetch(sql, *args))
            conn.left_no_state()
            return rows


class _Connection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg is untyped
    """asyncpg's connection, whose reset as the pool takes it back sends nothing after a use
    that cannot have left session state (plain statements, a transaction that ended), marked
    with `left_no_state()`: asyncpg's reset query (advisory unlocks, CLOSE ALL, UNLISTEN,
    RESET ALL) is a round trip on every release, two of a dozen per ingest request. Any other
    use (retention's session lock and `SET`, a failed transaction) gets the full reset."""

    __slots__ = ("_km_no_state",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._km_no_state = False

    def left_no_state(self) -> None:
        self._km_no_state = True

    def get_reset_query(self) -> str:
        if self._km_no_state:
            self._km_no_state = False
            return ""
        query: str = super().get_reset_query()
        return query


async def _insert(conn: Any, account_id: int, ordered: Sequence[IngestEvent]) -> set[str]:
    """Store the events (sorted by id) that are not stored yet; their ids. Begins a new
    transaction when the batch holds one that is (see `_STAGING`): anything done before in the
    transaction is undone then, so only reads may come before."""
    records = _records(account_id, ordered, time.time_ns())
    try:
        await conn.copy_records_to_table("events", records=records, columns=_COPY_COLUMNS)
    except asyncpg.UniqueViolationError:
        await conn.execute(_RESTART_STAGED)
        await conn.copy_records_to_table(_STAGING, records=records, columns=_COPY_COLUMNS)
        return {r[0] for r in await conn.fetch(_INSERT_STAGED)}
    return {e.id for e in ordered}


def _records(
    account_id: int, events: Sequence[IngestEvent], received_ns: int
) -> list[tuple[object, ...]]:
    """COPY rows, `_COPY_COLUMNS`."""
    records: list[tuple[object, ...]] = []
    for e in events:
        json, text, blob = to_columns(e.payload, e.truncated)
        records.append(
            (
                account_id, e.id, e.session_id, e.server, e.direction, e.ts_ns, e.kind,
                e.method, e.rpc_id, e.size, json, text, blob, e.payload_encoding, e.truncated,
                e.link_id, e.latency_us, e.host, e.km_version, e.tool, e.status, e.tokens,
                e.risk, received_ns,
            )
        )  # fmt: skip
    return records
