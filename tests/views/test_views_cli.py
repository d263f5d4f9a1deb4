"""`km sessions`, `km show` and `km tail` as real processes over spools with known content."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from km.views.sessions import print_sessions
from tests.views.spool_data import Builder, fingerprint

KM = [sys.executable, "-m", "km"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = dict(os.environ)
    out["KM_SPOOL"] = str(tmp_path / "spool.db")
    out["KM_CONFIG"] = str(tmp_path / "none.toml")
    out.pop("KM_API_URL", None)
    out.pop("KM_API_KEY", None)
    return out


def km(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KM, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def spool(tmp_path: Path) -> Builder:
    b = Builder(tmp_path / "spool.db")
    gh = b.session("github", "aaaa1111-0000-4000-8000-000000000001")
    b.add(gh, "notification", method="notifications/initialized")
    b.exchange(gh, "tools/call", 1, latency_us=1_000, tool="git_status", tokens=10, risk=10)
    _, bad = b.exchange(
        gh, "tools/call", 2, latency_us=3_000_000, tool="git_push", status="tool-error",
        tokens=30, risk=80, result="Permission denied",
    )  # fmt: skip
    b.exchange(gh, "tools/call", 3, latency_us=2_000, tool="git_log", status="error")
    b.finding(gh, bad, "R201", "high", "risk")
    b.finding(gh, None, "F1", "critical", "flow")
    b.add(gh, "dropped", "km", payload=b'{"frames": 7, "bytes": 4096}')
    t = b.session("time", "bbbb2222-0000-4000-8000-000000000002")
    b.exchange(t, "tools/call", 1, latency_us=500, tool="convert_time", tokens=5)
    b.add(t, "request", method="tools/call", rpc_id="9", tool="slow")  # never answered
    b.session("a-server-with-a-very-long-name-that-does-not-fit-anywhere", "cccc3333-0000-4000")
    b.write()
    return b


def test_sessions_json_has_the_figures(env: dict[str, str], spool: Builder) -> None:
    done = km(env, "sessions", "--json")
    assert done.returncode == 0, done.stderr
    by_server = {s["server"]: s for s in orjson.loads(done.stdout)}
    gh = by_server["github"]
    assert (gh["calls"], gh["errors"], gh["tokens"], gh["findings"]) == (3, 2, 40, 2)
    assert gh["latency_p50_us"] == 3_000_000 or gh["latency_p50_us"] == 2_000
    assert gh["latency_p95_us"] == 3_000_000
    assert gh["started"].endswith("Z") and gh["host"] == "box"
    assert by_server["time"]["calls"] == 2


def test_sessions_filter(env: dict[str, str], spool: Builder) -> None:
    done = km(env, "sessions", "--json", "tool:git_*", "status:tool-error")
    assert [s["server"] for s in orjson.loads(done.stdout)] == ["github"]
    done = km(env, "sessions", "--json", "status:pending")
    assert [s["server"] for s in orjson.loads(done.stdout)] == ["time"]
    done = km(env, "sessions", "--json", "finding:high")
    assert [s["server"] for s in orjson.loads(done.stdout)] == ["github"]


def test_sessions_table_fits_80_columns() -> None:
    sessions = [
        {"session_id": "cccc3333-0000-4000-8000-000000000003", "server": "x" * 70,
         "host": "box", "started_ns": 1_780_000_000 * 10**9, "calls": 3},
        {"session_id": "dddd", "server": "filesystem-server", "host": "laptop",
         "started_ns": 1_780_000_000 * 10**9, "errors": 1},
    ]  # fmt: skip
    out = io.StringIO()
    print_sessions(sessions, out, as_json=False, width=80)
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert "filesystem-server" in lines[2]  # fits: not cut
    assert " cccc3333" in lines[1]  # the session id cut to a prefix km show accepts
    assert "…" in lines[1] and "xxxx…xxxx" in lines[1]  # too long: cut in the middle
    wide = io.StringIO()
    print_sessions(sessions, wide, as_json=False, width=None)  # piped: nothing cut
    assert "x" * 70 in wide.getvalue()


def test_show_timeline(env: dict[str, str], spool: Builder) -> None:
    done = km(env, "show", "aaaa1111")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("session aaaa1111-0000-4000-8000-000000000001  server github")
    assert "km dropped 7 frames (4.0k) of this session" in lines[3]
    body = lines[4:]
    calls = [x for x in body if "tools/call" in x]
    assert len(calls) == 3  # each exchange on one line
    push = next(x for x in calls if "git_push" in x)
    assert "tool-error" in push and "3.00s" in push and "80" in push
    after_push = body[body.index(push) + 1]
    assert "HIGH R201 risk" in after_push  # its finding right under it
    dropped = next(i for i, x in enumerate(body) if "dropped 7 frames (4.0k)" in x)
    assert "CRITICAL F1 flow" in body[dropped - 1]  # the session's own finding, at its time


def test_show_full_and_filter(env: dict[str, str], spool: Builder) -> None:
    done = km(env, "show", "aaaa", "--full", "tool:git_push")
    assert done.returncode == 0, done.stderr
    assert '"Permission denied"' in done.stdout
    assert '"method": "tools/call"' in done.stdout  # pretty-printed, indented
    assert "git_status" not in done.stdout
    done = km(env, "show", "bbbb", "--json")
    docs = [orjson.loads(x) for x in done.stdout.splitlines()]
    assert docs[0]["type"] == "session"
    assert [d["status"] for d in docs[1:]] == ["ok", "pending"]


def test_bad_input_changes_nothing(env: dict[str, str], spool: Builder) -> None:
    before = fingerprint(spool.path)
    done = km(env, "show", "ffff")
    assert done.returncode == 1
    assert done.stderr == "km: no session 'ffff' in the spool (km sessions lists them)\n"
    done = km(env, "show", "")
    assert done.returncode == 1 and "ambiguous" in done.stderr
    done = km(env, "sessions", "latency>fast")
    assert done.returncode == 2
    first, *rest = done.stderr.splitlines()
    assert first == "km: bad filter at column 9: a number such as 500ms, 2s or 800us"
    assert rest == ["  latency>fast", "          ^"]
    done = km(env, "tail", "(tool:x", "--exit-when-idle")
    assert done.returncode == 2 and "column 8" in done.stderr
    assert fingerprint(spool.path) == before


def test_no_spool(env: dict[str, str]) -> None:
    done = km(env, "sessions")
    assert done.returncode == 1 and "no spool at" in done.stderr
    assert not os.path.exists(env["KM_SPOOL"])


def test_tail_history_pairs_and_escapes(env: dict[str, str], spool: Builder) -> None:
    done = km(env, "tail", "-n", "100", "--exit-when-idle")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sum("tools/call" in x for x in lines) == 5
    assert any("git_push" in x and "tool-error" in x for x in lines)
    assert any("slow" in x and "pending" in x for x in lines)
    done = km(env, "tail", "-n", "1", "--exit-when-idle", "--json", "server:github")
    docs = [orjson.loads(x) for x in done.stdout.splitlines()]
    assert [d["kind"] for d in docs] == ["dropped"]


def test_tail_escapes_what_it_prints(tmp_path: Path, env: dict[str, str]) -> None:
    b = Builder(tmp_path / "spool.db")
    sid = b.session("evil\x1b]0;pwned\x07[/bold]")
    b.exchange(sid, "tools/call", 1, latency_us=10, tool="t\u202eool")
    b.write()
    done = km(env, "tail", "--exit-when-idle")
    assert "\x1b" not in done.stdout and "\u202e" not in done.stdout
    assert "evil\\x1b]0;pwned\\x07[/bold]" in done.stdout
    assert "t\\u202eool" in done.stdout


def test_the_views_queries_use_their_indexes(spool: Builder) -> None:
    from km.views.spool_read import SpoolReader

    reader = SpoolReader.open(str(spool.path))
    try:

        def plan(sql: str, *params: object) -> str:
            rows = reader.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            return " | ".join(str(r[-1]) for r in rows)

        stats = plan(
            "SELECT sum(kind = 'request'), sum(status IN ('error')), sum(tokens), count(*),"
            " count(latency_us) FROM events WHERE session_id = ?",
            "x",
        )
        assert "COVERING INDEX events_session_latency" in stats
        p50 = plan(
            "SELECT latency_us FROM events WHERE session_id = ? AND latency_us IS NOT NULL"
            " ORDER BY latency_us LIMIT 1 OFFSET 3",
            "x",
        )
        assert "events_session_latency" in p50 and "TEMP B-TREE" not in p50
        from km.insight.filter import parse

        params: list[object] = []
        where = reader.where(parse("status:pending finding:high", now_ns=0), params)
        pending = plan(f"SELECT e.id FROM events e WHERE {where}", *params)
        assert "events_link" in pending and "findings_event" in pending
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("text", "servers"),
    [
        ("server:github", ["github"]),
        ("-server:github", ["time"]),  # a session without events is never listed with a filter
        ("server:github OR tool:convert_time", ["time", "github"]),
        ("server:time status:pending", ["time"]),
        ("server:time -tool:slow -tool:convert_time", []),
        ("(server:gith* tool:git_log) OR (session:bbbb* kind:response)", ["time", "github"]),
    ],
)
def test_sessions_filter_by_their_events(
    env: dict[str, str], spool: Builder, text: str, servers: list[str]
) -> None:
    done = km(env, "sessions", "--json", text)
    assert done.returncode == 0, done.stderr
    assert [s["server"] for s in orjson.loads(done.stdout)] == servers


def test_tail_session_and_since(env: dict[str, str], spool: Builder) -> None:
    done = km(env, "tail", "--session", "bbbb", "-n", "100", "--exit-when-idle", "--json")
    assert done.returncode == 0, done.stderr
    docs = [orjson.loads(x) for x in done.stdout.splitlines()]
    assert {d["server"] for d in docs} == {"time"} and len(docs) == 2
    done = km(env, "tail", "--session", "nope", "--exit-when-idle")
    assert done.returncode == 1 and "no session 'nope'" in done.stderr
    # the spool's events are from 2026-05-28: none within the last hour, all since that day
    done = km(env, "tail", "--since", "1h", "--exit-when-idle")
    assert done.returncode == 0 and done.stdout == ""
    done = km(env, "tail", "--since", "2026-05-01", "--exit-when-idle", "-n", "0", "--json")
    assert len(done.stdout.splitlines()) == 7  # 5 lines of github, 2 of time
