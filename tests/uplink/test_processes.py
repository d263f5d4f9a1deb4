"""Several uplink processes on one spool (fake API): each event sent exactly once; and after a
kill -9 mid-upload, the dead uplink's leases expire and its events are delivered by another,
the ones the server already had acknowledged as duplicates and stored once."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

from km.events import IN_FLIGHT
from tests.conftest import ProcessReaper
from tests.uplink.fake_api import GOOD_KEY, FakeApi, serving
from tests.uplink.helpers import check, fill_spool, make_events, states, wait_for
from tests.uplink.procs import UplinkProcess, job, start_all

START_S = 30.0  # a child importing km and aiohttp on a busy machine
DRAIN_S = 120.0


def payloads(api: FakeApi) -> dict[str, bytes]:
    return {i: e["_bytes"] for i, e in api.stored.items()}


def latest_lease_ns(spool: Path) -> int:
    conn = sqlite3.connect(f"file:{spool}?mode=ro", uri=True)
    try:
        (until,) = conn.execute(
            "SELECT coalesce(max(lease_until_ns), 0) FROM events WHERE state = ?", (IN_FLIGHT,)
        ).fetchone()
        return int(until)
    finally:
        conn.close()


def test_eight_uplink_processes_send_each_event_exactly_once(
    tmp_path: Path, reaper: ProcessReaper
) -> None:
    spool = tmp_path / "spool.db"
    ids = fill_spool(spool, make_events(8000))
    api = FakeApi()
    with serving(api) as server:
        jobs = [job(server.url, GOOD_KEY, spool, tmp_path, max_events=50) for _ in range(8)]
        procs = start_all(reaper, jobs, START_S)
        for p in procs:
            assert GOOD_KEY.encode() not in p.cmdline()  # never in a process listing
        results = [p.result(DRAIN_S) for p in procs]
    check(spool, api.store_counts(), payloads(api)).assert_clean()
    assert sum(r["sent"] for r in results) == 8000
    assert sum(r["duplicates"] for r in results) == 0
    assert all(api.received[i] == 1 for i in ids), "an event was sent twice"
    assert sum(1 for r in results if r["sent"]) >= 2, "the uplinks did not run together"


def test_kill_9_mid_upload_leases_expire_duplicates_acknowledged(
    tmp_path: Path, reaper: ProcessReaper
) -> None:
    spool = tmp_path / "spool.db"
    fill_spool(spool, make_events(1000))
    api = FakeApi(hold=threading.Event())
    with serving(api) as server:
        victim = UplinkProcess(
            reaper,
            job(server.url, GOOD_KEY, spool, tmp_path, lease_s=1.5, request_timeout_s=1.0),
        )
        assert victim.read_line(START_S) == b"ready"
        victim.send("go")
        assert api.stored_batch.wait(DRAIN_S)  # the server stored a batch; no answer yet
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.proc.wait(10) == -signal.SIGKILL
        assert api.hold is not None
        api.hold.set()
        api.hold = None
        stranded = states(spool)["in_flight"]
        assert stranded >= 100  # its batch (and the claim it took ahead)
        until = latest_lease_ns(spool)
        wait_for(lambda: time.time_ns() > until, 10.0, "the dead uplink's leases to expire")
        (heir,) = start_all(reaper, [job(server.url, GOOD_KEY, spool, tmp_path)], START_S)
        result = heir.result(DRAIN_S)
    check(spool, api.store_counts(), payloads(api)).assert_clean()
    assert result["sent"] == 1000
    assert result["duplicates"] == 100  # the batch stored before the kill: stored once
    assert sum(api.duplicates.values()) == 100
