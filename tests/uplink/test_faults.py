"""Faults with real processes on loopback, each judged by the delivery checker (every spooled
event stored exactly once, none lost): `km serve` killed with SIGKILL while a batch is in flight
and restarted on the same port and store (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ProcessReaper
from tests.uplink.fake_api import free_port
from tests.uplink.helpers import check, fill_spool, make_events, states
from tests.uplink.procs import job, start_all
from tests.uplink.serve_proc import (
    KmServe,
    pg_database,
    poll_until,
    read_back,
    sqlite_url,
    stored_count,
    unread_request,
)
from tests.uplink.test_processes import DRAIN_S, START_S

EVENTS = 3000
BATCH = 100
FIRST_BATCH_S = 60.0  # the uplink's first batch stored, from a cold start
IN_FLIGHT_S = 3.0  # the next request reaching the stopped server (else it had read it already)
# Quick retries and a quick breaker: the server is down for the time a restart takes.
FAULT_JOB = {"max_events": BATCH, "breaker_failures": 3, "breaker_open_s": 0.2,
             "breaker_max_open_s": 0.5}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    with pg_database() as url:
        yield url


def test_kill_9_of_the_api_mid_batch(
    database_url: str, tmp_path: Path, reaper: ProcessReaper
) -> None:
    spool = tmp_path / "spool.db"
    fill_spool(spool, make_events(EVENTS))
    serve = KmServe(reaper, database_url, free_port(), tmp_path / "serve.log")
    key = serve.create_key()
    serve.start()
    (uplink,) = start_all(reaper, [job(serve.url, key, spool, tmp_path, **FAULT_JOB)], START_S)
    assert poll_until(lambda: stored_count(database_url) >= BATCH, FIRST_BATCH_S)
    # Freeze the server, let the uplink's next request reach it, then kill it: that batch is
    # in flight (unread in the socket, or read and not answered) when the server dies.
    os.kill(serve.pid, signal.SIGSTOP)
    # No unread bytes within IN_FLIGHT_S: the server had read the request (the uplink, with
    # thousands pending, is never idle) and is holding it unanswered.
    poll_until(lambda: unread_request(serve.port), IN_FLIGHT_S)
    serve.kill9()
    before = stored_count(database_url)
    assert BATCH <= before < EVENTS, "the kill came too late to matter"
    assert states(spool)["sent"] < EVENTS
    serve.start()  # the same port, the same store
    result = uplink.result(DRAIN_S)
    serve.stop()
    counts, payloads = read_back(database_url)
    postgres = not database_url.startswith("sqlite")
    check(spool, counts, payloads, json_equal=postgres).assert_clean()
    assert result["sent"] == EVENTS
    assert result["requests"] > EVENTS // BATCH, "no request failed: the kill hit nothing"
    assert len(counts) == EVENTS
