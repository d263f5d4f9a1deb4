"""The PostgreSQL store's insight tables: findings, definitions, changes, pins (see
insight.py)."""

from __future__ import annotations

from typing import Any

from km.server.stores.insight import (
    CHANGE_COLUMNS,
    DEFINITION_COLUMNS,
    FINDING_COLUMNS,
    INSERT_FINDING_COLUMNS,
    InsightWrites,
    change_row,
    definition_row,
    finding_row,
)

INSERT_FINDING = (
    f"INSERT INTO findings ({INSERT_FINDING_COLUMNS}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, 17))}) "
    "ON CONFLICT (account_id, id) DO NOTHING"
)
UPSERT_DEFINITION = """
    INSERT INTO tool_definitions AS t (account_id, server, kind, tool, hash, server_name,
                                       server_version, definition, tokens, first_seen_ns,
                                       last_seen_ns, sessions, last_session)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (account_id, server, kind, tool, hash) DO UPDATE SET
        server_name = CASE WHEN excluded.last_seen_ns >= t.last_seen_ns
                           THEN excluded.server_name ELSE t.server_name END,
        server_version = CASE WHEN excluded.last_seen_ns >= t.last_seen_ns
                              THEN excluded.server_version ELSE t.server_version END,
        tokens = coalesce(excluded.tokens, t.tokens),
        first_seen_ns = least(t.first_seen_ns, excluded.first_seen_ns),
        last_seen_ns = greatest(t.last_seen_ns, excluded.last_seen_ns),
        sessions = t.sessions + (t.last_session <> excluded.last_session)::int,
        last_session = excluded.last_session
"""
INSERT_CHANGE = f"""
    INSERT INTO definition_changes (account_id, {CHANGE_COLUMNS})
    VALUES ({", ".join(f"${i}" for i in range(1, 14))}) ON CONFLICT (account_id, id) DO NOTHING
"""
UPSERT_PIN = """
    INSERT INTO tool_pins (account_id, server, tool, hash, pinned_ns) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (account_id, server, tool) DO UPDATE SET
        hash = excluded.hash, pinned_ns = excluded.pinned_ns
"""
SELECT_FINDINGS = (
    f"SELECT {FINDING_COLUMNS.replace('id,', 'id::text,', 1)} FROM findings WHERE account_id = $1"
)
SELECT_DEFINITIONS = f"SELECT {DEFINITION_COLUMNS} FROM tool_definitions WHERE account_id = $1"
SELECT_CHANGES = (
    f"SELECT {CHANGE_COLUMNS.replace('id,', 'id::text,', 1)} FROM definition_changes "
    "WHERE account_id = $1"
)
SELECT_PINS = "SELECT server, tool, hash, pinned_ns FROM tool_pins WHERE account_id = $1"


async def write(conn: Any, account_id: int, writes: InsightWrites) -> None:
    """Within the ingest transaction."""
    if writes.findings:
        rows = [finding_row(account_id, f) for f in writes.findings]
        await conn.executemany(INSERT_FINDING, sorted(rows, key=lambda r: str(r[1])))
    if writes.definitions:
        rows = [definition_row(account_id, d) for d in writes.definitions]
        await conn.executemany(UPSERT_DEFINITION, rows)
    if writes.changes:
        await conn.executemany(INSERT_CHANGE, [change_row(account_id, c) for c in writes.changes])


def by_server(sql: str, account_id: int, server: str | None) -> tuple[str, tuple[Any, ...]]:
    if server is None:
        return sql, (account_id,)
    return sql + " AND server = $2", (account_id, server)
