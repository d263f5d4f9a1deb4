"""The spool's insight tables: what the analysis learnt, written with the events, read back as
inventories and baselines, pinned by `approve`. Real SQLite files, real pipeline."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from km.events import S2C, SessionInfo
from km.insight.definitions import make_definition
from km.insight.session import SessionAnalyzer
from km.spool.insight import baseline_reader, load_snapshot, read_findings, read_inventories
from km.spool.store import SpoolStore
from tests.insight.test_session import BENIGN, POISONED, Session

MAX = 1 << 30


def session_info(session_id: str) -> SessionInfo:
    return SessionInfo(session_id, "calc", ("calc",), 1, "h", 1, "0.0.0")


def run(path: Path, session_id: str, *tools: object, version: str = "1.0") -> Session:
    """One session listing `tools`, analysed with the spool's baseline, stored."""
    analyzer = SessionAnalyzer("calc", baseline=baseline_reader(str(path)))
    s = Session(analyzer, session_id=session_id)
    s.initialize(version)
    s.list_tools(*tools)
    store = SpoolStore.open(str(path), MAX)
    try:
        store.begin_session(session_info(session_id))
        store.append(s.events)
    finally:
        store.close()
    return s


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_first_listing_is_the_inventory(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    run(path, "s1", BENIGN)
    db = sqlite3.connect(path)
    try:
        snap = load_snapshot(db, "calc", "calc-server", "tools/list")
        (inv,) = read_inventories(db)
    finally:
        db.close()
    assert snap is not None and snap.info_version == "1.0"
    assert snap.hashes == {"add": make_definition(BENIGN).hash}
    assert (inv.server, inv.info_name, inv.tokens is not None) == ("calc", "calc-server", True)
    (tool,) = inv.tools
    assert (tool.name, tool.sessions, tool.pinned, tool.first_hash) == (
        "add", 1, None, make_definition(BENIGN).hash
    )  # fmt: skip
    assert inv.changes == []
    assert rows(path, "SELECT session_id, info_name, info_version FROM server_identities") == [
        ("s1", "calc-server", "1.0")
    ]


def test_sessions_counted_and_drift_across_sessions(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    run(path, "s1", BENIGN)
    second = run(path, "s2", BENIGN)
    assert not [f for f in second.analyzer.findings if f.finding.kind == "drift"]
    assert rows(path, "SELECT sessions FROM definitions") == [(2,)]
    third = run(path, "s3", POISONED)
    (drift,) = [f.finding for f in third.analyzer.findings if f.finding.kind == "drift"]
    assert drift.rule == "D101"
    changes = rows(path, "SELECT name, change, fields, old_version, new_version FROM"
                   " definition_changes")  # fmt: skip
    assert changes == [("add", "changed", "description", "1.0", "1.0")]
    assert rows(path, "SELECT count(*) FROM definitions") == [(2,)]
    db = sqlite3.connect(path)
    try:
        kinds = {f["kind"] for f in read_findings(db)}
    finally:
        db.close()
    assert {"drift", "poisoning"} <= kinds


def test_a_batch_written_twice_stores_its_notes_once(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    run(path, "s1", BENIGN)
    s = run(path, "s2", POISONED)
    store = SpoolStore.open(str(path), MAX)
    try:
        store.append(s.events)  # retried after an unclear failure
    finally:
        store.close()
    assert rows(path, "SELECT count(*) FROM definition_changes") == [(1,)]
    findings = len(s.analyzer.findings)
    assert rows(path, "SELECT count(*) FROM findings") == [(findings,)]
    assert rows(path, "SELECT sessions FROM definitions ORDER BY first_seen_ns") == [(1,), (1,)]


def test_approve_pins_current_definitions(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    run(path, "s1", BENIGN, {"name": "sub"})
    store = SpoolStore.open(str(path), MAX)
    try:
        assert store.approve(5, "nope") == 0
        assert store.approve(5, "calc", "sub") == 1
        assert store.approve(6, "calc") == 2
        assert store.approve(7) == 2
    finally:
        store.close()
    pins = rows(path, "SELECT name, hash, info_version, approved_ns FROM pins ORDER BY name")
    assert pins == [
        ("add", make_definition(BENIGN).hash, "1.0", 7),
        ("sub", make_definition({"name": "sub"}).hash, "1.0", 7),
    ]


def test_problem_counts_are_saved_with_the_session(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    s = run(path, "s1", BENIGN, {"name": 3})
    assert s.analyzer.problems["listing-bad-name"] == 1
    assert rows(path, "SELECT insight_problems FROM sessions") == [('{"listing-bad-name":1}',)]


def test_baseline_reader_tolerates_a_missing_or_old_spool(tmp_path: Path) -> None:
    read = baseline_reader(str(tmp_path / "none.db"))
    assert read("calc", "calc-server", "tools/list") is None
    assert not (tmp_path / "none.db").exists()
    old = tmp_path / "old.db"
    sqlite3.connect(old).close()
    assert baseline_reader(str(old))("calc", None, "tools/list") is None


def test_a_change_announced_by_list_changed_is_marked(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    s = Session(SessionAnalyzer("calc"), session_id="s1")
    s.initialize()
    s.list_tools(BENIGN)
    s.send(S2C, {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    s.list_tools(POISONED)
    store = SpoolStore.open(str(path), MAX)
    try:
        store.begin_session(session_info("s1"))
        store.append(s.events)
    finally:
        store.close()
    assert rows(path, "SELECT name, change, announced FROM definition_changes") == [
        ("add", "changed", 1)
    ]
