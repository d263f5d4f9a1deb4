"""Process-group facts from /proc: who is in a group, their peak RSS, waiting for them to end.

A relay may leave work behind after it exits (km's capture process saves the last events), and
may fork helpers that are part of its cost. These functions see them through the process group
every child of the harness gets (benchmarks/driver.py).
"""

from __future__ import annotations

import contextlib
import os
import select
import time


def _live_processes() -> list[tuple[int, int, int]]:
    """(pid, ppid, pgid) of every live (not zombie) process."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (comm) "
        if len(fields) > 2 and fields[0] != b"Z":
            found.append((int(name), int(fields[1]), int(fields[2])))
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid`."""
    return [pid for pid, _, group in _live_processes() if group == pgid]


def descendants(pid: int) -> list[int]:
    """Live children, grandchildren... of `pid`, whatever their process group (km puts its
    server in a group of its own)."""
    children: dict[int, list[int]] = {}
    for child, parent, _ in _live_processes():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = list(children.get(pid, ()))
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, ()))
    return found


def cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def vmhwm(pid: int) -> int | None:
    """Peak resident set size of `pid` in bytes (VmHWM), None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for row in f:
                if row.startswith(b"VmHWM:"):
                    return int(row.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def family_peak_rss(pid: int) -> tuple[int, ...]:
    """VmHWM of `pid`, then of each of its forks in its group (same command line, e.g. km's
    capture process); not the server it runs, whose command line differs. Empty if gone."""
    own = cmdline(pid)
    first = vmhwm(pid)
    if own is None or first is None:
        return ()
    forks = [vmhwm(p) for p in group_members(pid) if p != pid and cmdline(p) == own]
    return (first, *(rss for rss in forks if rss is not None))


def wait_group_empty(pgid: int, deadline_ns: int) -> list[int]:
    """Wait (pidfd + poll, no sleeps) until no live process is left in the group, or the
    deadline; returns the ones still alive."""
    while True:
        members = group_members(pgid)
        if not members:
            return []
        for pid in members:
            try:
                fd = os.pidfd_open(pid)
            except OSError:  # already gone
                continue
            try:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                left_ms = max(0, (deadline_ns - time.perf_counter_ns()) // 1_000_000)
                if not poller.poll(left_ms):
                    return group_members(pgid)
            finally:
                with contextlib.suppress(OSError):
                    os.close(fd)
