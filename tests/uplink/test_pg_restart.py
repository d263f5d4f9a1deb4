"""PostgreSQL itself restarted mid-ingest: the machine's own cluster, stopped (`-m fast`:
every connection terminated) and started again with `pg_ctlcluster`, while an uplink drains
into `km serve --database-url postgresql://...`. While the database is down the API answers 503
with Retry-After; it reconnects by itself, and every event is stored exactly once.

This is the only test that touches the cluster (marker `restarts_postgresql`); PostgreSQL tests
running at the same moment see it down for a second or two. It is started again in a `finally`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import ProcessReaper
from tests.server.conftest import PG_URL
from tests.uplink.fake_api import free_port
from tests.uplink.helpers import check, fill_spool, make_events, states
from tests.uplink.procs import job, start_all
from tests.uplink.serve_proc import KmServe, pg_database, poll_until, read_back, stored_count
from tests.uplink.test_faults import BATCH, FAULT_JOB, FIRST_BATCH_S
from tests.uplink.test_processes import START_S

pytestmark = pytest.mark.restarts_postgresql

EVENTS = 5000
PG_CTL_S = 60.0  # pg_ctlcluster stop or start, each (it waits until done)
DRAIN_S = 40.0  # the rest of the drain once the database is back
HTTP_S = 10.0


def cluster() -> list[str]:
    """`pg_ctlcluster` arguments for the local cluster at PG_URL, or skip saying why not."""
    parts = urlsplit(PG_URL)
    if parts.hostname not in ("127.0.0.1", "localhost") or (parts.port or 5432) != 5432:
        pytest.skip(f"KM_TEST_DATABASE_URL {parts.hostname}:{parts.port} is not this machine's")
    if shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        pytest.skip("pg_ctlcluster (Debian postgresql-common) is not installed")
    if os.geteuid() != 0:
        pytest.skip("restarting the cluster needs root")
    versions = sorted(os.listdir("/etc/postgresql"))
    if len(versions) != 1:
        pytest.skip(f"expected one PostgreSQL version in /etc/postgresql, found {versions}")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main"]


def pg_ctl(ctl: list[str], action: str, *flags: str) -> int:
    done = subprocess.run([*ctl, action, *flags], capture_output=True, timeout=PG_CTL_S)
    if action != "status":
        assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.returncode


def answer(
    url: str, key: str | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str]]:
    """Status and headers of a GET (or a POST when `body` is given)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_S) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_postgresql_restarted_mid_ingest(tmp_path: Path, reaper: ProcessReaper) -> None:
    ctl = cluster()
    started = time.monotonic()
    with pg_database() as url:
        spool = tmp_path / "spool.db"
        fill_spool(spool, make_events(EVENTS))
        serve = KmServe(reaper, url, free_port(), tmp_path / "serve.log")
        key = serve.create_key()
        serve.start()
        (uplink,) = start_all(reaper, [job(serve.url, key, spool, tmp_path, **FAULT_JOB)], START_S)
        assert poll_until(lambda: stored_count(url) >= BATCH, FIRST_BATCH_S)
        try:
            pg_ctl(ctl, "stop", "-m", "fast")
            assert pg_ctl(ctl, "status") != 0, "the cluster still runs after stop"
            sent_while_down = states(spool)["sent"]
            assert sent_while_down < EVENTS, "the drain ended before the database went down"
            empty = json.dumps({"events": []}).encode()
            status, headers = answer(f"{serve.url}/api/v1/events", key, empty)
            assert (status, headers.get("Retry-After")) == (503, "1")
            assert answer(f"{serve.url}/ready")[0] == 503
            assert answer(f"{serve.url}/health")[0] == 200  # the process itself is fine
        finally:
            if pg_ctl(ctl, "status") != 0:
                pg_ctl(ctl, "start")
        result = uplink.result(DRAIN_S)
        assert answer(f"{serve.url}/ready")[0] == 200
        serve.stop()
        counts, payloads = read_back(url)
    check(spool, counts, payloads, json_equal=True).assert_clean()
    log = (tmp_path / "serve.log").read_text()
    assert "unexpected error" not in log, "a database restart is a 503, never a 500"
    assert result["sent"] == EVENTS and len(counts) == EVENTS
    assert result["requests"] > EVENTS // BATCH, "no request failed while the database was down"
    assert time.monotonic() - started < 60.0, "bounded: the cluster is shared"
