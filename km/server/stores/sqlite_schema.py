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

# The insight core (issue 11): what each event means (tool, status, tokens, risk), findings,
# tool definitions per server with their changes, and pins. Rollups gain the tool in their key
# (SQLite cannot change a primary key in place, so that one table is rebuilt) with tokens and
# tool errors (`isError: true` results, apart from JSON-RPC errors).
_INSIGHT = (
    "ALTER TABLE events ADD COLUMN tool TEXT",
    "ALTER TABLE events ADD COLUMN status TEXT",
    "ALTER TABLE events ADD COLUMN tokens INTEGER",
    "ALTER TABLE events ADD COLUMN risk INTEGER",
    "CREATE INDEX events_account_tool_ts ON events (account_id, tool, ts_ns, id) "
    "WHERE tool IS NOT NULL",
    """
    CREATE TABLE rollups_insight (
        account_id  INTEGER NOT NULL,
        hour_ns     INTEGER NOT NULL,
        server      TEXT    NOT NULL,
        method      TEXT    NOT NULL,
        tool        TEXT    NOT NULL,
        count       INTEGER NOT NULL,
        errors      INTEGER NOT NULL,
        tool_errors INTEGER NOT NULL,
        tokens      INTEGER NOT NULL,
        tokens_out  INTEGER NOT NULL,
        bytes       INTEGER NOT NULL,
        lat_count   INTEGER NOT NULL,
        lat_sum     INTEGER NOT NULL,
        lat_min     INTEGER,
        lat_max     INTEGER,
        lat_hist    TEXT    NOT NULL,
        PRIMARY KEY (account_id, hour_ns, server, method, tool)
    ) WITHOUT ROWID
    """,
    """
    INSERT INTO rollups_insight (account_id, hour_ns, server, method, tool, count, errors,
                                 tool_errors, tokens, tokens_out, bytes, lat_count, lat_sum,
                                 lat_min, lat_max, lat_hist)
    SELECT account_id, hour_ns, server, method, '', count, errors, 0, 0, 0, bytes, lat_count,
           lat_sum, lat_min, lat_max, lat_hist FROM rollups
    """,
    "DROP TABLE rollups",
    "ALTER TABLE rollups_insight RENAME TO rollups",
    """
    CREATE TABLE findings (
        account_id INTEGER NOT NULL,
        id         TEXT    NOT NULL,
        session_id TEXT    NOT NULL,
        server     TEXT    NOT NULL,
        tool       TEXT,
        event_id   TEXT,
        rule       TEXT    NOT NULL,
        severity   TEXT    NOT NULL,
        rank       INTEGER NOT NULL,
        kind       TEXT    NOT NULL,
        field      TEXT,
        span_start INTEGER,
        span_end   INTEGER,
        message    TEXT    NOT NULL,
        excerpt    TEXT    NOT NULL,
        ts_ns      INTEGER NOT NULL,
        PRIMARY KEY (account_id, id)
    )
    """,
    "CREATE INDEX findings_account_ts ON findings (account_id, ts_ns, id)",
    """
    CREATE TABLE tool_definitions (
        account_id     INTEGER NOT NULL,
        server         TEXT    NOT NULL,
        kind           TEXT    NOT NULL,
        tool           TEXT    NOT NULL,
        hash           TEXT    NOT NULL,
        server_name    TEXT,
        server_version TEXT,
        definition     TEXT    NOT NULL,
        tokens         INTEGER,
        first_seen_ns  INTEGER NOT NULL,
        last_seen_ns   INTEGER NOT NULL,
        sessions       INTEGER NOT NULL,
        last_session   TEXT    NOT NULL,
        PRIMARY KEY (account_id, server, kind, tool, hash)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE definition_changes (
        account_id      INTEGER NOT NULL,
        id              TEXT    NOT NULL,
        server          TEXT    NOT NULL,
        kind            TEXT    NOT NULL,
        tool            TEXT    NOT NULL,
        change          TEXT    NOT NULL,
        old_hash        TEXT,
        new_hash        TEXT,
        fields          TEXT    NOT NULL,
        diff            TEXT    NOT NULL,
        version_changed INTEGER NOT NULL,
        session_id      TEXT    NOT NULL,
        ts_ns           INTEGER NOT NULL,
        PRIMARY KEY (account_id, id)
    )
    """,
    "CREATE INDEX definition_changes_account_server "
    "ON definition_changes (account_id, server, ts_ns)",
    """
    CREATE TABLE tool_pins (
        account_id INTEGER NOT NULL,
        server     TEXT    NOT NULL,
        tool       TEXT    NOT NULL,
        hash       TEXT    NOT NULL,
        pinned_ns  INTEGER NOT NULL,
        PRIMARY KEY (account_id, server, tool)
    ) WITHOUT ROWID
    """,
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _RETENTION_AND_AUDIT, _INSIGHT)
