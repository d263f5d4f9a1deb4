"""The embedded store: one SQLite file in WAL mode, through aiosqlite.

Two connections: a writer, used one transaction at a time under an asyncio lock (`BEGIN
IMMEDIATE`, so other processes on the same file queue on SQLite's lock), and a reader, which in
WAL mode never waits for the writer and never sees a transaction half done.
`synchronous=FULL`: an event the API acknowledged survives a power cut (the client deletes it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiosqlite
import orjson

from km.insight.filter import Filter
from km.server import cursor as cursors
from km.server import latency
from km.server.audit import (
    ACCOUNT_CREATED,
    AUDIT_RETENTION_DAYS,
    KEY_CREATED,
    KEY_REVOKED,
    OPERATOR,
    RETENTION_CHANGED,
    AuditEntry,
    AuditRecord,
)
from km.server.errors import StoreError, StoreTooNew, StoreUnavailable
from km.server.retention import PURGE_BATCH, check_days, cutoff_ns
from km.server.stores import sqlite_insight
from km.server.stores.aggregate import HOUR_NS, aggregate
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
    FINDING_COLUMNS,
    TOOLS_LIST,
    Analyser,
    FindingFilter,
    InsightWrites,
    Inventory,
    Pin,
    StoredDefinition,
    StoredFinding,
    change_from_row,
    current_definitions,
    definition_from_row,
    finding_where,
    findings_page,
    pins_to_set,
    resolve,
)
from km.server.stores.payload import to_columns
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
from km.server.stores.sqlite_schema import MIGRATIONS

log = logging.getLogger("km.server")

PRIVATE_DIR = 0o700  # a new database directory: only its owner may list it
PRIVATE_FILE = 0o600  # a new database file (SQLite gives -wal and -shm the same mode)
BUSY_TIMEOUT_MS = 5000  # wait this long for another process's write lock before 503
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

_INSERT_EVENT = f"""
    INSERT INTO events (account_id, {", ".join(EVENT_COLUMNS)}, received_ns)
    VALUES ({", ".join("?" * (len(EVENT_COLUMNS) + 2))})
"""
_UPSERT_SESSION = """
    INSERT INTO sessions (account_id, session_id, server, host, first_ts_ns, last_ts_ns,
                          events, errors)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (account_id, session_id) DO UPDATE SET
        host = coalesce(host, excluded.host),
        first_ts_ns = min(first_ts_ns, excluded.first_ts_ns),
        last_ts_ns = max(last_ts_ns, excluded.last_ts_ns),
        events = events + excluded.events,
        errors = errors + excluded.errors
"""
# lat_hist arrives already merged with the stored one (read under the same write lock).
_UPSERT_ROLLUP = """
    INSERT INTO rollups (account_id, hour_ns, server, method, tool, count, errors, tool_errors,
                         tokens, tokens_out, bytes, lat_count, lat_sum, lat_min, lat_max,
                         lat_hist)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (account_id, hour_ns, server, method, tool) DO UPDATE SET
        count = count + excluded.count,
        errors = errors + excluded.errors,
        tool_errors = tool_errors + excluded.tool_errors,
        tokens = tokens + excluded.tokens,
        tokens_out = tokens_out + excluded.tokens_out,
        bytes = bytes + excluded.bytes,
        lat_count = lat_count + excluded.lat_count,
        lat_sum = lat_sum + excluded.lat_sum,
        lat_min = min(coalesce(lat_min, excluded.lat_min), coalesce(excluded.lat_min, lat_min)),
        lat_max = max(coalesce(lat_max, excluded.lat_max), coalesce(excluded.lat_max, lat_max)),
        lat_hist = excluded.lat_hist
"""
_ACCOUNT_SELECT = "SELECT id, name, created_ns, retention_days FROM accounts"
_INSERT_AUDIT = """
    INSERT INTO audit_log (account_id, ts_ns, action, actor, target, detail, count, until_ns)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
# Primary keys of the WITHOUT ROWID tables and of those whose rowid is not their key, for
# deleting in batches (the other tables go by rowid).
_KEYS = {
    "sessions": "account_id, session_id",
    "rollups": "account_id, hour_ns, server, method, tool",
    "tool_definitions": "account_id, server, kind, tool, hash",
}
_KEY_SELECT = """
    SELECT k.id, k.account_id, a.name, k.key_hash, k.prefix, k.label, k.created_ns, k.revoked_ns
    FROM api_keys k JOIN accounts a ON a.id = k.account_id
"""


