"""The views over big spools: `km sessions` over 1,000,000 events (goal: < 300 ms), and
`km tail` keeping up (goal: >= 20,000 events/s).

The 1,000,000-event spool is built once per run (direct inserts under the real schema: 200
sessions of 5,000 events, half requests and half replies with latency, tokens and status,
~120-byte payloads; about 40 s and 400 MB here) and read by each case. `extra_info` carries the
figure each goal is about.
"""

from __future__ import annotations

import io
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from km.insight.filter import parse
from km.spool.schema import migrate
from km.views.cli import DEFAULT_SESSIONS, list_spool_sessions
from km.views.spool_read import SpoolReader
from km.views.tail import Output, TailOptions, follow

EVENTS = 1_000_000
SESSIONS = 200
PER_SESSION = EVENTS // SESSIONS
T0 = 1_780_000_000 * 10**9
TAIL_EVENTS = 100_000
PAYLOAD = (
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
    b'"params":{"name":"git_status","arguments":{"repo_path":"/src/project"}}}'
)


def _build(path: Path, events: int, sessions: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    migrate(conn, str(path))
    per = events // sessions
    ts = T0
    for s in range(sessions):
        sid = str(uuid.UUID(int=s + 1))
        server = ("github", "filesystem", "time", "memory")[s % 4]
        conn.execute(
            "INSERT INTO sessions (session_id, server, command, pid, host, started_ns, ended_ns)"
            " VALUES (?, ?, '[\"npx\"]', 1, 'box', ?, ?)",
            (sid, server, ts, ts + per * 1_000_000),
        )
        rows: list[tuple[object, ...]] = []
        for n in range(per // 2):
            ts += 1_000_000
            req = f"{s:04d}-{n:06d}-q"
            status = "ok" if n % 50 else "tool-error"
            rows.append(
                (
                    req,
                    sid,
                    server,
                    "c2s",
                    ts,
                    ts,
                    "request",
                    "tools/call",
                    str(n),
                    len(PAYLOAD),
                    PAYLOAD,
                    None,
                    None,
                    "git_status",
                    None,
                    40,
                    10,
                )
            )
            rows.append((f"{s:04d}-{n:06d}-r", sid, server, "s2c", ts + 500, ts + 500, "response",
                         "tools/call", str(n), len(PAYLOAD), PAYLOAD, req, 100 + n % 5000,
                         "git_status", status, 120, 10))  # fmt: skip
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO events (id, session_id, server, direction, ts_ns, mono_ns, kind, method,"
            " rpc_id, size, payload, link_id, latency_us, tool, status, tokens, risk)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("views") / "spool.db"
    _build(path, EVENTS, SESSIONS)
    yield path


@pytest.mark.parametrize("text", ["", "server:github", "tool:git_* status:tool-error"])
def test_km_sessions_over_a_million_events(
    benchmark: BenchmarkFixture, million: Path, text: str
) -> None:
    benchmark.group = "km sessions, 1,000,000-event spool (goal < 300 ms)"
    flt = parse(text, now_ns=time.time_ns()) if text else None
    found = benchmark(list_spool_sessions, str(million), flt, DEFAULT_SESSIONS)
    assert len(found) == DEFAULT_SESSIONS
    assert all(s["calls"] == PER_SESSION // 2 for s in found)
    benchmark.extra_info["filter"] = text or "(none)"
    assert benchmark.stats is not None
    benchmark.extra_info["mean_ms"] = round(benchmark.stats.stats.mean * 1000, 1)


@pytest.fixture(scope="module")
def tail_spool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("tail") / "spool.db"
    _build(path, TAIL_EVENTS, 20)
    yield path


@pytest.mark.parametrize(
    ("form", "text"),
    [("plain", ""), ("json", ""), ("terminal", ""), ("plain", "status:ok")],
)
def test_km_tail_rate(benchmark: BenchmarkFixture, tail_spool: Path, form: str, text: str) -> None:
    benchmark.group = "km tail, 100,000 events read, paired and printed (goal >= 20,000/s)"
    flt = parse(text, now_ns=time.time_ns()) if text else None

    def run() -> int:
        out = io.StringIO()
        options = TailOptions(flt, from_start=True, as_json=form == "json", exit_when_idle=True)
        terminal = form == "terminal"  # rich, colours, 120 columns
        output = Output(out, options.as_json, terminal, 120 if terminal else None)
        follow(lambda: SpoolReader.open(str(tail_spool)), options, output)
        return out.getvalue().count("\n") - (1 if terminal else 0)  # the header

    lines = benchmark.pedantic(run, rounds=3, iterations=1)  # type: ignore[no-untyped-call]
    exchanges = TAIL_EVENTS // 2
    # one line per exchange (status:ok: per ok reply; every 50th is a tool error)
    assert lines == (exchanges if not text else exchanges - exchanges // 50)
    assert benchmark.stats is not None
    rate = TAIL_EVENTS / benchmark.stats.stats.mean
    benchmark.extra_info["events_per_s"] = round(rate)
    benchmark.extra_info["form"] = f"{form} {text}".strip()


def test_km_tail_idle_cpu(benchmark: BenchmarkFixture, tail_spool: Path, tmp_path: Path) -> None:
    """CPU a following `km tail` uses while nothing is written: 5 s of polls."""
    import os
    import subprocess
    import sys

    benchmark.group = "km tail idle (goal: almost no CPU)"
    env = dict(os.environ, KM_SPOOL=str(tail_spool), KM_CONFIG=str(tmp_path / "none.toml"))

    def run() -> float:
        with subprocess.Popen(
            [sys.executable, "-m", "km", "tail", "-n", "0"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ) as proc:  # fmt: skip
            time.sleep(1.0)  # started and polling
            before = _cpu_s(proc.pid)
            time.sleep(5.0)
            used = _cpu_s(proc.pid) - before
            proc.terminate()
            proc.wait(timeout=10)
        return used

    used = benchmark.pedantic(run, rounds=1, iterations=1)  # type: ignore[no-untyped-call]
    benchmark.extra_info["cpu_percent_idle"] = round(100 * used / 5.0, 2)
    assert used < 5.0


def _cpu_s(pid: int) -> float:
    import os

    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
