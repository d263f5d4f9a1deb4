"""A burst sent the moment km starts, through real km processes into a real spool: forwarded
byte for byte, every line captured while the capture process starts (the start-up spill), and
past the spill's bound, drops counted exactly."""

from __future__ import annotations

import json
import os
import select
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import KM, ProcessReaper
from tests.proxy.test_capture_e2e import query

MIB = 1 << 20
PAYLOAD_CAP = 64 * 1024  # km's default: a stored payload is the line's first 64 KiB
IO_TIMEOUT_S = 120.0  # the whole burst there and back, on a loaded machine
SPOOL_TIMEOUT_S = 60.0  # for the capture process to have saved the session after km exits


def numbered_line(i: int, size: int) -> bytes:
    """A JSON-RPC request of exactly `size` bytes (newline included), its body told by `i`."""
    head = b'{"jsonrpc":"2.0","id":%d,"method":"bench/blob","params":{"data":"' % i
    tail = b'"}}\n'
    fill = bytes([0x61 + i % 26]) * (size - len(head) - len(tail))
    return head + fill + tail


def burst_through_km(
    reaper: ProcessReaper, env: dict[str, str], lines: list[bytes]
) -> tuple[bytes, bytes, int]:
    """Start `km cat` and at once write every line while reading what comes back; returns
    (stdout, stderr, exit code)."""
    proc = reaper.popen(
        [*KM, "cat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        bufsize=0,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin = proc.stdin

    def write_all() -> None:
        try:
            for line in lines:
                stdin.write(line)
            stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    writer = threading.Thread(target=write_all, daemon=True)
    writer.start()
    expected = sum(len(line) for line in lines)
    out = bytearray()
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + IO_TIMEOUT_S
    while True:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"{len(out)} of {expected}"
        piece = os.read(fd, 1 << 20)
        if not piece:
            break
        out += piece
    writer.join(IO_TIMEOUT_S)
    code = proc.wait(IO_TIMEOUT_S)
    return bytes(out), proc.stderr.read(), code


def wait_session_ended(spool: Path) -> None:
    deadline = time.monotonic() + SPOOL_TIMEOUT_S
    while time.monotonic() < deadline:
        if query(spool, "SELECT count(*) FROM sessions WHERE ended_ns IS NOT NULL") == [(1,)]:
            return
        time.sleep(0.05)
    raise AssertionError("the capture process did not end the session in time")


def events(spool: Path, direction: str) -> list[tuple[Any, ...]]:
    return query(
        spool,
        "SELECT rpc_id, size, truncated, payload FROM events "
        "WHERE direction = ? AND kind != 'dropped' ORDER BY seq",
        direction,
    )


def dropped_frames(spool: Path) -> int:
    rows = query(spool, "SELECT payload FROM events WHERE kind = 'dropped'")
    return sum(json.loads(bytes(p[0]))["frames"] for p in rows)


def test_64_mib_of_1_mib_lines_at_spawn_forwarded_exactly_and_all_captured(
    km_env: dict[str, str], spool_path: Path, reaper: ProcessReaper
) -> None:
    lines = [numbered_line(i, MIB) for i in range(64)]
    out, err, code = burst_through_km(reaper, km_env, lines)
    assert code == 0, err
    assert out == b"".join(lines), "forwarded byte for byte"
    assert b"not captured" not in err, err
    wait_session_ended(spool_path)
    assert dropped_frames(spool_path) == 0
    for direction in ("c2s", "s2c"):
        stored = events(spool_path, direction)
        assert [r[0] for r in stored] == [str(i) for i in range(64)], direction
        for (_, size, truncated, payload), line in zip(stored, lines, strict=True):
            assert (size, truncated) == (MIB - 1, 1)
            assert bytes(payload) == line[:PAYLOAD_CAP]


def test_a_burst_past_the_spill_is_forwarded_and_its_drops_counted_exactly(
    km_env: dict[str, str], spool_path: Path, reaper: ProcessReaper
) -> None:
    # A 256 KiB queue: a 4 MiB spill (16 x; its 4096 frames are not the bound with 2 KiB
    # lines), far below the 32 MiB sent at spawn.
    km_env["KM_QUEUE_MAX_BYTES"] = str(256 * 1024)
    lines = [numbered_line(i, 2048) for i in range(16 * 1024)]
    out, err, code = burst_through_km(reaper, km_env, lines)
    assert code == 0, err
    assert out == b"".join(lines), "forwarding never loses a byte, whatever capture drops"
    wait_session_ended(spool_path)
    dropped = dropped_frames(spool_path)
    stored_bytes = 0
    stored_count = 0
    for direction in ("c2s", "s2c"):
        stored = events(spool_path, direction)
        ids = [int(r[0]) for r in stored]
        assert ids == sorted(set(ids)), "in order, no duplicates"
        assert all(bytes(r[3]) + b"\n" == lines[i] for r, i in zip(stored, ids, strict=True))
        stored_count += len(stored)
        stored_bytes += sum(len(lines[i]) for i in ids)
    assert dropped > 0
    assert stored_count + dropped == 2 * len(lines), "every frame stored or counted as dropped"
    assert stored_bytes > 4 * MIB, "the spill held more than the queue alone would"
    assert f"{dropped} messages not captured".encode() in err
