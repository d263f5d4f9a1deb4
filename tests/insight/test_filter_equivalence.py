"""One filter, three evaluations, the same events: random filters over random event sets select
exactly the same events through the spool's SQLite SQL, the server's SQLite SQL, the server's
PostgreSQL SQL (the real server at KM_TEST_DATABASE_URL, a schema per test) and the in-memory
predicate.

JSON payloads are generated in the text form PostgreSQL's JSONB prints (`{"a": 1, "bb": 2}`,
keys by length then bytes), so the payload a JSONB column returns is the payload the other
evaluations see: free text is searched on exactly the same bytes everywhere.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from km.insight.filter import KINDS, STATUSES, effective_status, matches, parse
from km.insight.filter_sql import SERVER_POSTGRES, SERVER_SQLITE, SPOOL_TARGET, to_sql
from km.insight.findings import FINDING_KINDS, SEVERITIES
from km.server.stores.payload import to_columns
from km.server.stores.postgres_schema import MIGRATIONS as PG_MIGRATIONS
from km.server.stores.sqlite_schema import MIGRATIONS as SERVER_SQLITE_MIGRATIONS
from km.spool.schema import migrate
from tests.insight.schema import (
    PG_EXTRA,
    SERVER_SQLITE_EXTRA,
    SPOOL_EXTRA,
    apply_extra,
)
from tests.server.conftest import PG_URL

NOW = 1_800_000_000 * 10**9
BASE = NOW - 3 * 3600 * 10**9
SERVERS = ["github", "git-hub", "time", "a*b", "Git_Hub"]
SESSIONS = ["s1", "s2", "S1"]
TOOLS = [None, "git_status", "git_log", "read_file", "x?y", "ref/prompt:a b"]
METHODS = [None, "tools/call", "tools/list", "notifications/cancelled", "initialize"]
RULES = ["P101", "R201", "D1*x", "flow-1"]
WORDS = ["Error", "error", "denied", "Permission", "ü", "é", "日本", "a:b", "{", '"', "1", "x y"]

json_scalar = st.one_of(
    st.integers(-1000, 10**6),
    st.booleans(),
    st.none(),
    st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "id", "bb", "Err", "result"]), inner, max_size=3),
    ),
    max_leaves=6,
)


def jsonb_text(value: Any) -> str:
    """`value` as PostgreSQL prints a JSONB value."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{jsonb_text(k)}: {jsonb_text(value[k])}" for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    return orjson.dumps(value).decode()


payloads = st.one_of(
    json_value.map(lambda v: jsonb_text(v).encode()),
    st.lists(st.sampled_from(WORDS), max_size=5).map(
        lambda w: ("not json " + " ".join(w)).encode()
    ),
    st.binary(max_size=12).map(lambda b: b"\x00\xff" + b),  # stored as bytes on the server
)


@st.composite
def event_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 14))
    ids = [str(uuid.UUID(int=draw(st.integers(1, 2**128 - 1)))) for _ in range(count)]
    ids = list(dict.fromkeys(ids))
    events = []
    for event_id in ids:
        kind = draw(st.sampled_from(KINDS))
        findings = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(RULES),
                    st.sampled_from(FINDING_KINDS),
                    st.sampled_from(SEVERITIES),
                ),
                max_size=2,
            )
        )
        events.append(
            {
                "id": event_id,
                "session_id": draw(st.sampled_from(SESSIONS)),
                "server": draw(st.sampled_from(SERVERS)),
                "direction": draw(st.sampled_from(["c2s", "s2c", "km"])),
                "ts_ns": BASE + draw(st.integers(0, 4 * 3600)) * 10**9,
                "kind": kind,
                "method": draw(st.sampled_from(METHODS)),
                "size": draw(st.integers(0, 3 * 1024 * 1024)),
                "payload": draw(payloads),
                "link_id": draw(st.one_of(st.none(), st.sampled_from(ids))),
                "latency_us": draw(st.one_of(st.none(), st.integers(0, 5_000_000))),
                "tool": draw(st.sampled_from(TOOLS)),
                "status": draw(st.sampled_from([None, "ok", "error", "tool-error"])),
                "tokens": draw(st.one_of(st.none(), st.integers(0, 50_000))),
                "risk": draw(st.one_of(st.none(), st.integers(0, 100))),
                "findings": [{"rule": r, "kind": k, "severity": s} for r, k, s in findings],
            }
        )
    return events


