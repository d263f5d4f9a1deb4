"""Scheduling (Linux): the capture process's batch policy, the forwarding process and the server
left with the default policy and slice; read back from /proc/<pid>/sched of a real session."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import KM, ProcessReaper
from tests.proxy.procs import read_line

SCHED_OTHER, SCHED_BATCH = 0, 3

pytestmark = pytest.mark.skipif(
    not os.path.exists(f"/proc/{os.getpid()}/sched"), reason="needs Linux /proc/<pid>/sched"
)


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


def test_capture_is_batch_forwarding_and_server_keep_the_default(
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
    if "se.slice" in forwarding:  # EEVDF (Linux 6.6+): the forwarding slice is the default
        assert forwarding["se.slice"] == server_fields["se.slice"]
    proc.stdin.close()
    assert proc.wait(20) == 0
