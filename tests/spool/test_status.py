"""read_status and `km status` on missing, empty, populated and busy spools."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from km.capture.pipeline import CapturePipeline
from km.events import QUARANTINED, SENT
from km.settings import Settings
from km.spool.schema import SCHEMA_VERSION
from km.spool.status import read_status
from km.spool.store import SpoolStore
from km.status_cmd import describe_age, describe_time, run_status
from tests.conftest import ProcessReaper
from tests.spool.helpers import PYTHON, make_event, make_session, write_db

NO_CAP = 1 << 40


def settings_for(path: Path) -> Settings:
    settings = Settings()
    settings.spool_path = str(path)
    return settings


def status_json(path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    assert run_status(settings_for(path), as_json=True) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return json.loads(out)


def populate(path: Path, live_pid: int) -> None:
    """Session a (ended, exit 0): 5 events. Session b (running as `live_pid`): 3 + a drop."""
    store = SpoolStore.open(str(path), NO_CAP)
    try:
        store.begin_session(make_session("a", "srv-a"))
        store.begin_session(make_session("b", "srv-b", pid=live_pid))
        store.append([make_event(n, session_id="a", server="srv-a") for n in range(5)])
        dropped = CapturePipeline("b", "srv-b").dropped(1, 2, frames=4, nbytes=400)
        store.append([make_event(n, session_id="b", server="srv-b", prefix="b") for n in range(3)])
        store.append([dropped])
        store.end_session("a", time.time_ns(), 0)
    finally:
        store.close()
    with write_db(path) as conn:
        conn.execute(
            "UPDATE events SET state = ? WHERE id IN ('ev-00000000', 'ev-00000001')", (SENT,)
        )
        conn.execute("UPDATE events SET state = ? WHERE id = 'b-00000000'", (QUARANTINED,))


def test_a_missing_spool_is_reported_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spool.db"
    assert read_status(str(path)) == {"path": str(path), "exists": False}
    assert run_status(settings_for(path), as_json=False) == 0
    out, _ = capsys.readouterr()
    assert "No spool yet at" in out and "km python -m mcp_server_time" in out
    doc = status_json(path, capsys)
    assert doc.pop("attention") == {"count": 0, "by_severity": {}, "error": None}
    assert doc == {"path": str(path), "exists": False}
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kind", ["fresh spool", "zero-byte file"])
def test_an_empty_spool(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    path = tmp_path / "spool.db"
    if kind == "fresh spool":
        SpoolStore.open(str(path), NO_CAP).close()
    else:
        path.write_bytes(b"")
    status = read_status(str(path))
    assert status["exists"] is True
    assert status["events_total"] == 0 and status["sessions"] == [] and status["live"] == []
    assert status["schema_version"] == (SCHEMA_VERSION if kind == "fresh spool" else 0)
    assert run_status(settings_for(path), as_json=False) == 0
    out, _ = capsys.readouterr()
    assert "is empty" in out and "km python -m mcp_server_time" in out


def test_a_populated_spool(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    populate(path, live_pid=os.getpid())
    status = read_status(str(path))

    assert status["schema_version"] == SCHEMA_VERSION
    assert status["events_total"] == 9
    assert status["events_by_state"] == {"pending": 6, "in_flight": 0, "sent": 2, "quarantined": 1}
    assert status["events_by_server"] == {"srv-a": 5, "srv-b": 4}
    assert status["dropped"] == {"frames": 4, "bytes": 400}
    assert status["evicted"] == {"events": 0, "bytes": 0}
    assert status["file_bytes"] == status["db_bytes"] + status["wal_bytes"] > 0
    assert status["sessions_total"] == 2

    by_id = {s["session_id"]: s for s in status["sessions"]}
    a, b = by_id["a"], by_id["b"]
    assert (a["server"], a["events"], a["exit_code"], a["live"]) == ("srv-a", 5, 0, False)
    assert a["ended_ns"] is not None and a["dropped"] == {"frames": 0, "bytes": 0}
    assert a["command"] == list(make_session().command)
    assert (b["server"], b["events"], b["ended_ns"], b["live"]) == ("srv-b", 4, None, True)
    assert b["dropped"] == {"frames": 4, "bytes": 400}
    assert [s["session_id"] for s in status["live"]] == ["b"]
    last_a = make_event(4).ts_ns
    assert a["last_capture_ns"] == last_a and status["last_capture_ns"] == last_a
    json.dumps(status)  # plain data


def test_evicted_totals(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    store = SpoolStore.open(str(path), 200_000)
    try:
        store.append([make_event(n, payload=b"z" * 1000) for n in range(400)])
        evicted = store.evict_if_needed()
    finally:
        store.close()
    status = read_status(str(path))
    assert evicted[0] > 0
    assert status["evicted"] == {"events": evicted[0], "bytes": evicted[1]}
    assert status["events_total"] == 400 - evicted[0]


def test_live_km_processes_are_found_by_pid_and_host(tmp_path: Path, reaper: ProcessReaper) -> None:
    path = tmp_path / "spool.db"
    child = reaper.popen([PYTHON, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    store = SpoolStore.open(str(path), NO_CAP)
    try:
        store.begin_session(make_session("running", "srv", pid=child.pid))
        store.begin_session(make_session("ended", "srv", pid=child.pid))
        store.end_session("ended", time.time_ns(), 0)
    finally:
        store.close()
    with write_db(path) as conn:
        conn.execute(
            "INSERT INTO sessions (session_id, server, command, pid, host, started_ns)"
            " VALUES ('elsewhere', 'srv', '[]', ?, 'another-host', 1)",
            (child.pid,),
        )

    assert [s["session_id"] for s in read_status(str(path))["live"]] == ["running"]

    assert child.stdin is not None
    child.stdin.close()
    assert child.wait(timeout=10) == 0
    status = read_status(str(path))
    assert status["live"] == []
    assert not any(s["live"] for s in status["sessions"])


def test_status_never_waits_for_writers(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    populate(path, live_pid=os.getpid())
    with write_db(path) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(
            "INSERT INTO events (id, session_id, server, direction, ts_ns, mono_ns, kind, size,"
            " payload) VALUES ('uncommitted', 'a', 'srv-a', 'c2s', 1, 1, 'request', 1, x'00')"
        )
        started = time.monotonic()
        status = read_status(str(path))  # a writer holds the write lock right now
        assert time.monotonic() - started < 1.0
        assert status["events_total"] == 9  # the uncommitted row is not seen
        writer.execute("COMMIT")  # and the reader did not get in the writer's way
    assert read_status(str(path))["events_total"] == 10


def test_json_output_is_read_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spool.db"
    populate(path, live_pid=os.getpid())
    doc = status_json(path, capsys)
    assert doc.pop("attention") == {"count": 0, "by_severity": {}, "error": None}
    assert doc == read_status(str(path))


def test_table_output_names_servers_and_relative_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "spool.db"
    populate(path, live_pid=os.getpid())
    assert run_status(settings_for(path), as_json=False) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for text in (str(path), "srv-a", "srv-b", "s ago", "live", "ended", "4 frames"):
        assert text in out


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s ago"),
        (3.9, "3 s ago"),
        (59, "59 s ago"),
        (60, "1 min ago"),
        (7200, "2 h ago"),
        (4 * 86400 + 5, "4 d ago"),
        (-3, "in 3 s"),
    ],
)
def test_describe_age(seconds: float, text: str) -> None:
    assert describe_age(int(seconds * 1e9)) == text


def test_describe_time_is_relative_and_absolute() -> None:
    now = time.time_ns()
    then = now - 3_000_000_000
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(then / 1e9))
    assert describe_time(then, now) == f"3 s ago ({stamp})"
    assert describe_time(None, now) == "-"
