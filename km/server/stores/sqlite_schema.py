"""The embedded SQLite store's schema, as numbered migrations (`schema_migrations` records
which ran). `MIGRATIONS[i]` takes the database from version i to i + 1. Never edit a released
step; append one."""

from __future__ import annotations

_V1 = (
    """
    CREATE TABLE accounts (
        id         INTEGER PRIMARY KEY,
        name       TEXT    NOT NULL UNIQUE,
        created_ns INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE api_keys (
        id         INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        key_hash   TEXT    NOT NULL UNIQUE,
        prefix     TEXT    NOT NULL,
        label      TEXT,
        created_ns INTEGER NOT NULL,
        revoked_ns INTEGER
    )
    """,
    """
    CREATE TABLE events (
        account_id       INTEGER NOT NULL,
        id               TEXT    NOT NULL,
        session_id       TEXT    NOT NULL,
        server           TEXT    NOT NULL,
        direction        TEXT    NOT NULL,
        ts_ns            INTEGER NOT NULL,
        kind             TEXT    NOT NULL,
        method           TEXT,
        rpc_id           TEXT,
        size             INTEGER NOT NULL,
        payload_json     TEXT,
        payload_text     TEXT,
        payload_bytes    BLOB,
        payload_encoding TEXT    NOT NULL,
        truncated        INTEGER NOT NULL,
        link_id          TEXT,
        latency_us       INTEGER,
        host             TEXT,
        km_version       TEXT,
        received_ns      INTEGER NOT NULL,
        PRIMARY KEY (account_id, id)
    )
    """,
    "CREATE INDEX events_account_ts ON events (account_id, ts_ns, id)",
    "CREATE INDEX events_account_session_ts ON events (account_id, session_id, ts_ns, id)",
    """
    CREATE TABLE sessions (
        account_id  INTEGER NOT NULL,
        session_id  TEXT    NOT NULL,
        server      TEXT    NOT NULL,
        host        TEXT,
        first_ts_ns INTEGER NOT NULL,
        last_ts_ns  INTEGER NOT NULL,
        events      INTEGER NOT NULL,
        errors      INTEGER NOT NULL,
        PRIMARY KEY (account_id, session_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX sessions_account_first ON sessions (account_id, first_ts_ns, session_id)",
    """
    CREATE TABLE rollups (
        account_id INTEGER NOT NULL,
        hour_ns    INTEGER NOT NULL,
        server     TEXT    NOT NULL,
        method     TEXT    NOT NULL,
        count      INTEGER NOT NULL,
        errors     INTEGER NOT NULL,
        bytes      INTEGER NOT NULL,
        lat_count  INTEGER NOT NULL,
        lat_sum    INTEGER NOT NULL,
        lat_min    INTEGER,
        lat_max    INTEGER,
        lat_hist   TEXT    NOT NULL,
        PRIMARY KEY (account_id, hour_ns, server, method)
    ) WITHOUT ROWID
    """,
)

# Retention per account and the audit log (km/server/retention.py, km/server/audit.py).
# `account_id` NULL: a row of no account (a refused sign-in with a key nobody has).
_RETENTION_AND_AUDIT = (
    "ALTER TABLE accounts ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 30",
    """
    CREATE TABLE audit_log (
        id         INTEGER PRIMARY KEY,
        account_id INTEGER,
        ts_ns      INTEGER NOT NULL,
        action     TEXT    NOT NULL,
        actor      TEXT    NOT NULL,
        target     TEXT,
        detail     TEXT    NOT NULL,
        count      INTEGER NOT NULL,
        until_ns   INTEGER
    )
    """,
    "CREATE INDEX audit_log_account_ts ON audit_log (account_id, ts_ns, id)",
    "CREATE INDEX audit_log_ts ON audit_log (ts_ns, id)",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _RETENTION_AND_AUDIT)
