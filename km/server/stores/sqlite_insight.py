"""The SQLite store's insight tables: findings, definitions, changes, pins (see insight.py)."""

from __future__ import annotations

from typing import Any

import aiosqlite

from km.server.stores.insight import (
    CHANGE_COLUMNS,
    DEFINITION_COLUMNS,
    INSERT_FINDING_COLUMNS,
    InsightWrites,
    change_row,
    definition_row,
    finding_row,
)

INSERT_FINDING = (
    f"INSERT INTO findings ({INSERT_FINDING_COLUMNS}) VALUES ({', '.join('?' * 16)}) "
    "ON CONFLICT (account_id, id) DO NOTHING"
)
UPSERT_DEFINITION = """
    INSERT INTO tool_definitions (account_id, server, kind, tool, hash, server_name,
                                  server_version, definition, tokens, first_seen_ns,
                                  last_seen_ns, sessions, last_session)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (account_id, server, kind, tool, hash) DO UPDATE SET
        server_name = CASE WHEN excluded.last_seen_ns >= last_seen_ns
                           THEN excluded.server_name ELSE server_name END,
        server_version = CASE WHEN excluded.last_seen_ns >= last_seen_ns
                              THEN excluded.server_version ELSE server_version END,
        tokens = coalesce(excluded.tokens, tokens),
        first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
        last_seen_ns = max(last_seen_ns, excluded.last_seen_ns),
        sessions = sessions + (last_session <> excluded.last_session),
        last_session = excluded.last_session
"""
INSERT_CHANGE = f"""
    INSERT INTO definition_changes (account_id, {CHANGE_COLUMNS})
    VALUES ({", ".join("?" * 13)}) ON CONFLICT (account_id, id) DO NOTHING
"""
UPSERT_PIN = """
    INSERT INTO tool_pins (account_id, server, tool, hash, pinned_ns) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (account_id, server, tool) DO UPDATE SET
        hash = excluded.hash, pinned_ns = excluded.pinned_ns
"""
SELECT_DEFINITIONS = f"SELECT {DEFINITION_COLUMNS} FROM tool_definitions WHERE account_id = ?"
SELECT_CHANGES = f"SELECT {CHANGE_COLUMNS} FROM definition_changes WHERE account_id = ?"
SELECT_PINS = "SELECT server, tool, hash, pinned_ns FROM tool_pins WHERE account_id = ?"


async def write(w: aiosqlite.Connection, account_id: int, writes: InsightWrites) -> None:
    """Within the ingest transaction."""
    if writes.findings:
        await w.executemany(INSERT_FINDING, [finding_row(account_id, f) for f in writes.findings])
    if writes.definitions:
        rows = [definition_row(account_id, d) for d in writes.definitions]
        await w.executemany(UPSERT_DEFINITION, rows)
    if writes.changes:
        await w.executemany(INSERT_CHANGE, [change_row(account_id, c) for c in writes.changes])


def by_server(sql: str, account_id: int, server: str | None) -> tuple[str, tuple[Any, ...]]:
    if server is None:
        return sql, (account_id,)
    return sql + " AND server = ?", (account_id, server)
