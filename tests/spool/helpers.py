"""Shared test helpers: events, sessions, and read-only looks into a spool file."""

from __future__ import annotations

import os
import select
import socket
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import km
from km.events import C2S, REQUEST, Event, SessionInfo

REPO_ROOT = str(Path(km.__file__).resolve().parent.parent)

EVENT_COLUMNS = (
    "id, session_id, server, direction, ts_ns, mono_ns, kind, method, rpc_id, size, payload,"
    " truncated, link_id, latency_us"
)


def make_session(
    session_id: str = "session-1", server: str = "srv", pid: int | None = None
) -> SessionInfo:
    return SessionInfo(
        session_id=session_id,
        server=server,
        command=("python", "-m", "mcp_server_time", "--local-timezone", "Europe/Paris"),
        pid=os.getpid() if pid is None else pid,
        host=socket.gethostname(),
        started_ns=time.time_ns(),
        km_version=km.__version__,
    )


def make_event(
    n: int,
    *,
    session_id: str = "session-1",
    server: str = "srv",
    payload: bytes | None = None,
    prefix: str = "ev",
) -> Event:
    body = payload if payload is not None else b'{"jsonrpc":"2.0","id":%d,"method":"ping"}' % n
    return Event(
        id=f"{prefix}-{n:08d}",
        session_id=session_id,
        server=server,
        direction=C2S,
        ts_ns=1_700_000_000_000_000_000 + n,
        mono_ns=1_000 + n,
        kind=REQUEST,
        method="ping",
        rpc_id=str(n),
        size=len(body),
        payload=body,
    )


def as_row(e: Event) -> tuple[object, ...]:
    """The event as `SELECT {EVENT_COLUMNS}` returns it."""
    return (
        e.id, e.session_id, e.server, e.direction, e.ts_ns, e.mono_ns, e.kind, e.method,
        e.rpc_id, e.size, e.payload, int(e.truncated), e.link_id, e.latency_us,
    )  # fmt: skip


@contextmanager
def read_db(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection, closed on exit (it must be: warnings are errors)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def query(path: str | Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with read_db(path) as conn:
        return conn.execute(sql, params).fetchall()


@contextmanager
def write_db(path: str | Path) -> Iterator[sqlite3.Connection]:
    """An autocommit read-write connection for arranging a test's state, closed on exit."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def child_env() -> dict[str, str]:
    """The environment for a real child Python that imports km from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


PYTHON = sys.executable


def read_line(fd: int, timeout: float) -> bytes:
    """One line from a pipe, waiting at most `timeout` seconds in all (b"" at EOF)."""
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no complete line in {timeout} s (got {line!r})"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            byte = os.read(fd, 1)
            if not byte:
                return line
            line += byte
    return line