class SqliteStore(EventStore):
    """Open with `await SqliteStore.open(path)`, then `migrate()`; `close()` when done."""

    def __init__(self, path: str, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        if path != ":memory:":
            _create_private(path)
        connections: list[aiosqlite.Connection] = []
        try:
            for _ in range(2):
                conn = await aiosqlite.connect(path, isolation_level=None)
                connections.append(conn)
                await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
                await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute("PRAGMA synchronous = FULL")
                await conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            for conn in connections:
                await conn.close()
            raise _classify(path, exc) from None
        if path != ":memory:":
            _warn_if_readable(path)
        return cls(path, connections[0], connections[1])

    # -- lifecycle

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._write_lock:
            await self._writer.close()
        await self._reader.close()

    async def ping(self) -> None:
        async with self._guard():
            await self._reader.execute_fetchall("SELECT 1")

    async def migrate(self) -> int:
        latest = len(MIGRATIONS)
        async with self._transaction() as w:
            await w.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_ns INTEGER NOT NULL)"
            )
            rows = await w.execute_fetchall(
                "SELECT coalesce(max(version), 0) FROM schema_migrations"
            )
            found = int(next(iter(rows))[0])
            if found > latest:
                raise StoreTooNew(self.path, found, latest)
            for version in range(found, latest):
                for statement in MIGRATIONS[version]:
                    await w.execute(statement)
                await w.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?)", (version + 1, time.time_ns())
                )
        return found

    # -- accounts and keys

    async def create_account(self, name: str, *, actor: str = OPERATOR) -> Account:
        now = time.time_ns()
        async with self._transaction() as w:
            cur = await w.execute(
                "INSERT INTO accounts (name, created_ns) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, now),
            )
            if cur.rowcount == 1:
                await _audit(w, AuditRecord(ACCOUNT_CREATED, actor, now, cur.lastrowid, name))
            rows = await w.execute_fetchall(f"{_ACCOUNT_SELECT} WHERE name = ?", (name,))
        return Account(*next(iter(rows)))

    async def list_accounts(self) -> list[Account]:
        rows = await self._read(f"{_ACCOUNT_SELECT} ORDER BY id", ())
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
        async with self._transaction() as w:
            cur = await w.execute(
                "INSERT INTO api_keys (account_id, key_hash, prefix, label, created_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                (account_id, key_hash, prefix, label, now),
            )
            detail = {"key_id": cur.lastrowid, "label": label}
            await _audit(w, AuditRecord(KEY_CREATED, actor, now, account_id, prefix, detail))
            rows = await w.execute_fetchall(_KEY_SELECT + " WHERE k.id = ?", (cur.lastrowid,))
        return ApiKeyRecord(*next(iter(rows)))

    async def find_key(self, key_hash: str) -> ApiKeyRecord | None:
        rows = await self._read(_KEY_SELECT + " WHERE k.key_hash = ?", (key_hash,))
        return ApiKeyRecord(*rows[0]) if rows else None

    async def list_keys(self) -> list[ApiKeyRecord]:
        rows = await self._read(_KEY_SELECT + " ORDER BY k.id", ())
        return [ApiKeyRecord(*r) for r in rows]

    async def revoke_key(self, key_id: int, *, actor: str = OPERATOR) -> ApiKeyRecord | None:
        now = time.time_ns()
        async with self._transaction() as w:
            cur = await w.execute(
                "UPDATE api_keys SET revoked_ns = ? WHERE id = ? AND revoked_ns IS NULL",
                (now, key_id),
            )
            rows = await w.execute_fetchall(_KEY_SELECT + " WHERE k.id = ?", (key_id,))
            key = ApiKeyRecord(*next(iter(rows))) if rows else None
            if cur.rowcount == 1 and key is not None:
                record = AuditRecord(
                    KEY_REVOKED, actor, now, key.account_id, key.prefix, {"key_id": key.id}
                )
                await _audit(w, record)
        return key

    async def set_retention(
        self, account_id: int, days: int, *, actor: str = OPERATOR
    ) -> tuple[int, int] | None:
        check_days(days)
        async with self._transaction() as w:
            rows = list(await w.execute_fetchall(f"{_ACCOUNT_SELECT} WHERE id = ?", (account_id,)))
            if not rows:
                return None
            account = Account(*rows[0])
            if account.retention_days != days:
                await w.execute(
                    "UPDATE accounts SET retention_days = ? WHERE id = ?", (days, account_id)
                )
                detail = {"from": account.retention_days, "to": days}
                record = AuditRecord(
                    RETENTION_CHANGED, actor, time.time_ns(), account_id, account.name, detail
                )
                await _audit(w, record)
        return account.retention_days, days

    # -- the audit log

    async def record_audit(self, records: Sequence[AuditRecord]) -> None:
        if records:
            async with self._transaction() as w:
                await w.executemany(_INSERT_AUDIT, [audit_row(r) for r in records])

    async def list_audit(
        self, account_id: int | None, cursor: str | None, limit: int
    ) -> Page[AuditEntry]:
        params: list[object] = []
        where: list[str] = []
        if account_id is not None:
            where.append("account_id = ?")
            params.append(account_id)
        if cursor is not None:
            ts_ns, last_id = audit_position(cursor)
            where.append("ts_ns <= ? AND (ts_ns < ? OR id < ?)")
            params += [ts_ns, ts_ns, last_id]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._read(
            f"SELECT {AUDIT_COLUMNS} FROM audit_log{clause} ORDER BY ts_ns DESC, id DESC LIMIT ?",
            (*params, limit + 1),
        )
        items, next_cursor = audit_page(rows, limit)
        return Page(tuple(items), next_cursor)

    # -- retention

    async def enforce_retention(self, now_ns: int) -> RetentionReport:
        report = RetentionReport()
        for account in await self.list_accounts():
            cutoff = cutoff_ns(now_ns, account.retention_days)
            report.events_deleted += await self._purge(
                "events", "account_id = ? AND ts_ns < ?", (account.id, cutoff)
            )
            report.sessions_deleted += await self._purge(
                "sessions", "account_id = ? AND last_ts_ns < ?", (account.id, cutoff)
            )
            report.rollups_deleted += await self._purge(
                "rollups", "account_id = ? AND hour_ns <= ?", (account.id, cutoff - HOUR_NS)
            )
            # The insight tables: findings and definition changes by when they happened, tool
            # definitions not seen since the cutoff (pins, the operator's choices, stay).
            report.findings_deleted += await self._purge(
                "findings", "account_id = ? AND ts_ns < ?", (account.id, cutoff)
            )
            report.changes_deleted += await self._purge(
                "definition_changes", "account_id = ? AND ts_ns < ?", (account.id, cutoff)
            )
            report.definitions_deleted += await self._purge(
                "tool_definitions", "account_id = ? AND last_seen_ns < ?", (account.id, cutoff)
            )
        audit_cutoff = cutoff_ns(now_ns, AUDIT_RETENTION_DAYS)
        report.audit_deleted = await self._purge("audit_log", "ts_ns < ?", (audit_cutoff,))
        return report

    async def _purge(self, table: str, where: str, params: tuple[object, ...]) -> int:
        """Delete matching rows `PURGE_BATCH` at a time, each batch its own short write
        transaction, so ingest waits for one batch at most."""
        key = _KEYS.get(table, "rowid")
        total = 0
        while True:
            async with self._transaction() as w:
                cur = await w.execute(
                    f"DELETE FROM {table} WHERE ({key}) IN "
                    f"(SELECT {key} FROM {table} WHERE {where} LIMIT {PURGE_BATCH:d})",
                    params,
                )
                deleted = cur.rowcount
            total += deleted
            if deleted < PURGE_BATCH:
                return total
            await asyncio.sleep(0)  # let waiting requests in between batches

    # -- events

    async def ingest(
        self,
        account_id: int,
        events: Sequence[IngestEvent],
        insight: InsightWrites | Analyser | None = None,
    ) -> IngestResult:
        if not events:
            return IngestResult((), ())
        ids = orjson.dumps([e.id for e in events]).decode()
        now = time.time_ns()
        async with self._transaction() as w:
            # Under the write lock nobody else can insert, so "not there yet" means "new".
            rows = await w.execute_fetchall(
                "SELECT id FROM events WHERE account_id = ? "
                "AND id IN (SELECT value FROM json_each(?))",
                (account_id, ids),
            )
            existing = {r[0] for r in rows}
            # Under the same lock, the analysis can come before the insert: no UPDATE needed.
            new, writes = resolve(insight, [e for e in events if e.id not in existing])
            await w.executemany(_INSERT_EVENT, [_event_row(account_id, e, now) for e in new])
            sessions, rollups = aggregate(new)
            await w.executemany(
                _UPSERT_SESSION,
                [
                    (
                        account_id,
                        s.session_id,
                        s.server,
                        s.host,
                        s.first_ts_ns,
                        s.last_ts_ns,
                        s.events,
                        s.errors,
                    )
                    for s in sessions
                ],
            )
            for r in rollups:
                found = await w.execute_fetchall(
                    "SELECT lat_hist FROM rollups WHERE account_id = ? AND hour_ns = ? "
                    "AND server = ? AND method = ? AND tool = ?",
                    (account_id, r.hour_ns, r.server, r.method, r.tool),
                )
                hist = latency.empty()
                for (stored,) in found:
                    latency.merge(hist, orjson.loads(stored))
                latency.merge(hist, r.hist)
                await w.execute(
                    _UPSERT_ROLLUP,
                    (
                        account_id,
                        r.hour_ns,
                        r.server,
                        r.method,
                        r.tool,
                        r.count,
                        r.errors,
                        r.tool_errors,
                        r.tokens,
                        r.tokens_out,
                        r.bytes,
                        r.lat_count,
                        r.lat_sum,
                        r.lat_min,
                        r.lat_max,
                        orjson.dumps(hist).decode(),
                    ),
                )
            await sqlite_insight.write(w, account_id, writes)
        return IngestResult(
            tuple(e.id for e in new), tuple(e.id for e in events if e.id in existing)
        )

    async def list_sessions(
        self, account_id: int, cursor: str | None, limit: int, query: Filter | None = None
    ) -> Page[SessionSummary]:
        where = ""
        params: list[object] = [account_id]
        if cursor is not None:
            first_ts_ns, session_id = cursors.decode(SESSIONS_CURSOR, cursor)
            where = " AND first_ts_ns <= ? AND (first_ts_ns < ? OR session_id < ?)"
            params += [first_ts_ns, first_ts_ns, session_id]
        if query is not None:
            held = Params("qmark")
            where += f" AND {sessions_query_sql(held, query)}"
            params += held.values
        rows = await self._read(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE account_id = ?{where} "
            "ORDER BY first_ts_ns DESC, session_id DESC LIMIT ?",
            (*params, limit + 1),
        )
        items, next_cursor = sessions_page(rows, limit)
        return Page(tuple(items), next_cursor)

    async def list_events(
        self, account_id: int, filters: EventFilter, cursor: str | None, limit: int
    ) -> Page[IngestEvent]:
        params = Params("qmark", account_id)
        where = event_where(params, filters, cursor, uuid_cast="")
        if filters.tool is not None:
            index = "events_account_tool_ts"
        elif filters.session_id is not None:
            index = "events_account_session_ts"
        else:
            index = "events_account_ts"
        sql = (
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events INDEXED BY {index} "
            f"WHERE account_id = ?{where} ORDER BY ts_ns, id LIMIT {params.add(limit + 1)}"
        )
        rows = await self._read(sql, tuple(params.values))
        items, next_cursor = events_page(rows, limit)
        return Page(tuple(items), next_cursor)

    async def stats(
        self, account_id: int, since_ns: int | None, until_ns: int | None
    ) -> list[HourStat]:
        low, high = stats_range(since_ns, until_ns)
        rows = await self._read(
            f"SELECT {STATS_COLUMNS} FROM rollups "
            "WHERE account_id = ? AND hour_ns > ? AND hour_ns < ? "
            "ORDER BY hour_ns, server, method, tool",
            (account_id, low, high),
        )
        return [stat_from_row(r, orjson.loads(r[8])) for r in rows]

    # -- insight

    async def list_findings(
        self, account_id: int, filters: FindingFilter, cursor: str | None, limit: int
    ) -> Page[StoredFinding]:
        params = Params("qmark", account_id)
        where = finding_where(params, filters, cursor, uuid_cast="")
        rows = await self._read(
            f"SELECT {FINDING_COLUMNS} FROM findings WHERE account_id = ?{where} "
            f"ORDER BY ts_ns, id LIMIT {params.add(limit + 1)}",
            tuple(params.values),
        )
        items, next_cursor = findings_page(rows, limit)
        return Page(tuple(items), next_cursor)

    async def definitions(self, account_id: int, server: str | None) -> list[StoredDefinition]:
        sql, params = sqlite_insight.by_server(
            sqlite_insight.SELECT_DEFINITIONS, account_id, server
        )
        rows = await self._read(sql + " ORDER BY server, kind, tool, first_seen_ns", params)
        return [definition_from_row(r) for r in rows]

    async def pins(self, account_id: int, server: str) -> list[Pin]:
        sql, params = sqlite_insight.by_server(sqlite_insight.SELECT_PINS, account_id, server)
        return [Pin(*r) for r in await self._read(sql + " ORDER BY tool", params)]

    async def inventory(self, account_id: int, server: str | None) -> Inventory:
        definitions = await self.definitions(account_id, server)
        sql, params = sqlite_insight.by_server(sqlite_insight.SELECT_CHANGES, account_id, server)
        changes = await self._read(sql + " ORDER BY ts_ns, id", params)
        sql, params = sqlite_insight.by_server(sqlite_insight.SELECT_PINS, account_id, server)
        pins = await self._read(sql + " ORDER BY server, tool", params)
        return Inventory(
            tuple(definitions),
            tuple(change_from_row(r) for r in changes),
            tuple(Pin(*r) for r in pins),
        )

    async def approve(self, account_id: int, server: str, tool: str | None) -> list[Pin]:
        now = time.time_ns()
        async with self._transaction() as w:
            rows = await w.execute_fetchall(
                sqlite_insight.SELECT_DEFINITIONS + " AND server = ? AND kind = ?",
                (account_id, server, TOOLS_LIST),
            )
            current = current_definitions([definition_from_row(r) for r in rows])
            chosen = pins_to_set(current.get((server, TOOLS_LIST), {}), tool)
            await w.executemany(
                sqlite_insight.UPSERT_PIN,
                [(account_id, server, name, digest, now) for name, digest in chosen],
            )
        return [Pin(server, name, digest, now) for name, digest in chosen]

    # -- plumbing

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        if self._closed:
            raise StoreUnavailable(self.path, "the store is closed")
        try:
            yield
        except sqlite3.Error as exc:
            raise _classify(self.path, exc) from None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._guard(), self._write_lock:
            w = self._writer
            if w.in_transaction:  # left open by a cancelled caller
                await w.execute("ROLLBACK")
            await w.execute("BEGIN IMMEDIATE")
            try:
                yield w
            except BaseException:
                with suppress(sqlite3.Error):
                    await w.execute("ROLLBACK")
                raise
            await w.execute("COMMIT")

    async def _read(self, sql: str, params: Sequence[object]) -> list[Any]:
        async with self._guard():
            return list(await self._reader.execute_fetchall(sql, params))


