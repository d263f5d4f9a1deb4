"""The spool's schema as an ordered list of migrations, tracked in `PRAGMA user_version`.

`MIGRATIONS[i]` takes a database from version `i` to `i + 1`. Each step runs, together with the
version bump, in one `BEGIN IMMEDIATE` transaction, so concurrent km processes opening a fresh
spool migrate it exactly once and a crash mid-migration leaves the previous version intact.
Never edit a released step; append a new one.
"""

from __future__ import annotations

import sqlite3

from km.spool.errors import SpoolTooNew

_V1 = (
    """
    CREATE TABLE events (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        id             TEXT    NOT NULL UNIQUE,
        session_id     TEXT    NOT NULL,
        server         TEXT    NOT NULL,
        direction      TEXT    NOT NULL,
        ts_ns          INTEGER NOT NULL,
        mono_ns        INTEGER NOT NULL,
        kind           TEXT    NOT NULL,
        method         TEXT,
        rpc_id         TEXT,
        size           INTEGER NOT NULL,
        payload        BLOB    NOT NULL,
        truncated      INTEGER NOT NULL DEFAULT 0,
        link_id        TEXT,
        latency_us     INTEGER,
        state          INTEGER NOT NULL DEFAULT 0,
        lease_owner    TEXT,
        lease_until_ns INTEGER,
        attempts       INTEGER NOT NULL DEFAULT 0,
        last_error     TEXT
    )
    """,
    "CREATE INDEX events_state_seq ON events (state, seq)",
    "CREATE INDEX events_session ON events (session_id)",
    "CREATE INDEX events_server ON events (server)",
    """
    CREATE TABLE sessions (
        session_id      TEXT    PRIMARY KEY,
        server          TEXT    NOT NULL,
        command         TEXT    NOT NULL,
        pid             INTEGER,
        host            TEXT,
        started_ns      INTEGER NOT NULL,
        ended_ns        INTEGER,
        exit_code       INTEGER,
        km_version      TEXT,
        dropped_frames  INTEGER NOT NULL DEFAULT 0,
        dropped_bytes   INTEGER NOT NULL DEFAULT 0,
        last_capture_ns INTEGER,
        last_error      TEXT
    )
    """,
    "CREATE TABLE spool_stats (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
)