def _glob_variants(values: Sequence[str | None]) -> st.SearchStrategy[str]:
    words = [v for v in values if v]
    plain = st.sampled_from(words)
    return st.one_of(
        plain.map(lambda v: v.replace("*", "\\*").replace("?", "\\?")),
        plain.map(lambda v: v[:2] + "*"),
        plain.map(lambda v: "*" + v[-2:]),
        plain.map(lambda v: "?" + v[1:].replace("*", "\\*").replace("?", "\\?")),
        plain.map(lambda v: '"' + v.replace('"', '\\"') + '"'),
        st.just("*"),
    )


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


needles = st.one_of(
    st.sampled_from(WORDS),
    st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["ERROR", "not JSON", '": ', "\xff"]),
)
atoms = st.one_of(
    _glob_variants(SERVERS).map("server:{}".format),
    _glob_variants(SESSIONS).map("session:{}".format),
    _glob_variants(TOOLS).map("tool:{}".format),
    _glob_variants(METHODS).map("method:{}".format),
    st.sampled_from(KINDS).map("kind:{}".format),
    st.sampled_from(STATUSES).map("status:{}".format),
    st.sampled_from(["c2s", "s2c", "km"]).map("dir:{}".format),
    st.tuples(st.sampled_from([">", ">=", "<", "<=", ":", "!="]), st.integers(0, 100)).map(
        lambda t: f"risk{t[0]}{t[1]}"
    ),
    st.tuples(st.sampled_from([">", "<="]), st.sampled_from(["500ms", "1s", "20", "2.5s"])).map(
        lambda t: f"latency{t[0]}{t[1]}"
    ),
    st.tuples(st.sampled_from([">=", "<"]), st.sampled_from(["1k", "1m", "100"])).map(
        lambda t: f"size{t[0]}{t[1]}"
    ),
    st.tuples(st.sampled_from([">", "="]), st.sampled_from(["2k", "100"])).map(
        lambda t: f"tokens{t[0]}{t[1]}"
    ),
    st.sampled_from(["since:1h", "until:2h", "since:90m", "until:2027-01-15T08:00:00Z"]),
    st.sampled_from([*RULES, *FINDING_KINDS, *SEVERITIES, "*", "R*"]).map("finding:{}".format),
    needles.map(_quote),
)
filters = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(" ".join),
        st.tuples(inner, inner).map(" OR ".join),
        inner.map("-{}".format),
        inner.map("NOT {}".format),
        inner.map("({})".format),
    ),
    max_leaves=5,
)


def _expected(events: list[dict[str, Any]], text: str) -> set[str]:
    flt = parse(text, now_ns=NOW)
    selected = set()
    for e in events:
        replied = any(
            o["link_id"] == e["id"] and o["kind"] in ("response", "error") for o in events
        )
        cancelled = any(
            o["link_id"] == e["id"]
            and o["kind"] == "notification"
            and o["method"] == "notifications/cancelled"
            for o in events
        )
        view = dict(e, status=effective_status(e["kind"], e["status"], replied, cancelled))
        if matches(flt, view):
            selected.add(e["id"])
    return selected


# -- the three databases -------------------------------------------------------------------------


