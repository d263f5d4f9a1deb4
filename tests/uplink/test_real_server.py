"""The key scenarios again, against the real `km serve` application (km/server/app.py), each
over its SQLite and its PostgreSQL event store, read back through the store: drained with exact
payloads (equal as JSON where JSONB re-serializes), a poison event quarantined with the server's
own validation reason, its rate limit's Retry-After honoured, a revoked key pausing delivery
until `km login`, 8 uplink processes, and kill -9 mid-upload."""

from __future__ import annotations

import io
import itertools
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from km.spool.status import read_status
from km.uplink.cli import run_login
from km.uplink.config_file import update_config
from km.uplink.errors import KeyRejected
from km.uplink.run import start_background_uplink
from tests.conftest import ProcessReaper
from tests.uplink.helpers import (
    FAST,
    check,
    drain,
    fill_spool,
    make_events,
    make_settings,
    states,
    wait_for,
)
from tests.uplink.procs import UplinkProcess, job, start_all
from tests.uplink.real_api import backend, needs_server, real_api
from tests.uplink.test_processes import DRAIN_S, START_S, latest_lease_ns

pytestmark = needs_server
__all__ = ["backend"]  # the fixture: every test here runs over both stores
WAIT_S = 30.0


def test_drain_with_exact_payloads(backend: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    fill_spool(spool, make_events(2000))
    with real_api(tmp_path, backend) as api:
        result = drain(
            make_settings(tmp_path, api.url, api.key), spool, replace(FAST, max_events=500)
        )
        counts, payloads = api.stored()
    assert (result.sent, result.accepted, result.duplicates) == (2000, 2000, 0)
    check(spool, counts, payloads, json_equal=api.json_equal).assert_clean()


def test_poison_event_rejected_by_the_real_validator(backend: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    events = make_events(300)
    events[123].id = "not-a-uuid"
    ids = fill_spool(spool, events)
    with real_api(tmp_path, backend) as api:
        result = drain(make_settings(tmp_path, api.url, api.key), spool)
        counts, payloads = api.stored()
    assert (result.sent, result.quarantined) == (299, 1)
    check(spool, counts, payloads, json_equal=api.json_equal).assert_clean(
        {ids[123]: "id: expected a UUID"}
    )
    reasons = read_status(str(spool))["delivery"]["quarantine_reasons"]
    assert reasons == [{"reason": "id: expected a UUID (8-4-4-4-12 hex digits)", "events": 1}]


def test_rate_limit_retry_after_is_honoured(backend: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    fill_spool(spool, make_events(300))
    with real_api(tmp_path, backend, rate=1.0, burst=1.0) as api:
        result = drain(make_settings(tmp_path, api.url, api.key), spool)
        counts, payloads = api.stored()
        log = list(api.log)
    check(spool, counts, payloads, json_equal=api.json_equal).assert_clean()
    assert result.sent == 300
    statuses = [status for _, _, status in log]
    assert statuses.count(200) == 3 and 429 in statuses
    for (_, answered, status), (arrived, _, _) in itertools.pairwise(log):
        if status == 429:  # the server said Retry-After: 1
            assert arrived - answered >= 1.0, "a request came before Retry-After elapsed"


def test_revoked_key_pauses_until_km_login(backend: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    fill_spool(spool, make_events(400))
    with real_api(tmp_path, backend) as api:
        api.revoke(api.key_id)
        with pytest.raises(KeyRejected, match="revoked"):
            drain(make_settings(tmp_path, api.url, api.key), spool)
        settings = make_settings(tmp_path)
        update_config(settings.resolve_config_path(), {"api_url": api.url, "api_key": api.key})
        handle = start_background_uplink(settings, str(spool), FAST)
        try:
            wait_for(
                lambda: read_status(str(spool))["delivery"]["paused_status"] == 403,
                WAIT_S,
                "the pause",
            )
            paused = states(spool)
            # Nothing sent, nothing dropped; a batch claimed ahead may still hold its lease.
            assert paused["sent"] == 0 and paused["pending"] + paused["in_flight"] == 400
            fresh = api.new_key()
            code = run_login([], make_settings(tmp_path), stdin=io.StringIO(fresh + "\n"))
            assert code == 0
            wait_for(lambda: states(spool)["sent"] == 400, WAIT_S, "delivery to resume")
            assert handle.stop(5.0)
        finally:
            handle.stop(5.0)
        counts, payloads = api.stored()
    check(spool, counts, payloads, json_equal=api.json_equal).assert_clean()
    assert read_status(str(spool))["delivery"]["paused_reason"] is None


def test_eight_processes_exactly_once(backend: str, tmp_path: Path, reaper: ProcessReaper) -> None:
    spool = tmp_path / "spool.db"
    ids = fill_spool(spool, make_events(6000))
    with real_api(tmp_path, backend) as api:
        jobs = [job(api.url, api.key, spool, tmp_path, max_events=100) for _ in range(8)]
        procs = start_all(reaper, jobs, START_S)
        results = [p.result(DRAIN_S) for p in procs]
        counts, payloads = api.stored()
    check(spool, counts, payloads, json_equal=api.json_equal).assert_clean()
    assert sum(r["sent"] for r in results) == 6000
    assert all(api.accepted[i] == 1 for i in ids)
    assert sum(api.duplicates.values()) == 0  # no event was ever sent twice


def test_kill_9_mid_upload(backend: str, tmp_path: Path, reaper: ProcessReaper) -> None:
    spool = tmp_path / "spool.db"
    fill_spool(spool, make_events(1000))
    with real_api(tmp_path, backend) as api:
        api.hold = threading.Event()
        victim = UplinkProcess(
            reaper, job(api.url, api.key, spool, tmp_path, lease_s=1.5, request_timeout_s=1.0)
        )
        assert victim.read_line(START_S) == b"ready"
        victim.send("go")
        assert api.stored_batch.wait(DRAIN_S)
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.proc.wait(10) == -signal.SIGKILL
        api.hold.set()
        api.hold = None
        until = latest_lease_ns(spool)
        wait_for(lambda: time.time_ns() > until, 10.0, "the dead uplink's leases to expire")
        (heir,) = start_all(reaper, [job(api.url, api.key, spool, tmp_path)], START_S)
        result = heir.result(DRAIN_S)
        counts, payloads = api.stored()
    check(spool, counts, payloads, json_equal=api.json_equal).assert_clean()
    assert result["sent"] == 1000
    assert result["duplicates"] == 100  # acknowledged as duplicates, stored once
