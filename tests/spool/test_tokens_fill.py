"""Tokens left uncounted by the capture process, counted in the spool by its readers
(km/spool/tokens.py): the same figures the counting analyzer gives, once, never through a
spool the reader may not write. Real SQLite files, the real pipeline and analyzer."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

from km.events import SessionInfo
from km.insight.session import SessionAnalyzer
from km.spool.store import SpoolStore
from km.spool.tokens import CURSOR, TokenFiller, fill_tokens
from tests.insight.test_session import BENIGN, POISONED, Session

MAX = 1 << 30
POISONED_OTHER = {**POISONED, "name": "sub"}
RESULT = {"content": [{"type": "text", "text": "the sum of one and two is three"}]}


def session(count_tokens: bool, session_id: str = "s1") -> Session:
    s = Session(SessionAnalyzer("calc", count_tokens=count_tokens), session_id=session_id)
    s.initialize()
    s.list_tools(BENIGN, {**BENIGN, "name": "add_more"}, POISONED_OTHER)
    s.call("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}, RESULT)
    s.call("tools/call", {"name": "add"}, RESULT)
    s.call("prompts/get", {"name": "p"}, {"messages": [{"content": {"text": "hello there"}}]})
    s.send("c2s", {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})
    return s


def store(path: Path, s: Session, session_id: str = "s1") -> None:
    spool = SpoolStore.open(str(path), MAX)
    try:
        spool.begin_session(SessionInfo(session_id, "calc", ("calc",), 1, "h", 1, "0.0.0"))
        spool.append(s.events)
    finally:
        spool.close()


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_the_fill_gives_what_the_counting_analyzer_gives(tmp_path: Path) -> None:
    counted, uncounted = tmp_path / "counted.db", tmp_path / "uncounted.db"
    store(counted, session(count_tokens=True))
    store(uncounted, session(count_tokens=False))
    events = "SELECT kind, method, tokens FROM events ORDER BY seq"
    assert all(t is None for _, _, t in rows(uncounted, events))
    assert rows(uncounted, "SELECT tokens FROM inventory_lists") == [(None,)]

    filled = fill_tokens(str(uncounted))

    assert filled.definitions == 3 and filled.events > 0
    assert rows(uncounted, events) == rows(counted, events)
    assert any(t for _, _, t in rows(counted, events))  # there was something to count
    definitions = "SELECT name, hash, tokens FROM definitions ORDER BY name"
    assert rows(uncounted, definitions) == rows(counted, definitions)
    lists = "SELECT server, kind, tokens FROM inventory_lists"
    assert rows(uncounted, lists) == rows(counted, lists)
    (total,) = rows(uncounted, "SELECT tokens FROM inventory_lists")[0]
    assert total == sum(t for _, _, t in rows(uncounted, definitions)) > 0


def test_a_second_fill_counts_only_what_is_new_and_writes_nothing_when_idle(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool.db"
    store(path, session(count_tokens=False))
    first = fill_tokens(str(path))
    assert first.events > 0
    (cursor,) = rows(path, f"SELECT seq FROM export_cursors WHERE name = '{CURSOR}'")[0]
    assert cursor == rows(path, "SELECT max(seq) FROM events")[0][0]

    before = {p: os.stat(p).st_mtime_ns for p in (path, Path(f"{path}-wal")) if p.exists()}
    again = fill_tokens(str(path))
    assert (again.events, again.definitions) == (0, 0)
    after = {p: os.stat(p).st_mtime_ns for p in (path, Path(f"{path}-wal")) if p.exists()}
    assert after == before  # nothing new: not even the cursor was written

    store(path, session(count_tokens=False, session_id="s2"), "s2")
    more = fill_tokens(str(path))
    assert 0 < more.events <= first.events  # the new session's content events only
    assert rows(path, "SELECT count(*) FROM events WHERE session_id = 's2' AND tokens > 0")[0][
        0
    ] == rows(path, "SELECT count(*) FROM events WHERE session_id = 's1' AND tokens > 0")[0][0]


def test_a_bounded_fill_goes_on_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    store(path, session(count_tokens=False))
    filler = TokenFiller(str(path))
    try:
        seen = 0
        for _ in range(100):  # bounded: one event per call
            n = filler.fill(max_events=1).events
            if n == 0:
                break
            seen += n
    finally:
        filler.close()
    whole = tmp_path / "whole.db"
    store(whole, session(count_tokens=False))
    assert seen == fill_tokens(str(whole)).events > 1
    events = "SELECT tokens FROM events ORDER BY seq"
    assert rows(path, events) == rows(whole, events)


def test_a_spool_that_cannot_be_written_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    store(path, session(count_tokens=False))
    link = tmp_path / "link.db"
    link.symlink_to(path)
    assert fill_tokens(str(link)).events == 0  # never through a planted link
    assert fill_tokens(str(tmp_path / "missing.db")).events == 0
    assert not (tmp_path / "missing.db").exists()
    mode = path.stat().st_mode
    path.chmod(stat.S_IRUSR)
    try:
        if os.access(path, os.W_OK):  # root writes read-only files: nothing to see then
            return
        assert fill_tokens(str(path)).events == 0
    finally:
        path.chmod(mode)
    assert rows(path, "SELECT count(*) FROM events WHERE tokens IS NOT NULL") == [(0,)]
