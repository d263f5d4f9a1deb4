"""Scheduling hints (Linux): the forwarding process's short slice, the capture process's batch
policy, the server left alone; read back from /proc/<pid>/sched of a real session."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from km.proxy.sched import FORWARDING_SLICE_NS
from tests.conftest import KM, ProcessReaper
from tests.proxy.procs import read_line

SCHED_OTHER, SCHED_BATCH = 0, 3

pytestmark = pytest.mark.skipif(
    not os.path.exists(f"/proc/{os.getpid()}/sched"), reason="needs Linux /proc/<pid>/sched"
)


def kernel_at_least(major: int, minor: int) -> bool:
    numbers = platform.release().split("-")[0].split(".")
    return (int(numbers[0]), int(numbers[1])) >= (major, minor)


def sched_fields(pid: int) -> dict[str, str]:
    fields = {}
    with open(f"/proc/{pid}/sched") as f:
        for line in f:
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
    return fields


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def test_forwarding_gets_the_short_slice_capture_batch_server_untouched(
    km_env: dict[str, str], reaper: ProcessReaper
) -> None:
    server = [sys.executable, "-c", "import os, sys; os.write(1, b'ready\\n'); sys.stdin.read()"]
    proc = reaper.popen([*KM, *server], env=km_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    assert read_line(proc.stdout.fileno(), 20) == b"ready\n"
    forks = children(proc.pid)
    capture = [p for p in forks if cmdline(p) == cmdline(proc.pid)]
    servers = [p for p in forks if p not in capture]
    assert len(capture) == 1 and len(servers) == 1
    forwarding, server_fields = sched_fields(proc.pid), sched_fields(servers[0])
    assert forwarding["policy"] == str(SCHED_OTHER)
    assert sched_fields(capture[0])["policy"] == str(SCHED_BATCH)
    assert server_fields["policy"] == str(SCHED_OTHER)
    if kernel_at_least(6, 12) and "se.slice" in forwarding:
        assert int(forwarding["se.slice"]) == FORWARDING_SLICE_NS
        assert int(server_fields["se.slice"]) != FORWARDING_SLICE_NS
    proc.stdin.close()
    assert proc.wait(20) == 0


def test_short_slice_keeps_the_users_nice_value() -> None:
    body = """
        import os
        from km.proxy.sched import short_slice
        os.nice(5)
        short_slice()
        print(os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0))
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body)], capture_output=True, check=True, timeout=30
    )
    assert out.stdout.split() == [b"5", str(SCHED_OTHER).encode()]
