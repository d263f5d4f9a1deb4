"""The insight columns (`tool`, `status`, `tokens`, `risk`) and the `findings` table, for tests
whose database was migrated by a km that may not have them yet: each is added only when absent,
so the same tests run unchanged once the real migrations have created them."""

from __future__ import annotations

import sqlite3

_COLUMNS = (("tool", "TEXT"), ("status", "TEXT"), ("tokens", "INTEGER"), ("risk", "INTEGER"))
_FINDINGS = """
    CREATE TABLE IF NOT EXISTS findings (
        {account}id TEXT NOT NULL, session_id TEXT NOT NULL, server TEXT, tool TEXT,
        event_id TEXT, rule TEXT NOT NULL, severity TEXT NOT NULL, rank INTEGER NOT NULL DEFAULT 0,
        kind TEXT NOT NULL, field TEXT, message TEXT NOT NULL, excerpt TEXT NOT NULL DEFAULT '',
        ts_ns INTEGER NOT NULL
    )
"""
SPOOL_EXTRA = (_COLUMNS, _FINDINGS.format(account=""))
SERVER_SQLITE_EXTRA = (_COLUMNS, _FINDINGS.format(account="account_id INTEGER NOT NULL, "))
PG_EXTRA = (
    *(
        f"ALTER TABLE events ADD COLUMN IF NOT EXISTS {name} {kind.lower()}"
        for name, kind in _COLUMNS
    ),
    _FINDINGS.format(account="account_id bigint NOT NULL, ").replace("INTEGER", "bigint"),
)


def apply_extra(conn: sqlite3.Connection, extra: tuple[object, str]) -> None:
    columns, findings = extra
    present = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    for name, kind in columns:  # type: ignore[attr-defined]
        if name not in present:
            conn.execute(f"ALTER TABLE events ADD COLUMN {name} {kind}")
    conn.execute(findings)