async def _audit(w: aiosqlite.Connection, record: AuditRecord) -> None:
    await w.execute(_INSERT_AUDIT, audit_row(record))


def _create_private(path: str) -> None:
    """The database's directory (0700) and file (0600), created private when missing, as the
    spool is. SQLite creates `-wal` and `-shm` with the database file's mode."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        try:
            os.makedirs(parent, mode=PRIVATE_DIR, exist_ok=True)
            os.chmod(parent, PRIVATE_DIR)  # makedirs' mode is filtered by the umask
        except OSError as exc:
            raise StoreError(path, f"cannot create {parent}: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(path, f"cannot create the database file: {exc.strerror}") from None
    os.close(fd)


def _warn_if_readable(path: str) -> None:
    """One warning line when others can read the database (it holds captured traffic)."""
    loose = []
    for name in (path, path + "-wal", path + "-shm"):
        try:
            mode = os.stat(name).st_mode & 0o777
        except OSError:
            continue
        if mode & 0o077:
            loose.append(f"{os.path.basename(name)} mode {mode:03o}")
    if loose:
        log.warning(
            "%s is readable by other users (%s): it holds captured traffic; "
            "`chmod 600 %s*` to make it private",
            path, ", ".join(loose), path,
        )  # fmt: skip


def _event_row(account_id: int, e: IngestEvent, now: int) -> tuple[object, ...]:
    json, text, blob = to_columns(e.payload, e.truncated)
    return (
        account_id, e.id, e.session_id, e.server, e.direction, e.ts_ns, e.kind, e.method,
        e.rpc_id, e.size, json, text, blob, e.payload_encoding, int(e.truncated), e.link_id,
        e.latency_us, e.host, e.km_version, e.tool, e.status, e.tokens, e.risk, now,
    )  # fmt: skip


def _classify(path: str, exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in _BUSY_CODES:
        return StoreUnavailable(path, f"the database is busy ({exc})")
    return StoreError(path, str(exc))
