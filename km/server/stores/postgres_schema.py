"""The PostgreSQL store's schema, as numbered migrations (`schema_migrations` records which
ran, in the connection's current schema). `MIGRATIONS[i]` takes the database from version i to
i + 1. Never edit a released step; append one.

Growth notes: events carry no foreign key (ingest speed) and are keyed (account_id, id) for
idempotent ingest; both read paths are keyset scans on (account_id, ts_ns, id) and
(account_id, session_id, ts_ns, id). Rollups and sessions are maintained on ingest, so
dashboards never scan events. Since the second step `events` is partitioned by day (see below
and km/server/README.md).
"""

from __future__ import annotations

_V1 = (
    """
    CREATE TABLE accounts (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name       text   NOT NULL UNIQUE,
        created_ns bigint NOT NULL
    )
    """,
    """
    CREATE TABLE api_keys (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        account_id bigint NOT NULL REFERENCES accounts (id),
        key_hash   text   NOT NULL UNIQUE,
        prefix     text   NOT NULL,
        label      text,
        created_ns bigint NOT NULL,
        revoked_ns bigint
    )
    """,
    """
    CREATE TABLE events (
        account_id       bigint  NOT NULL,
        id               uuid    NOT NULL,
        session_id       text    NOT NULL,
        server           text    NOT NULL,
        direction        text    NOT NULL,
        ts_ns            bigint  NOT NULL,
        kind             text    NOT NULL,
        method           text,
        rpc_id           text,
        size             bigint  NOT NULL,
        payload_json     jsonb,
        payload_text     text,
        payload_bytes    bytea,
        payload_encoding text    NOT NULL,
        truncated        boolean NOT NULL,
        link_id          text,
        latency_us       bigint,
        host             text,
        km_version       text,
        received_ns      bigint  NOT NULL,
        PRIMARY KEY (account_id, id),
        CHECK (num_nonnulls(payload_json, payload_text, payload_bytes) = 1)
    )
    """,
    "CREATE INDEX events_account_ts ON events (account_id, ts_ns, id)",
    "CREATE INDEX events_account_session_ts ON events (account_id, session_id, ts_ns, id)",
    """
    CREATE TABLE sessions (
        account_id  bigint NOT NULL,
        session_id  text   NOT NULL,
        server      text   NOT NULL,
        host        text,
        first_ts_ns bigint NOT NULL,
        last_ts_ns  bigint NOT NULL,
        events      bigint NOT NULL,
        errors      bigint NOT NULL,
        PRIMARY KEY (account_id, session_id)
    )
    """,
    "CREATE INDEX sessions_account_first ON sessions (account_id, first_ts_ns, session_id)",
    """
    CREATE TABLE rollups (
        account_id bigint   NOT NULL,
        hour_ns    bigint   NOT NULL,
        server     text     NOT NULL,
        method     text     NOT NULL,
        count      bigint   NOT NULL,
        errors     bigint   NOT NULL,
        bytes      bigint   NOT NULL,
        lat_count  bigint   NOT NULL,
        lat_sum    bigint   NOT NULL,
        lat_min    bigint,
        lat_max    bigint,
        lat_hist   bigint[] NOT NULL,
        PRIMARY KEY (account_id, hour_ns, server, method)
    )
    """,
)

# Retention per account, the audit log, and `events` rebuilt partitioned by day on ts_ns
# (km/server/retention.py): old days are dropped whole instead of deleted row by row.
#
# A partitioned table's unique keys must include the partition key, so the primary key becomes
# (account_id, id, ts_ns): ingest stays idempotent because a re-sent event carries the ts_ns it
# was first sent with (the uplink re-sends the spool's row). An id re-sent with a *different*
# ts_ns would be stored twice; the read side never relies on ids being unique across times.
#
# The rebuild copies the table with LIKE, so columns other steps added before this one survive,
# and makes their indexes again on the new table (a unique one must then include ts_ns). Rows
# older than a year, or further ahead than the partitions made here, land in `events_default`,
# which retention empties in batches.
_RETENTION_AUDIT_PARTITIONS = (
    "ALTER TABLE accounts ADD COLUMN retention_days integer NOT NULL DEFAULT 30",
    """
    CREATE TABLE audit_log (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        account_id bigint,
        ts_ns      bigint NOT NULL,
        action     text   NOT NULL,
        actor      text   NOT NULL,
        target     text,
        detail     jsonb  NOT NULL,
        count      bigint NOT NULL,
        until_ns   bigint
    )
    """,
    "CREATE INDEX audit_log_account_ts ON audit_log (account_id, ts_ns, id)",
    "CREATE INDEX audit_log_ts ON audit_log (ts_ns, id)",
    "ALTER TABLE events RENAME TO events_unpartitioned",
    "ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey",
    "ALTER INDEX events_account_ts RENAME TO events_unpartitioned_account_ts",
    "ALTER INDEX events_account_session_ts RENAME TO events_unpartitioned_account_session_ts",
    """
    CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS
                         INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS)
    PARTITION BY RANGE (ts_ns)
    """,
    "ALTER TABLE events ADD PRIMARY KEY (account_id, id, ts_ns)",
    "CREATE INDEX events_account_ts ON events (account_id, ts_ns, id)",
    "CREATE INDEX events_account_session_ts ON events (account_id, session_id, ts_ns, id)",
    # Indexes other steps made on `events` before this one: made again on the new table.
    """
    DO $$
    DECLARE
        r record;
        old_on constant text := ' ON ' || quote_ident(current_schema()) || '.events_unpartitioned ';
        new_on constant text := ' ON ' || quote_ident(current_schema()) || '.events ';
    BEGIN
        FOR r IN
            SELECT indexname, indexdef FROM pg_indexes
            WHERE schemaname = current_schema() AND tablename = 'events_unpartitioned'
              AND indexname NOT LIKE 'events_unpartitioned%'
        LOOP
            EXECUTE format('DROP INDEX %I', r.indexname);
            EXECUTE replace(r.indexdef, old_on, new_on);
        END LOOP;
    END $$
    """,
    "CREATE TABLE events_default PARTITION OF events DEFAULT",
    # A partition for each day of the last year that has events, and for yesterday through a
    # week ahead (named as km.server.retention.partition_name names them).
    """
    DO $$
    DECLARE
        day_ns constant bigint := 86400000000000;
        today bigint := floor(extract(epoch FROM now()) / 86400)::bigint;
        d bigint;
    BEGIN
        FOR d IN
            SELECT DISTINCT floor(ts_ns::numeric / day_ns)::bigint AS day
            FROM events_unpartitioned
            WHERE ts_ns >= (today - 366) * day_ns AND ts_ns < (today + 8) * day_ns
            UNION SELECT generate_series(today - 1, today + 7)
        LOOP
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%s) TO (%s)',
                'events_p' || to_char(to_timestamp(d * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD'),
                d * day_ns, (d + 1) * day_ns);
        END LOOP;
    END $$
    """,
    "INSERT INTO events SELECT * FROM events_unpartitioned",
    "DROP TABLE events_unpartitioned",
)