class Spool:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        migrate(self.conn, str(path))
        apply_extra(self.conn, SPOOL_EXTRA)

    def load(self, events: list[dict[str, Any]]) -> None:
        self.conn.execute("DELETE FROM events")
        self.conn.execute("DELETE FROM findings")
        for e in events:
            self.conn.execute(
                "INSERT INTO events (id, session_id, server, direction, ts_ns, mono_ns, kind,"
                " method, size, payload, link_id, latency_us, tool, status, tokens, risk)"
                " VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (e["id"], e["session_id"], e["server"], e["direction"], e["ts_ns"], e["kind"],
                 e["method"], e["size"], e["payload"], e["link_id"], e["latency_us"], e["tool"],
                 e["status"], e["tokens"], e["risk"]),
            )  # fmt: skip
            for f in e["findings"]:
                self.conn.execute(
                    "INSERT INTO findings (id, session_id, server, event_id, rule, severity, kind,"
                    " message, ts_ns) VALUES (?, ?, ?, ?, ?, ?, ?, '', 0)",
                    (str(uuid.uuid4()), e["session_id"], e["server"], e["id"], f["rule"],
                     f["severity"], f["kind"]),
                )  # fmt: skip

    def select(self, text: str) -> set[str]:
        params: list[object] = []
        where = to_sql(parse(text, now_ns=NOW), SPOOL_TARGET, params)
        return {r[0] for r in self.conn.execute(f"SELECT e.id FROM events e WHERE {where}", params)}


class ServerSqlite:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for step in SERVER_SQLITE_MIGRATIONS:
            for statement in step:
                self.conn.execute(statement)
        apply_extra(self.conn, SERVER_SQLITE_EXTRA)

    def load(self, events: list[dict[str, Any]]) -> None:
        self.conn.execute("DELETE FROM events")
        self.conn.execute("DELETE FROM findings")
        for account in (1, 2):  # account 2 holds a copy whose links must not count for 1
            for e in events:
                json, text, blob = to_columns(e["payload"], False)
                self.conn.execute(
                    "INSERT INTO events (account_id, id, session_id, server, direction, ts_ns,"
                    " kind, method, size, payload_json, payload_text, payload_bytes,"
                    " payload_encoding, truncated, link_id, latency_us, received_ns, tool,"
                    " status, tokens, risk)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'utf8', 0, ?, ?, 0, ?, ?, ?, ?)",
                    (account, e["id"], e["session_id"], e["server"], e["direction"], e["ts_ns"],
                     e["kind"], e["method"], e["size"], json, text, blob, e["link_id"],
                     e["latency_us"], e["tool"], e["status"], e["tokens"], e["risk"]),
                )  # fmt: skip
                for f in e["findings"] if account == 1 else ():
                    self.conn.execute(
                        "INSERT INTO findings (account_id, id, session_id, server, event_id, rule,"
                        " severity, rank, kind, message, excerpt, ts_ns)"
                        " VALUES (1, ?, ?, ?, ?, ?, ?, 0, ?, '', '', 0)",
                        (str(uuid.uuid4()), e["session_id"], e["server"], e["id"], f["rule"],
                         f["severity"], f["kind"]),
                    )  # fmt: skip

    def select(self, text: str) -> set[str]:
        params: list[object] = [1]
        where = to_sql(parse(text, now_ns=NOW), SERVER_SQLITE, params)
        sql = f"SELECT e.id FROM events e WHERE e.account_id = ? AND {where}"
        return {r[0] for r in self.conn.execute(sql, params)}


