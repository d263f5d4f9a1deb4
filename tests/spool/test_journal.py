"""No session is lost silently while another process holds the spool: a real `sqlite3` shell
holds `BEGIN EXCLUSIVE` while a real km session runs and ends; its events go to a side journal
beside the spool (one stderr line says so), and the next `km status` or km stores them."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import KM
from tests.uplink.fake_api import GOOD_KEY, FakeApi, serving

LINES = 50
HOLD_S = 60  # the lock holder lets go by itself after this long, whatever the test does


def line(i: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"t"}}\n' % i


@contextmanager
def exclusive_lock(spool: Path) -> Iterator[None]:
    """A real `sqlite3` shell (or, without one, a Python connection in another process)
    holding `BEGIN EXCLUSIVE` on the spool until the block ends."""
    shell = shutil.which("sqlite3")
    if shell is not None:
        args = [shell, str(spool)]
        script = (
            f".bail on\n.timeout 10000\nBEGIN EXCLUSIVE;\n.print locked\n.shell sleep {HOLD_S}\n"
        )
    else:
        args = [sys.executable, "-c", (
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(spool)!r}, timeout=10, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
            f"time.sleep({HOLD_S})\n"
        )]  # fmt: skip
        script = ""
    holder = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write(script.encode())
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == b"locked"
        yield
    finally:
        holder.kill()
        holder.wait(10)
        for stream in (holder.stdin, holder.stdout):
            if stream is not None:
                stream.close()


def status(env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*KM, "status", "--json"], capture_output=True, env=env, timeout=60)


def journals(spool: Path) -> list[Path]:
    return [p for p in spool.parent.iterdir() if ".journal-" in p.name]


@pytest.fixture
def locked_session(km_env: dict[str, str], spool_path: Path) -> subprocess.CompletedProcess[bytes]:
    """A km session that ran and ended while the spool was exclusively locked."""
    km_env["KM_FLUSH"] = "1"
    first = subprocess.run([*KM, "cat"], input=line(0), capture_output=True, env=km_env, timeout=60)
    assert first.returncode == 0
    data = b"".join(line(i) for i in range(1, LINES + 1))
    with exclusive_lock(spool_path):
        # run() returns once the capture process (which holds stderr too) has finished
        result = subprocess.run(
            [*KM, "cat"], input=data, capture_output=True, env=km_env, timeout=60
        )
    assert result.returncode == 0 and result.stdout == data
    return result


def test_a_locked_spool_keeps_the_session_in_a_journal_folded_by_km_status(
    locked_session: subprocess.CompletedProcess[bytes], km_env: dict[str, str], spool_path: Path
) -> None:
    lines = [x for x in locked_session.stderr.decode().splitlines() if x.startswith("km:")]
    assert len(lines) == 1 and "locked by another process" in lines[0], locked_session.stderr
    assert len(journals(spool_path)) == 1
    shown = status(km_env)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["sessions_total"] == 2
    assert report["events_total"] == 2 + 2 * LINES  # both directions of both sessions
    sessions = {s["events"]: s for s in report["sessions"]}
    assert sessions[2 * LINES]["exit_code"] == 0 and sessions[2 * LINES]["ended_ns"] is not None
    assert journals(spool_path) == []
    # the capture's insight fields came through the journal: each request's tool is `t`
    db = sqlite3.connect(f"file:{spool_path}?mode=ro", uri=True)
    try:
        tools = db.execute(
            "SELECT tool, count(*) FROM events WHERE direction = 'c2s' GROUP BY tool"
        ).fetchall()
    finally:
        db.close()
    assert tools == [("t", 1 + LINES)]
    again = json.loads(status(km_env).stdout)  # folding twice stores nothing twice
    assert again["events_total"] == report["events_total"]


def test_the_next_km_session_folds_the_journal_in(
    locked_session: subprocess.CompletedProcess[bytes], km_env: dict[str, str], spool_path: Path
) -> None:
    assert len(journals(spool_path)) == 1
    nxt = subprocess.run([*KM, "cat"], input=line(99), capture_output=True, env=km_env, timeout=60)
    assert nxt.returncode == 0
    assert journals(spool_path) == []
    report = json.loads(status(km_env).stdout)
    assert report["sessions_total"] == 3
    assert report["events_total"] == 2 + 2 * LINES + 2


def test_km_status_says_when_journals_must_wait(
    locked_session: subprocess.CompletedProcess[bytes], km_env: dict[str, str], spool_path: Path
) -> None:
    with exclusive_lock(spool_path):
        started = time.monotonic()
        shown = subprocess.run([*KM, "status"], capture_output=True, env=km_env, timeout=60)
        assert time.monotonic() - started < 50
    assert b"wait in side journals" in shown.stderr
    assert len(journals(spool_path)) == 1


def test_km_sync_folds_the_journal_in_and_delivers_it(
    locked_session: subprocess.CompletedProcess[bytes], km_env: dict[str, str], spool_path: Path
) -> None:
    assert len(journals(spool_path)) == 1
    with serving(FakeApi()) as server:
        env = {**km_env, "KM_API_URL": server.url, "KM_API_KEY": GOOD_KEY}
        synced = subprocess.run([*KM, "sync"], capture_output=True, env=env, timeout=60)
    assert synced.returncode == 0, synced.stderr
    assert journals(spool_path) == []
    report = json.loads(status(km_env).stdout)
    assert report["delivery"]["sent"] == 2 + 2 * LINES