# The uplink's shared state, for `km status`: one row per key, written by whichever km process's
# uplink last had news (they all talk to the same API). Keys: `breaker` (value: closed, open or
# half_open; number: when an open circuit lets a probe through, wall ns), `paused` (value: why
# delivery is paused, e.g. a rejected key; absent when not paused), `last_success` (value: the
# API's URL; number: events delivered by that request), `last_error` (value: the error).
_V2 = (
    """
    CREATE TABLE uplink_state (
        key    TEXT    PRIMARY KEY,
        value  TEXT,
        number INTEGER,
        at_ns  INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
)

# The insight core (km.insight): each event's insight fields, the session's findings, and per
# server identity (km's name for the server + its serverInfo name, `info_name` "" when it gave
# none) the definitions seen, the current inventory, what changed and what the user approved.
_INSIGHT = (
    "ALTER TABLE events ADD COLUMN tool TEXT",
    "ALTER TABLE events ADD COLUMN status TEXT",
    "ALTER TABLE events ADD COLUMN tokens INTEGER",
    "ALTER TABLE events ADD COLUMN risk INTEGER",
    # The analysis' counted problems (JSON: code -> count), e.g. a listing that was not JSON.
    "ALTER TABLE sessions ADD COLUMN insight_problems TEXT",
    """
    CREATE TABLE findings (
        id         TEXT    PRIMARY KEY,
        session_id TEXT    NOT NULL,
        server     TEXT    NOT NULL,
        tool       TEXT,
        event_id   TEXT,
        rule       TEXT    NOT NULL,
        severity   TEXT    NOT NULL,
        kind       TEXT    NOT NULL,
        field      TEXT,
        message    TEXT    NOT NULL,
        excerpt    TEXT    NOT NULL DEFAULT '',
        ts_ns      INTEGER NOT NULL
    )
    """,
    "CREATE INDEX findings_server_ts ON findings (server, ts_ns)",
    "CREATE INDEX findings_session ON findings (session_id)",
    """
    CREATE TABLE server_identities (
        session_id   TEXT    PRIMARY KEY,
        server       TEXT    NOT NULL,
        info_name    TEXT,
        info_version TEXT,
        protocol     TEXT,
        ts_ns        INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE definitions (
        server          TEXT    NOT NULL,
        info_name       TEXT    NOT NULL,
        kind            TEXT    NOT NULL,
        name            TEXT    NOT NULL,
        hash            TEXT    NOT NULL,
        definition      TEXT    NOT NULL,
        tokens          INTEGER,
        first_seen_ns   INTEGER NOT NULL,
        last_seen_ns    INTEGER NOT NULL,
        sessions        INTEGER NOT NULL DEFAULT 1,
        last_session_id TEXT,
        PRIMARY KEY (server, info_name, kind, name, hash)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE inventory (
        server       TEXT    NOT NULL,
        info_name    TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        name         TEXT    NOT NULL,
        hash         TEXT    NOT NULL,
        PRIMARY KEY (server, info_name, kind, name)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE inventory_lists (
        server       TEXT    NOT NULL,
        info_name    TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        info_version TEXT,
        session_id   TEXT    NOT NULL,
        event_id     TEXT    NOT NULL,
        entries      INTEGER NOT NULL,
        tokens       INTEGER,
        problems     TEXT,
        ts_ns        INTEGER NOT NULL,
        PRIMARY KEY (server, info_name, kind)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE definition_changes (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        server      TEXT    NOT NULL,
        info_name   TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        name        TEXT    NOT NULL,
        change      TEXT    NOT NULL,
        old_hash    TEXT,
        new_hash    TEXT,
        fields      TEXT    NOT NULL DEFAULT '',
        diff        TEXT    NOT NULL DEFAULT '',
        old_version TEXT,
        new_version TEXT,
        session_id  TEXT    NOT NULL,
        event_id    TEXT,
        ts_ns       INTEGER NOT NULL,
        announced   INTEGER NOT NULL DEFAULT 0  -- after the server's list_changed notification
    )
    """,
    "CREATE INDEX definition_changes_server ON definition_changes (server, info_name, kind)",
    # A batch written again after an unclear failure must not record its changes twice.
    "CREATE UNIQUE INDEX definition_changes_once ON definition_changes (event_id, kind, name)",
    """
    CREATE TABLE pins (
        server       TEXT    NOT NULL,
        info_name    TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        name         TEXT    NOT NULL,
        hash         TEXT    NOT NULL,
        info_version TEXT,
        approved_ns  INTEGER NOT NULL,
        PRIMARY KEY (server, info_name, kind, name)
    ) WITHOUT ROWID
    """,
)

# The views (`km sessions`, `km show`, `km tail`, km/views/): a session's figures (requests,
# errors, tokens, p50/p95 latency) from one range of one covering index, latencies already in
# order; replies and cancellations found from their request (the filter's derived
# status:pending and status:cancelled); findings from their event (`finding:`). The wider
# session index replaces the one on session_id alone, so capture pays for one more partial
# index (link_id is set on replies, cancellations and progress only) and the findings one.
_VIEWS = (
    "DROP INDEX IF EXISTS events_session",
    "CREATE INDEX events_session_latency ON events (session_id, latency_us, kind, status, tokens)",
    "CREATE INDEX events_link ON events (link_id) WHERE link_id IS NOT NULL",
    "CREATE INDEX findings_event ON findings (event_id) WHERE event_id IS NOT NULL",
)

# Delivery state of km's other senders (km.export.live: the live OTLP uplink, name `otlp`):
# how far in the spool each has sent, so an endpoint that is down loses nothing and a km that
# restarts goes on where the last one stopped. Separate from the events' own (API) state.
_EXPORT = (
    """
    CREATE TABLE export_cursors (
        name       TEXT    PRIMARY KEY,
        seq        INTEGER NOT NULL,
        sent       INTEGER NOT NULL DEFAULT 0,
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        updated_ns INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _INSIGHT, _VIEWS, _EXPORT)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(
    conn: sqlite3.Connection, path: str, migrations: tuple[tuple[str, ...], ...] = MIGRATIONS
) -> int:
    """Bring the database up to `len(migrations)` (normally `SCHEMA_VERSION`); returns the
    version it was at.

    `conn` must be in autocommit mode (`isolation_level=None`). Raises `SpoolTooNew` when the
    file was written by a newer km, and lets `sqlite3.Error` through for the caller to classify.
    """
    latest = len(migrations)
    found = schema_version(conn)
    if found >= latest:  # the usual case: no write lock taken
        _check_known(path, found, latest)
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(conn)  # re-read under the lock: another km may have migrated
        _check_known(path, found, latest)
        for version in range(found, latest):
            for statement in migrations[version]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {latest:d}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


def _check_known(path: str, version: int, latest: int) -> None:
    if version > latest:
        raise SpoolTooNew(path, version, latest)
