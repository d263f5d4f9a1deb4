"""Capture through real km processes: many at once on one spool, kill -9 mid-capture, drops
counted, and km's own failures (unwritable or corrupt spool) never stopping the session."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import KM, ProcessReaper
from tests.proxy.procs import read_line


def line(i: int, pad: int = 100) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"p":"%s"}}\n' % (
        i,
        b"x" * pad,
    )


def query(spool: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def test_eight_km_processes_on_one_spool_lose_nothing(
    km_env: dict[str, str], spool_path: Path
) -> None:
    per_process = 1500
    data = b"".join(line(i) for i in range(per_process))
    procs = [
        subprocess.Popen(
            [*KM, "--name", f"server-{n}", "cat"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=km_env,
        )
        for n in range(8)
    ]
    results = [p.communicate(data, timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out == data
        assert err == b""
    rows = query(
        spool_path,
        "SELECT server, direction, count(*), count(DISTINCT rpc_id) FROM events "
        "WHERE kind != 'dropped' GROUP BY server, direction",
    )
    assert len(rows) == 16
    for _server, _direction, count, distinct in rows:
        assert count == per_process and distinct == per_process
    assert query(spool_path, "SELECT count(*) FROM events WHERE kind = 'dropped'") == [(0,)]
    ended = query(
        spool_path, "SELECT count(*) FROM sessions WHERE ended_ns IS NOT NULL AND exit_code = 0"
    )
    assert ended == [(8,)]


def test_kill_9_during_heavy_capture_leaves_a_consistent_spool(
    km_env: dict[str, str], spool_path: Path, reaper: ProcessReaper
) -> None:
    proc = reaper.popen(
        [*KM, "cat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=km_env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    sent: list[bytes] = [line(i, 300) for i in range(200_000)]
    stdin = proc.stdin

    def blast() -> None:
        try:
            for chunk_start in range(0, len(sent), 100):
                stdin.write(b"".join(sent[chunk_start : chunk_start + 100]))
        except (BrokenPipeError, ValueError, OSError):
            pass

    writer = threading.Thread(target=blast, daemon=True)
    writer.start()
    for _ in range(20_000):  # let a good amount flow through first
        read_line(proc.stdout.fileno(), 10)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    writer.join(10)
    # The capture process saves what it had and exits by itself; wait (bounded) for it.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if query(spool_path, "SELECT count(*) FROM sessions WHERE ended_ns IS NOT NULL") == [(1,)]:
            break
        time.sleep(0.05)
    assert query(spool_path, "PRAGMA integrity_check") == [("ok",)]
    captured = [
        bytes(r[0]) + b"\n"
        for r in query(
            spool_path, "SELECT payload FROM events WHERE direction = 'c2s' ORDER BY seq"
        )
    ]
    assert len(captured) >= 1000
    # Under this load the forwarding process may drop captures (counted, never waited for),
    # so what was captured is an in-order subsequence of what was sent, each line exact.
    ids = [json.loads(c)["id"] for c in captured]
    assert ids == sorted(set(ids)), "in order, no duplicates"
    assert all(c == sent[i] for c, i in zip(captured, ids, strict=True)), (
        "every captured line exact"
    )


def test_drops_are_counted_and_recorded_never_waited_for(
    km_env: dict[str, str], spool_path: Path
) -> None:
    km_env["KM_QUEUE_MAX_BYTES"] = "4k"
    data = b"".join(line(i, 2000) for i in range(3000))
    result = subprocess.run([*KM, "cat"], input=data, capture_output=True, env=km_env, timeout=60)
    assert result.returncode == 0
    assert result.stdout == data, "forwarding never loses a byte, whatever capture drops"
    stored = query(spool_path, "SELECT count(*) FROM events WHERE kind != 'dropped'")[0][0]
    drops = query(spool_path, "SELECT payload FROM events WHERE kind = 'dropped'")
    dropped = sum(json.loads(bytes(p[0]))["frames"] for p in drops)
    assert dropped > 0
    assert stored + dropped == 6000, "every frame is either stored or counted as dropped"
    status = subprocess.run([*KM, "status", "--json"], capture_output=True, env=km_env, timeout=30)
    assert json.loads(status.stdout)["dropped"]["frames"] == dropped


def test_unwritable_spool_never_stops_the_session(km_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    km_env["KM_SPOOL"] = str(blocker / "spool.db")
    data = b"".join(line(i) for i in range(500))
    result = subprocess.run([*KM, "cat"], input=data, capture_output=True, env=km_env, timeout=60)
    assert result.returncode == 0
    assert result.stdout == data
    lines = [x for x in result.stderr.decode().splitlines() if x.startswith("km:")]
    assert lines and len(lines) <= 2, result.stderr
    assert str(blocker) in lines[0]


def test_corrupt_spool_is_moved_aside_and_capture_goes_on(
    km_env: dict[str, str], spool_path: Path
) -> None:
    spool_path.write_bytes(b"this is not an SQLite database" * 100)
    data = b"".join(line(i) for i in range(100))
    result = subprocess.run([*KM, "cat"], input=data, capture_output=True, env=km_env, timeout=60)
    assert result.returncode == 0
    assert result.stdout == data
    assert b"corrupt" in result.stderr
    moved = [p for p in spool_path.parent.iterdir() if ".corrupt-" in p.name]
    assert moved
    assert query(spool_path, "SELECT count(*) FROM events") == [(200,)]


def test_km_never_writes_to_stdout_itself_even_when_failing(
    km_env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    km_env["KM_SPOOL"] = str(blocker / "spool.db")
    result = subprocess.run([*KM, "true"], capture_output=True, env=km_env, timeout=30)
    assert result.returncode == 0
    assert result.stdout == b""
    assert b"km:" in result.stderr
