"""kill -9 of km in the middle of a busy session, then delivery: a real `km cat` driven by a
client writing thousands of JSON-RPC lines is killed (the forwarding process alone, or its whole
process group with the forked capture process). The spool must pass `PRAGMA integrity_check`,
hold per direction an in-order subsequence of the lines that crossed the wire with their exact
bytes, and `km sync` to a real `km serve` must then store every spooled event exactly once
(the delivery checker). tests/proxy/test_capture_e2e.py checks the spool after such a kill;
this adds the delivery after it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KM, ProcessReaper
from tests.proxy.procs import read_line
from tests.uplink.fake_api import free_port
from tests.uplink.helpers import check
from tests.uplink.serve_proc import KmServe, read_back, sqlite_url

LINES = 100_000
READ_BEFORE_KILL = 10_000  # lines echoed back before the kill: capture is in full flow
LINE_S = 10.0
SETTLE_S = 30.0  # the capture process saving what it had, or the killed group disappearing
SYNC_S = 180.0


def line(i: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"p":"%s"}}\n' % (
        i,
        b"y" * 120,
    )


def query(spool: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def group_alive(pgid: int) -> bool:
    """A live (not zombie) process is still in process group `pgid`."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("victim", ["forwarding-process", "process-group"])
def test_kill_9_mid_capture_then_km_sync_delivers_every_spooled_event_once(
    victim: str, km_env: dict[str, str], spool_path: Path, tmp_path: Path, reaper: ProcessReaper
) -> None:
    for name in ("KM_API_URL", "KM_API_KEY"):
        km_env.pop(name, None)
    km_env["KM_CONFIG"] = str(tmp_path / "no-config.toml")  # no uplink during capture
    proc = reaper.popen(
        [*KM, "--name", "crash", "cat"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=km_env, start_new_session=True,  # its own group: killpg hits km, not pytest
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    sent = [line(i) for i in range(LINES)]
    stdin = proc.stdin

    def blast() -> None:
        try:
            for start in range(0, LINES, 100):
                stdin.write(b"".join(sent[start : start + 100]))
        except (BrokenPipeError, ValueError, OSError):
            pass

    writer = threading.Thread(target=blast, daemon=True)
    writer.start()
    for i in range(READ_BEFORE_KILL):
        assert read_line(proc.stdout.fileno(), LINE_S) == sent[i]
    if victim == "process-group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    writer.join(10)
    if victim == "process-group":
        wait_until(lambda: not group_alive(proc.pid), SETTLE_S, "the killed group to go")
        unended = "SELECT count(*) FROM sessions WHERE ended_ns IS NULL"
        assert query(spool_path, unended) == [(1,)], "the capture process died with km"
    else:  # the capture process saves what it had, ends the session and exits by itself
        ended = "SELECT count(*) FROM sessions WHERE ended_ns IS NOT NULL"
        wait_until(lambda: query(spool_path, ended) == [(1,)], SETTLE_S, "the session end")
        wait_until(lambda: not group_alive(proc.pid), SETTLE_S, "the capture process to exit")

    assert query(spool_path, "PRAGMA integrity_check") == [("ok",)]
    total = 0
    for direction in ("c2s", "s2c"):
        rows = query(
            spool_path,
            f"SELECT payload FROM events WHERE direction = '{direction}' "
            "AND kind != 'dropped' ORDER BY seq",
        )
        ids = [json.loads(bytes(r[0]))["id"] for r in rows]
        assert ids == sorted(set(ids)), f"{direction}: in order, no duplicates"
        assert all(bytes(r[0]) + b"\n" == sent[i] for r, i in zip(rows, ids, strict=True)), (
            f"{direction}: every captured line exactly as it crossed"
        )
        total += len(ids)
    assert total >= 1000, "the kill came before capture got going"

    serve = KmServe(reaper, sqlite_url(tmp_path), free_port(), tmp_path / "serve.log")
    key = serve.create_key()
    serve.start()
    km_env.update(KM_API_URL=serve.url, KM_API_KEY=key)
    sync = subprocess.run(
        [*KM, "sync", "-q"], capture_output=True, env=km_env, timeout=SYNC_S
    )  # fmt: skip
    assert sync.returncode == 0, sync.stderr
    serve.stop()
    counts, payloads = read_back(serve.database_url)
    ledger = check(spool_path, counts, payloads)
    ledger.assert_clean()
    (spooled,) = query(spool_path, "SELECT count(*) FROM events")[0]
    assert ledger.delivered == spooled >= total
