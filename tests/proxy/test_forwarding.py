"""Bytes through km arrive unchanged, in order, and at once (no waiting for a newline)."""

from __future__ import annotations

import os
import random
import subprocess
import threading

from tests.conftest import KM, ProcessReaper
from tests.proxy.procs import read_exactly

PIPES = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL}


def test_every_byte_round_trips_unchanged_through_cat(km_env: dict[str, str]) -> None:
    rng = random.Random(1234)
    pieces = [
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}\n',
        b"\xff\xfe\xfd invalid utf-8\r\n",
        b"banner line from a chatty server\n",
        b"[" + b'{"jsonrpc":"2.0","id":2,"method":"ping"},' * 3 + b"{}]\n",
        b"\n\n\r\n",
        bytes(rng.getrandbits(8) for _ in range(200_000)),
        b"x" * 3_000_000 + b"\n",
        b"no newline at the very end",
    ]
    data = b"".join(pieces)
    result = subprocess.run([*KM, "cat"], input=data, capture_output=True, env=km_env, timeout=60)
    assert result.returncode == 0
    assert result.stdout == data


def test_partial_line_is_forwarded_before_its_newline(
    km_env: dict[str, str], reaper: ProcessReaper
) -> None:
    proc = reaper.popen([*KM, "cat"], env=km_env, **PIPES)
    assert proc.stdin is not None and proc.stdout is not None
    os.write(proc.stdin.fileno(), b'{"jsonrpc":"2.0","id":1,')
    assert read_exactly(proc.stdout.fileno(), 24, 10) == b'{"jsonrpc":"2.0","id":1,'
    os.write(proc.stdin.fileno(), b'"method":"ping"}\n')
    assert read_exactly(proc.stdout.fileno(), 17, 10) == b'"method":"ping"}\n'
    proc.stdin.close()
    assert proc.wait(10) == 0


def test_both_directions_at_once_keep_order(km_env: dict[str, str], reaper: ProcessReaper) -> None:
    lines = [
        b'{"jsonrpc":"2.0","id":%d,"method":"echo","params":"%s"}\n' % (i, b"p" * (i % 977))
        for i in range(20_000)
    ]
    proc = reaper.popen([*KM, "cat"], env=km_env, **PIPES)
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin

    def write_all() -> None:
        for line in lines:
            stdin.write(line)
        stdin.close()

    writer = threading.Thread(target=write_all)
    writer.start()
    out = proc.stdout.read()
    writer.join(30)
    assert out == b"".join(lines)
    assert proc.wait(10) == 0
