"""Records reach the capture process when the session goes quiet, not only at its end: the
forwarding loop's idle timer (`km/proxy/idle_timer.py`) and the framing it defers until then
(`Relay.frame_deferred`)."""

from __future__ import annotations

import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from km.proxy.idle_timer import IdleTimer
from tests.conftest import KM
from tests.proxy.procs import read_line

WAIT_S = 30.0  # bounded waits on a busy machine; a pass takes milliseconds


def captured(spool: Path) -> list[tuple[str, str]]:
    """(direction, rpc_id) of the spooled messages, oldest first; [] before the spool exists."""
    if not spool.exists():
        return []
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=10.0)
    try:
        rows = db.execute(
            "SELECT direction, rpc_id FROM events WHERE kind != 'dropped' ORDER BY seq"
        ).fetchall()
    except sqlite3.OperationalError:
        return []  # the schema is not there yet
    finally:
        db.close()
    return [(str(d), str(i)) for d, i in rows]


def wait_for(spool: Path, count: int, proc: subprocess.Popen[bytes]) -> list[tuple[str, str]]:
    deadline = time.monotonic() + WAIT_S
    while len(rows := captured(spool)) < count:
        assert proc.poll() is None, "km ended before its records were spooled"
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)
    return rows


def call(i: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"t"}}\n' % i


def test_a_quiet_sessions_messages_are_spooled_while_it_stays_open(
    km_env: dict[str, str], spool_path: Path
) -> None:
    proc = subprocess.Popen([*KM, "cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=km_env)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for i in (1, 2, 3):
            proc.stdin.write(call(i))
            proc.stdin.flush()
            assert read_line(proc.stdout.fileno(), WAIT_S) == call(i)
        rows = wait_for(spool_path, 6, proc)  # each call went both ways through `cat`
        assert sorted(i for _, i in rows) == ["1", "1", "2", "2", "3", "3"]
        # Quiet again after more traffic: the timer was disarmed and is armed again.
        for i in (4, 5):
            proc.stdin.write(call(i))
            proc.stdin.flush()
            assert read_line(proc.stdout.fileno(), WAIT_S) == call(i)
        rows = wait_for(spool_path, 10, proc)
        assert [i for _, i in rows[6:]].count("5") == 2
    finally:
        proc.stdin.close()
        code = proc.wait(WAIT_S)
        proc.stdout.close()
    assert code == 0
    assert len(captured(spool_path)) == 10  # nothing twice


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")
def test_the_idle_timer_ticks_only_while_armed() -> None:
    timer = IdleTimer.create(2)
    assert timer is not None
    poller = select.poll()
    poller.register(timer.fd, select.POLLIN)
    try:
        assert poller.poll(0) == []  # created disarmed
        timer.arm()
        assert poller.poll(int(WAIT_S * 1000)) == [(timer.fd, select.POLLIN)]
        timer.consume()
        assert poller.poll(int(WAIT_S * 1000)) == [(timer.fd, select.POLLIN)]  # it ticks on
        timer.disarm()
        assert not timer.armed
        assert poller.poll(50) == []  # disarmed: no tick, and the one pending was cleared
        timer.arm()
        assert poller.poll(int(WAIT_S * 1000)) == [(timer.fd, select.POLLIN)]
    finally:
        timer.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")
def test_a_refused_timer_says_so_and_never_raises() -> None:
    timer = IdleTimer.create(2)
    assert timer is not None
    timer.close()  # the kernel now refuses every call on it (EBADF)
    assert timer.arm() is False and not timer.armed  # the loop then waits with poll timeouts
    timer.armed = True
    timer.disarm()  # refused: it says it still ticks rather than raise
    assert timer.armed
