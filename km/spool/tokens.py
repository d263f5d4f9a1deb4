"""Token counts in the spool, filled in by the processes that read it.

km's capture process counts no tokens: the o200k tokenizer costs ~70 MB of memory and ~0.5 s of
CPU to load, in every km process of the machine (one per MCP server), where the rest of the
capture process needs ~20 MB. It stores events with `tokens` NULL and tool definitions with
their `tokens` NULL; whoever reads the spool and shows or filters on tokens (`km tail`,
`km sessions`, `km show`, `km export`, `km tools`) first calls `fill_tokens`, which counts what
was captured since the last fill with the insight core's functions (`content_tokens`,
`tool_tokens`) and writes the counts back, so the next reader finds them. The API counts the
same events' tokens on ingest over the same (redacted) payloads, so both give the same figure.

How far the events were counted is the `export_cursors` row named `tokens` (the spool `seq`):
an event whose content cannot be counted (truncated, not JSON, no content) keeps NULL and is
not looked at again. Fills are idempotent: two readers filling at once write the same counts.
A spool that cannot be written (read-only file, busy writer past the short timeout) is left
as it is: the reader shows what is there, and a later fill catches up.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from km.errors import KmError
from km.insight.tokens import CONTENT_METHODS, content_tokens, tool_tokens
from km.spool.store import check_spool_files

CURSOR = "tokens"  # its row in export_cursors
BATCH = 2000  # events counted per write transaction
BUSY_TIMEOUT_MS = 200  # a fill never makes a capture writer wait longer than a short moment
TOOLS_LIST = "tools/list"
_KINDS = ("request", "response")
_METHODS = tuple(sorted(CONTENT_METHODS))
_SELECT_EVENTS = (
    "SELECT seq, kind, method, payload FROM events WHERE seq > ? AND tokens IS NULL"
    " AND truncated = 0 AND kind IN (?, ?)"
    f" AND method IN ({', '.join('?' for _ in _METHODS)}) ORDER BY seq LIMIT ?"
)


@dataclass(frozen=True, slots=True)
class Filled:
    """What one `fill_tokens` call looked at: events that may hold content (counted, or left
    NULL when there was nothing to count), and tool definitions counted."""

    events: int = 0
    definitions: int = 0


def fill_tokens(path: str, *, max_events: int | None = None) -> Filled:
    """Count the tokens the spool at `path` does not have yet; see the module docstring.
    `max_events` bounds the events counted by this call (None: all of them). Never raises
    for a spool it cannot write or that is busy: it returns what it managed."""
    conn = _open(path)
    if conn is None:
        return Filled()
    try:
        return fill_tokens_in(conn, max_events=max_events)
    except sqlite3.Error:
        return Filled()
    finally:
        conn.close()


def _open(path: str) -> sqlite3.Connection | None:
    """A writable connection to the spool, or None: no file, a planted link, someone else's
    spool (never written through), or one that cannot be opened."""
    if not os.path.exists(path):
        return None
    try:
        check_spool_files(path)
        return sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except (KmError, sqlite3.Error):
        return None


def fill_tokens_in(conn: sqlite3.Connection, *, max_events: int | None = None) -> Filled:
    """`fill_tokens` over an open autocommit connection (sqlite3 errors go to the caller)."""
    if not _has_tables(conn):
        return Filled()
    definitions = _fill_definitions(conn)
    events = _fill_events(conn, max_events)
    return Filled(events, definitions)


def _has_tables(conn: sqlite3.Connection) -> bool:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {"events", "export_cursors", "definitions", "inventory_lists"} <= names


def _cursor(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM export_cursors WHERE name = ?", [CURSOR]).fetchone()
    return int(row[0]) if row else 0


def _fill_events(conn: sqlite3.Connection, max_events: int | None) -> int:
    counted = 0
    after = _cursor(conn)
    while max_events is None or counted < max_events:
        limit = BATCH if max_events is None else min(BATCH, max_events - counted)
        conn.execute("BEGIN")  # one snapshot: the rows and the newest seq agree
        try:
            rows = conn.execute(_SELECT_EVENTS, [after, *_KINDS, *_METHODS, limit]).fetchall()
            newest = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        finally:
            conn.execute("COMMIT")
        counts = [
            (n, seq)
            for seq, kind, method, payload in rows
            if (n := content_tokens(kind, method, payload)) is not None
        ]
        # All rows up to `reached` were looked at: the last row read when the batch was full,
        # else every event of that snapshot.
        reached = rows[-1][0] if len(rows) == limit else max(newest, after)
        if counts or reached > after:  # a reader that finds nothing new writes nothing
            _write(conn, counts, reached, len(counts))
        counted += len(rows)
        after = reached
        if len(rows) < limit:
            break
    return counted


def _write(conn: sqlite3.Connection, counts: list[tuple[int, int]], seq: int, n: int) -> None:
    def write() -> None:
        conn.executemany("UPDATE events SET tokens = ? WHERE seq = ? AND tokens IS NULL", counts)
        conn.execute(
            "INSERT INTO export_cursors (name, seq, sent, attempts, last_error, updated_ns)"
            " VALUES (?, ?, ?, 0, NULL, ?) ON CONFLICT (name) DO UPDATE SET"
            " seq = max(seq, excluded.seq), sent = sent + excluded.sent,"
            " updated_ns = excluded.updated_ns",
            [CURSOR, seq, n, time.time_ns()],
        )

    _in_transaction(conn, write)


def _fill_definitions(conn: sqlite3.Connection) -> int:
    rows = conn.execute(
        "SELECT server, info_name, kind, name, hash, definition FROM definitions"
        " WHERE tokens IS NULL AND kind = ?",
        [TOOLS_LIST],
    ).fetchall()
    lists = conn.execute(
        "SELECT count(*) FROM inventory_lists WHERE tokens IS NULL AND kind = ?", [TOOLS_LIST]
    ).fetchone()[0]
    if not rows and not lists:
        return 0
    counts = [(_definition_tokens(text), *key) for *key, text in rows]

    def write() -> None:
        conn.executemany(
            "UPDATE definitions SET tokens = ? WHERE server = ? AND info_name = ? AND kind = ?"
            " AND name = ? AND hash = ? AND tokens IS NULL",
            counts,
        )
        # A listing's tokens: the sum over its definitions (the current inventory is the
        # latest listing, the one `inventory_lists` keeps).
        conn.execute(
            "UPDATE inventory_lists SET tokens = (SELECT coalesce(sum(d.tokens), 0)"
            " FROM inventory i JOIN definitions d ON d.server = i.server"
            " AND d.info_name = i.info_name AND d.kind = i.kind AND d.name = i.name"
            " AND d.hash = i.hash WHERE i.server = inventory_lists.server"
            " AND i.info_name = inventory_lists.info_name AND i.kind = inventory_lists.kind)"
            " WHERE tokens IS NULL AND kind = ?",
            [TOOLS_LIST],
        )

    _in_transaction(conn, write)
    return len(counts)


def _definition_tokens(text: str) -> int:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return 0
    return tool_tokens(doc)


def _in_transaction(conn: sqlite3.Connection, work: Callable[[], None]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        work()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class TokenFiller:
    """`fill_tokens` for a reader that polls (`km tail`): one connection, kept open. Once the
    spool cannot be written, it stops trying."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._failed = False

    def fill(self, max_events: int | None = BATCH * 5) -> Filled:
        if self._failed:
            return Filled()
        try:
            if self._conn is None:
                self._conn = _open(self.path)
                if self._conn is None:
                    self._failed = True
                    return Filled()
            return fill_tokens_in(self._conn, max_events=max_events)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                self._failed = True  # read-only, gone: the reader shows what is there
            return Filled()
        except sqlite3.Error:
            self._failed = True
            return Filled()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