# The insight core (issue 11): what each event means (tool, status, tokens, risk), findings,
# tool definitions per server with their changes, and pins. Rollups gain the tool in their key
# with tokens and tool errors (`isError: true` results, apart from JSON-RPC errors).
_INSIGHT = (
    "ALTER TABLE events ADD COLUMN tool text, ADD COLUMN status text, "
    "ADD COLUMN tokens bigint, ADD COLUMN risk smallint",
    "CREATE INDEX events_account_tool_ts ON events (account_id, tool, ts_ns, id) "
    "WHERE tool IS NOT NULL",
    "ALTER TABLE rollups ADD COLUMN tool text NOT NULL DEFAULT '', "
    "ADD COLUMN tool_errors bigint NOT NULL DEFAULT 0, "
    "ADD COLUMN tokens bigint NOT NULL DEFAULT 0, "
    "ADD COLUMN tokens_out bigint NOT NULL DEFAULT 0",
    "ALTER TABLE rollups DROP CONSTRAINT rollups_pkey",
    "ALTER TABLE rollups ADD PRIMARY KEY (account_id, hour_ns, server, method, tool)",
    """
    CREATE TABLE findings (
        account_id bigint   NOT NULL,
        id         uuid     NOT NULL,
        session_id text     NOT NULL,
        server     text     NOT NULL,
        tool       text,
        event_id   text,
        rule       text     NOT NULL,
        severity   text     NOT NULL,
        rank       smallint NOT NULL,
        kind       text     NOT NULL,
        field      text,
        span_start bigint,
        span_end   bigint,
        message    text     NOT NULL,
        excerpt    text     NOT NULL,
        ts_ns      bigint   NOT NULL,
        PRIMARY KEY (account_id, id)
    )
    """,
    "CREATE INDEX findings_account_ts ON findings (account_id, ts_ns, id)",
    """
    CREATE TABLE tool_definitions (
        account_id     bigint NOT NULL,
        server         text   NOT NULL,
        kind           text   NOT NULL,
        tool           text   NOT NULL,
        hash           text   NOT NULL,
        server_name    text,
        server_version text,
        definition     text   NOT NULL,
        tokens         bigint,
        first_seen_ns  bigint NOT NULL,
        last_seen_ns   bigint NOT NULL,
        sessions       bigint NOT NULL,
        last_session   text   NOT NULL,
        PRIMARY KEY (account_id, server, kind, tool, hash)
    )
    """,
    """
    CREATE TABLE definition_changes (
        account_id      bigint  NOT NULL,
        id              uuid    NOT NULL,
        server          text    NOT NULL,
        kind            text    NOT NULL,
        tool            text    NOT NULL,
        change          text    NOT NULL,
        old_hash        text,
        new_hash        text,
        fields          text    NOT NULL,
        diff            text    NOT NULL,
        version_changed boolean NOT NULL,
        session_id      text    NOT NULL,
        ts_ns           bigint  NOT NULL,
        PRIMARY KEY (account_id, id)
    )
    """,
    "CREATE INDEX definition_changes_account_server "
    "ON definition_changes (account_id, server, ts_ns)",
    """
    CREATE TABLE tool_pins (
        account_id bigint NOT NULL,
        server     text   NOT NULL,
        tool       text   NOT NULL,
        hash       text   NOT NULL,
        pinned_ns  bigint NOT NULL,
        PRIMARY KEY (account_id, server, tool)
    )
    """,
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _RETENTION_AUDIT_PARTITIONS, _INSIGHT)