class ServerPostgres:
    def __init__(self, loop: asyncio.AbstractEventLoop, conn: asyncpg.Connection) -> None:
        self.loop = loop
        self.conn = conn

    def load(self, events: list[dict[str, Any]]) -> None:
        self.loop.run_until_complete(self._load(events))

    async def _load(self, events: list[dict[str, Any]]) -> None:
        await self.conn.execute("TRUNCATE events, findings")
        rows = []
        finding_rows = []
        for account in (1, 2):
            for e in events:
                json, text, blob = to_columns(e["payload"], False)
                rows.append(
                    (account, uuid.UUID(e["id"]), e["session_id"], e["server"], e["direction"],
                     e["ts_ns"], e["kind"], e["method"], e["size"], json, text, blob, "utf8",
                     False, e["link_id"], e["latency_us"], 0, e["tool"], e["status"],
                     e["tokens"], e["risk"]),
                )  # fmt: skip
                for f in e["findings"] if account == 1 else ():
                    finding_rows.append(
                        (1, uuid.uuid4(), e["session_id"], e["server"], e["id"], f["rule"],
                         f["severity"], 0, f["kind"], "", "", 0)
                    )  # fmt: skip
        await self.conn.executemany(
            "INSERT INTO events (account_id, id, session_id, server, direction, ts_ns, kind,"
            " method, size, payload_json, payload_text, payload_bytes, payload_encoding,"
            " truncated, link_id, latency_us, received_ns, tool, status, tokens, risk) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11, $12, $13, $14, $15,"
            " $16, $17, $18, $19, $20, $21)",
            rows,
        )
        await self.conn.executemany(
            "INSERT INTO findings (account_id, id, session_id, server, event_id, rule, severity,"
            " rank, kind, message, excerpt, ts_ns)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            finding_rows,
        )

    def select(self, text: str) -> set[str]:
        params: list[object] = [1]
        where = to_sql(parse(text, now_ns=NOW), SERVER_POSTGRES, params)
        sql = f"SELECT e.id::text FROM events e WHERE e.account_id = $1 AND {where}"
        rows = self.loop.run_until_complete(self.conn.fetch(sql, *params))
        return {r[0] for r in rows}


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ...]]:
    tmp = tmp_path_factory.mktemp("filter")
    spool, server = Spool(tmp / "spool.db"), ServerSqlite(tmp / "server.db")
    loop = asyncio.new_event_loop()
    schema = f"filter_{uuid.uuid4().hex[:12]}"
    try:
        conn = loop.run_until_complete(asyncpg.connect(PG_URL, timeout=5))
    except (OSError, asyncpg.PostgresError) as exc:
        loop.close()
        spool.conn.close()
        server.conn.close()
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({exc}); set KM_TEST_DATABASE_URL")

    async def setup() -> None:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"SET search_path = {schema}")
        for step in PG_MIGRATIONS:
            for statement in step:
                await conn.execute(statement)
        for statement in PG_EXTRA:
            await conn.execute(statement)

    try:
        loop.run_until_complete(setup())
        yield spool, server, ServerPostgres(loop, conn)
    finally:
        loop.run_until_complete(conn.execute(f"DROP SCHEMA {schema} CASCADE"))
        loop.run_until_complete(conn.close())
        loop.close()
        spool.conn.close()
        server.conn.close()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=event_sets(), texts=st.lists(filters, min_size=1, max_size=8))
def test_sql_and_predicate_select_the_same_events(
    databases: tuple[Spool, ServerSqlite, ServerPostgres],
    events: list[dict[str, Any]],
    texts: list[str],
) -> None:
    for db in databases:
        db.load(events)
    for text in texts:
        expected = _expected(events, text)
        for db in databases:
            assert db.select(text) == expected, (type(db).__name__, text)


def _event(event_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": event_id, "session_id": "s1", "server": "time", "direction": "c2s",
        "ts_ns": NOW - 10**9, "kind": kind, "method": "tools/call", "size": 10,
        "payload": b"{}", "link_id": None, "latency_us": None, "tool": "t", "status": None,
        "tokens": None, "risk": None, "findings": [],
    }  # fmt: skip
    base.update(fields)
    return base


def test_derived_statuses(databases: tuple[Spool, ServerSqlite, ServerPostgres]) -> None:
    ids = [str(uuid.UUID(int=n)) for n in range(1, 10)]
    events = [
        _event(ids[0], "request"),  # answered
        _event(ids[1], "response", link_id=ids[0], status="ok", direction="s2c"),
        _event(ids[2], "request"),  # answered with an error
        _event(ids[3], "error", link_id=ids[2], status="error", direction="s2c"),
        _event(ids[4], "request"),  # pending
        _event(ids[5], "request"),  # cancelled
        _event(ids[6], "notification", method="notifications/cancelled", link_id=ids[5]),
        _event(ids[7], "notification", method="notifications/progress", link_id=ids[4]),
    ]
    expected = {
        "status:pending": {ids[4]},
        "status:cancelled": {ids[5]},
        "status:ok": {ids[1]},
        "status:error": {ids[3]},
        "kind:request -status:pending -status:cancelled": {ids[0], ids[2]},
    }
    for db in databases:
        db.load(events)
        for text, selected in expected.items():
            assert _expected(events, text) == selected, text
            assert db.select(text) == selected, (type(db).__name__, text)
