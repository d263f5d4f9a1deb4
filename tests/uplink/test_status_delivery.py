"""`km status` shows delivery: counts by state, quarantine reasons grouped, breaker, pause,
last success and last error, the API with its key masked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from km.spool.schema import MIGRATIONS, migrate
from km.spool.status import read_status
from km.status_cmd import run_status
from km.uplink.errors import KeyRejected
from tests.uplink.fake_api import GOOD_KEY, FakeApi, serving
from tests.uplink.helpers import drain, fill_spool, make_events, make_settings

Capture = pytest.CaptureFixture[str]


def test_fresh_spool_has_empty_delivery(tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    fill_spool(spool, make_events(5))
    d = read_status(str(spool))["delivery"]
    assert (d["pending"], d["in_flight"], d["sent"], d["quarantined"]) == (5, 0, 0, 0)
    assert d["quarantine_reasons"] == [] and d["breaker"] is None
    assert d["paused_reason"] is None and d["last_success_ns"] is None
    assert d["oldest_pending_ts_ns"] == make_events(1)[0].ts_ns


def test_version_1_spool_reads_without_uplink_state(tmp_path: Path) -> None:
    spool = tmp_path / "old.db"
    conn = sqlite3.connect(str(spool), isolation_level=None)
    try:
        migrate(conn, str(spool), MIGRATIONS[:1])
    finally:
        conn.close()
    status = read_status(str(spool))
    assert status["schema_version"] == 1
    assert status["delivery"]["breaker"] is None


def test_status_after_quarantine_and_a_pause(tmp_path: Path, capsys: Capture) -> None:
    spool = tmp_path / "spool.db"
    ids = fill_spool(spool, make_events(300))
    api = FakeApi(reject_ids={ids[0]: "kind: nope", ids[1]: "kind: nope", ids[2]: "size: no"})
    bad = "km_live_" + "B" * 32
    with serving(api) as server:
        drain(make_settings(tmp_path, server.url, GOOD_KEY), spool)
        fill_spool(spool, make_events(40, start=300))
        with pytest.raises(KeyRejected):
            drain(make_settings(tmp_path, server.url, bad), spool)
    d = read_status(str(spool))["delivery"]
    assert (d["pending"], d["sent"], d["quarantined"]) == (40, 297, 3)
    assert d["pending_retried"] == 40  # the one attempt that got the 401
    assert d["quarantine_reasons"] == [
        {"reason": "kind: nope", "events": 2},
        {"reason": "size: no", "events": 1},
    ]
    assert d["breaker"] == "closed"
    assert d["paused_status"] == 401 and "run `km login`" in d["paused_reason"]
    assert d["last_success_url"] == server.url and d["last_success_events"] == 100
    assert "HTTP 401: unknown API key" in d["last_error"]

    settings = make_settings(tmp_path, server.url, bad)
    settings.set("spool_path", str(spool), "test")
    assert run_status(settings, as_json=False) == 0
    out = capsys.readouterr().out
    for text in ("delivery", "paused", "km login", "quarantined events", "kind: nope",
                 "km_live_BBBB…", "last success"):  # fmt: skip
        assert text in out, text
    assert bad not in out
    assert run_status(settings, as_json=True) == 0
    doc = orjson.loads(capsys.readouterr().out)
    # JSON output is read_status() and the findings that need attention
    assert set(doc) == set(read_status(str(spool))) | {"attention"}
    assert doc["delivery"]["quarantined"] == 3


def test_status_says_when_no_api_is_configured(tmp_path: Path, capsys: Capture) -> None:
    spool = tmp_path / "spool.db"
    fill_spool(spool, make_events(3))
    settings = make_settings(tmp_path)
    settings.set("spool_path", str(spool), "test")
    assert run_status(settings, as_json=False) == 0
    assert "not configured" in capsys.readouterr().out
