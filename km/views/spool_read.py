"""Reading the spool for the views: read-only (the spool is never changed, never created),
one filter compiled to SQL, columns a spool lacks (one written by an older km) read as NULL.

`SpoolReader.open(path)` raises `NoSpool` when there is no spool yet, a `SpoolError` when it
cannot be read.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from km.errors import KmError
from km.insight.filter import Filter
from km.insight.filter_sql import SqlTarget, to_sql
from km.spool.errors import SpoolTooNew, classify_sqlite
from km.spool.schema import SCHEMA_VERSION, schema_version
from km.spool.tokens import fill_tokens
from km.views.exchange import Row

READ_BUSY_TIMEOUT_MS = 2000
BASE_COLUMNS = (
    "seq", "id", "session_id", "server", "direction", "ts_ns", "kind", "method", "rpc_id",
    "size", "link_id", "latency_us",
)  # fmt: skip
INSIGHT_COLUMNS = ("tool", "status", "tokens", "risk")


class NoSpool(KmError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"no spool at {path} yet: run an MCP server through km first (or pass --spool PATH)"
        )
        self.path = path


class UnknownSession(KmError):
    """No session (or more than one) has this id or prefix. Exit code 1."""


@dataclass(frozen=True, slots=True)
class SessionRow:
    session_id: str
    server: str
    host: str | None
    command: str
    started_ns: int
    ended_ns: int | None
    last_capture_ns: int | None
    exit_code: int | None
    dropped_frames: int
    dropped_bytes: int


class SpoolReader:
    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.path = path
        self.columns = frozenset(r[1] for r in conn.execute("PRAGMA table_info(events)"))
        names = {(r[0], r[1]) for r in conn.execute("SELECT type, name FROM sqlite_master")}
        self.has_findings = ("table", "findings") in names
        self.indexes = {name for kind, name in names if kind == "index"}
        self.target = SqlTarget(columns=self.columns, findings=self.has_findings)
        self._select = ", ".join(
            [f"e.{c}" for c in BASE_COLUMNS]
            + [f"e.{c}" if c in self.columns else "NULL" for c in INSIGHT_COLUMNS]
            + ["e.truncated"]
        )

    @classmethod
    def open(cls, path: str) -> SpoolReader:
        path = os.path.abspath(path)
        if not os.path.exists(path):
            raise NoSpool(path)
        fill_tokens(path)  # what the capture processes left to be counted (km/spool/tokens.py)
        try:
            conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise classify_sqlite(path, exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS:d}")
            version = schema_version(conn)
            if version > SCHEMA_VERSION:
                raise SpoolTooNew(path, version, SCHEMA_VERSION)
            if version == 0:
                raise NoSpool(path)
            return cls(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise classify_sqlite(path, exc) from exc
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def query(self, sql: str, params: list[object]) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise classify_sqlite(self.path, exc) from exc

    def where(self, flt: Filter | None, params: list[object]) -> str:
        return "1" if flt is None else to_sql(flt, self.target, params)

    # -- events

    def last_seq(self) -> int:
        row = self.query("SELECT max(seq) FROM events", []).fetchone()
        return int(row[0] or 0)

    def first_seq(self) -> int:
        row = self.query("SELECT min(seq) FROM events", []).fetchone()
        return int(row[0] or 0)

    def batch(self, flt: Filter | None, after: int, limit: int) -> list[tuple[Row, bool]]:
        """Events with seq > `after`, oldest first, each with whether `flt` selects it."""
        params: list[object] = []
        hit = self.where(flt, params)
        sql = (
            f"SELECT {self._select}, {hit}, CASE WHEN e.kind = 'dropped' THEN e.payload END"
            " FROM events e WHERE e.seq > ? ORDER BY e.seq LIMIT ?"
        )
        rows = self.query(sql, [*params, after, limit]).fetchall()
        return [(_row(r, r[-1]), bool(r[-2])) for r in rows]

    def seq_before(self, flt: Filter | None, count: int, since_seq: int = 0) -> int:
        """The seq after which the last `count` selected events start."""
        if count <= 0:
            return self.last_seq()
        params: list[object] = []
        where = self.where(flt, params)
        row = self.query(
            f"SELECT e.seq FROM events e WHERE e.seq > ? AND {where} ORDER BY e.seq DESC"
            " LIMIT 1 OFFSET ?",
            [since_seq, *params, count - 1],
        ).fetchone()
        return since_seq if row is None else int(row[0]) - 1

    def session_events(
        self, session_id: str, flt: Filter | None, with_payload: bool
    ) -> Iterator[tuple[Row, bool]]:
        params: list[object] = []
        hit = self.where(flt, params)
        payload = (
            ", e.payload" if with_payload else ", CASE WHEN e.kind = 'dropped' THEN e.payload END"
        )
        sql = (
            f"SELECT {self._select}, {hit}{payload} FROM events e WHERE e.session_id = ?"
            " ORDER BY e.seq"
        )
        for r in self.query(sql, [*params, session_id]):
            yield _row(r, r[-1]), bool(r[-2])

    def findings(self, session_id: str) -> list[dict[str, Any]]:
        if not self.has_findings:
            return []
        cur = self.query("SELECT * FROM findings WHERE session_id = ? ORDER BY ts_ns", [session_id])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur]

    # -- sessions

    def session(self, prefix: str) -> SessionRow:
        """The session whose id is `prefix` or starts with it; `UnknownSession` otherwise."""
        exact = self.query(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?", [prefix]
        ).fetchall()
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = (
            exact
            or self.query(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id LIKE ? ESCAPE '\\'"
                " LIMIT 3",
                [like],
            ).fetchall()
        )
        exact = [r for r in rows if r[0] == prefix]
        if exact:
            return SessionRow(*exact[0])
        if not rows:
            raise UnknownSession(f"no session {prefix!r} in the spool (km sessions lists them)")
        if len(rows) > 1:
            raise UnknownSession(
                f"session prefix {prefix!r} is ambiguous: it starts "
                f"{'more than two' if len(rows) > 2 else 'two'} sessions; type more of it"
            )
        return SessionRow(*rows[0])

    def sessions(self, flt: Filter | None, limit: int) -> list[SessionRow]:
        """The newest `limit` sessions with at least one event `flt` selects (all sessions,
        events or not, without a filter)."""
        params: list[object] = []
        where = ""
        if flt is not None:
            # server and session_id are the session's own: decided once per session, not per event
            elsewhere = (("server", "s.server"), ("session_id", "s.session_id"))
            inner = to_sql(flt, replace(self.target, elsewhere=elsewhere), params)
            where = (
                f" WHERE EXISTS (SELECT 1 FROM events e WHERE e.session_id = s.session_id"
                f" AND {inner})"
            )
        rows = self.query(
            f"SELECT {_SESSION_COLUMNS} FROM sessions s{where}"
            " ORDER BY s.started_ns DESC, s.session_id DESC LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [SessionRow(*r) for r in rows]

    def session_stats(self, session_id: str) -> dict[str, Any]:
        """calls, errors, tokens, events, last_ts_ns, p50/p95 latency (us) and findings."""
        has = self.columns.__contains__
        errors = (
            "sum(kind = 'error' OR status IN ('error', 'tool-error'))"
            if has("status")
            else "sum(kind = 'error')"
        )
        tokens = "sum(tokens)" if has("tokens") else "NULL"
        # Requests have no latency: their count is one seek into (session_id, NULL, 'request').
        (calls,) = self.query(
            "SELECT count(*) FROM events WHERE session_id = ? AND latency_us IS NULL"
            " AND kind = 'request'",
            [session_id],
        ).fetchone()
        errs, toks, events, replies = self.query(
            f"SELECT coalesce({errors}, 0), {tokens}, count(*), count(latency_us)"
            " FROM events WHERE session_id = ?",
            [session_id],
        ).fetchone()
        stats: dict[str, Any] = {
            "calls": calls,
            "errors": errs,
            "tokens": toks,
            "events": events,
            "latency_p50_us": self._latency_at(session_id, replies, 0.50),
            "latency_p95_us": self._latency_at(session_id, replies, 0.95),
            "findings": 0,
        }
        if self.has_findings:
            (stats["findings"],) = self.query(
                "SELECT count(*) FROM findings WHERE session_id = ?", [session_id]
            ).fetchone()
        return stats

    def _latency_at(self, session_id: str, n: int, share: float) -> int | None:
        if n == 0:
            return None
        offset = min(n - 1, int(share * n))
        row = self.query(
            "SELECT latency_us FROM events WHERE session_id = ? AND latency_us IS NOT NULL"
            " ORDER BY latency_us LIMIT 1 OFFSET ?",
            [session_id, offset],
        ).fetchone()
        return None if row is None else int(row[0])


_SESSION_COLUMNS = (
    "session_id, server, host, command, started_ns, ended_ns, last_capture_ns, exit_code,"
    " dropped_frames, dropped_bytes"
)


def _row(r: Any, payload: bytes | None = None) -> Row:
    return Row(
        seq=r[0], id=r[1], session_id=r[2], server=r[3], direction=r[4], ts_ns=r[5], kind=r[6],
        method=r[7], rpc_id=r[8], size=r[9], link_id=r[10], latency_us=r[11], tool=r[12],
        status=r[13], tokens=r[14], risk=r[15], truncated=bool(r[16]), payload=payload,
    )  # fmt: skip
