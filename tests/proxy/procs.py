"""Helpers for tests that watch real processes."""

from __future__ import annotations

import os
import select
import time


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    state = stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3]
    return state not in (b"Z", b"X")


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.01)
    return not pid_alive(pid)


def read_line(fd: int, timeout: float) -> bytes:
    """Read one line from a raw fd, waiting at most `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    out = b""
    while not out.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"no complete line within {timeout}s (got {out!r})")
        piece = os.read(fd, 1)
        if not piece:
            raise EOFError(f"EOF before a complete line (got {out!r})")
        out += piece
    return out


def read_exactly(fd: int, n: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    out = b""
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"got {len(out)} of {n} bytes within {timeout}s")
        piece = os.read(fd, n - len(out))
        if not piece:
            raise EOFError(f"EOF after {len(out)} of {n} bytes")
        out += piece
    return out
