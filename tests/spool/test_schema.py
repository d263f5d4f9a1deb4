"""Migrations: from an empty file, idempotent on reopen, atomic, and refusing newer files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from km.spool.errors import SpoolTooNew
from km.spool.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from km.spool.store import SpoolStore
from tests.spool.helpers import make_event, query, write_db

EVENT_COLUMNS = [
    "seq", "id", "session_id", "server", "direction", "ts_ns", "mono_ns", "kind", "method",
    "rpc_id", "size", "payload", "truncated", "link_id", "latency_us", "state", "lease_owner",
    "lease_until_ns", "attempts", "last_error", "tool", "status", "tokens", "risk",
]  # fmt: skip
SESSION_COLUMNS = [
    "session_id", "server", "command", "pid", "host", "started_ns", "ended_ns", "exit_code",
    "km_version", "dropped_frames", "dropped_bytes", "last_capture_ns", "last_error",
    "insight_problems",
]  # fmt: skip


def columns(path: Path, table: str) -> list[str]:
    return [str(row[1]) for row in query(path, f"PRAGMA table_info({table})")]


def test_migrates_an_empty_database_to_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with write_db(path) as conn:
        assert schema_version(conn) == 0
        assert migrate(conn, str(path)) == 0
        assert schema_version(conn) == SCHEMA_VERSION == len(MIGRATIONS)

    assert columns(path, "events") == EVENT_COLUMNS
    assert columns(path, "sessions") == SESSION_COLUMNS
    assert columns(path, "spool_stats") == ["key", "value"]
    indexes = {row[0] for row in query(path, "SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"events_state_seq", "events_session_latency", "events_server"} <= indexes
    assert {"events_link", "findings_event"} <= indexes  # the views' (km/views/)
    tables = {row[0] for row in query(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    insight = {"findings", "server_identities", "definitions", "inventory", "inventory_lists"}
    assert insight | {"definition_changes", "pins"} <= tables
    assert columns(path, "findings") == [
        "id", "session_id", "server", "tool", "event_id", "rule", "severity", "kind", "field",
        "message", "excerpt", "ts_ns",
    ]  # fmt: skip
    (seq_is_autoincrement,) = query(
        path, "SELECT count(*) FROM sqlite_master WHERE name = ?", ("sqlite_sequence",)
    )[0]
    assert seq_is_autoincrement == 1


def test_new_events_default_to_pending_with_no_lease(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    store = SpoolStore.open(str(path), 1 << 30)
    try:
        store.append([make_event(1)])
    finally:
        store.close()
    rows = query(
        path, "SELECT state, lease_owner, lease_until_ns, attempts, last_error FROM events"
    )
    assert rows == [(0, None, None, 0, None)]


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    for n in range(3):
        store = SpoolStore.open(str(path), 1 << 30)
        try:
            store.append([make_event(n)])
        finally:
            store.close()
    with write_db(path) as conn:
        assert migrate(conn, str(path)) == SCHEMA_VERSION  # already current: nothing to do
    assert query(path, "SELECT count(*) FROM events") == [(3,)]
    assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_a_failing_migration_step_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    broken = (("CREATE TABLE first_step (x)", "CREATE TABLE first_step (x)"),)
    with write_db(path) as conn:
        with pytest.raises(sqlite3.OperationalError, match="already exists"):
            migrate(conn, str(path), broken)
        assert not conn.in_transaction
        assert schema_version(conn) == 0
    assert query(path, "SELECT name FROM sqlite_master") == []


def test_later_migrations_apply_on_top_of_earlier_ones(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with write_db(path) as conn:
        migrate(conn, str(path))
    extended = (*MIGRATIONS, ("ALTER TABLE events ADD COLUMN extra TEXT",))
    with write_db(path) as conn:
        assert migrate(conn, str(path), extended) == SCHEMA_VERSION
        assert schema_version(conn) == SCHEMA_VERSION + 1
    assert columns(path, "events")[-1] == "extra"


def test_a_spool_from_a_newer_km_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with write_db(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SpoolTooNew) as info:
        SpoolStore.open(str(path), 1 << 30)
    assert info.value.version == SCHEMA_VERSION + 1
    assert "newer" in str(info.value) and str(path) in str(info.value)
