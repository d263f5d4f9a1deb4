"""The spool's multi-row INSERT statements against real SQLite connections: the statement
sizes follow the connection's parameter limit, and rows go in in their order."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from km.spool.event_rows import (
    COLUMNS,
    SMALL_STEP_ROWS,
    STEP_ROWS,
    event_rows,
    insert_steps,
    step_rows,
)
from km.spool.schema import migrate
from tests.spool.helpers import make_event

OLD_SQLITE_LIMIT = 999  # SQLite's default limit on parameters a statement before 3.32


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    migrate(db, ":memory:")
    try:
        yield db
    finally:
        db.close()


def insert(db: sqlite3.Connection, count: int, sizes: tuple[int, ...]) -> list[str]:
    events = [make_event(n) for n in range(count)]
    for statement, params in insert_steps(event_rows(events), sizes):
        db.executemany(statement, params)
    return [e.id for e in events]


def stored_ids(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT id FROM events ORDER BY seq")]


def test_a_current_sqlite_takes_the_large_statements(conn: sqlite3.Connection) -> None:
    assert conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) >= STEP_ROWS[0] * COLUMNS
    assert step_rows(conn) == STEP_ROWS
    count = 3 * STEP_ROWS[0] + sum(STEP_ROWS[1:]) + 1  # every size, some more than once
    assert insert(conn, count, step_rows(conn)) == stored_ids(conn)


def test_a_connection_with_the_old_limit_gets_statements_it_can_take(
    conn: sqlite3.Connection,
) -> None:
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, OLD_SQLITE_LIMIT)
    with pytest.raises(sqlite3.OperationalError, match="too many SQL variables"):
        insert(conn, STEP_ROWS[0], STEP_ROWS)
    assert step_rows(conn) == SMALL_STEP_ROWS
    assert SMALL_STEP_ROWS[0] * COLUMNS <= OLD_SQLITE_LIMIT
    count = 2 * SMALL_STEP_ROWS[0] + SMALL_STEP_ROWS[1] + 5
    assert insert(conn, count, step_rows(conn)) == stored_ids(conn)


@pytest.mark.parametrize("sizes", [STEP_ROWS, SMALL_STEP_ROWS])
@pytest.mark.parametrize("count", [0, 1, 7, 119, 120, 121, 2000])
def test_steps_cover_every_row_once_in_order(sizes: tuple[int, ...], count: int) -> None:
    rows: list[tuple[object, ...]] = [(n,) * COLUMNS for n in range(count)]
    steps = insert_steps(rows, sizes)
    flat = [value for _, params in steps for p in params for value in p]
    assert flat == [value for row in rows for value in row]
    for statement, params in steps:
        assert all(len(p) == statement.count("?") for p in params)
