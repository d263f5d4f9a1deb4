"""The side journal keeps what the insight core attached to a session's events: the event
fields `tool`, `status`, `tokens`, `risk` and the analysis notes (server identity, listings
with their definitions and drift, findings, problem counts). A session folded in from a journal
leaves the spool exactly as the same events appended directly would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from km.capture.notes import ChangeRow, FindingRow, ListingRow, ProblemsRow, ServerRow
from km.events import C2S, S2C, Event
from km.spool.journal import fold_journals, journal_path, read_journal, write_journal
from km.spool.store import SpoolStore
from tests.insight.test_session import BENIGN, POISONED, Session
from tests.spool.helpers import make_session

MAX_BYTES = 64 * 1024 * 1024
# Everything the insight part of a spool holds, in a stable order, for comparing two spools.
INSIGHT_QUERIES = (
    "SELECT id, direction, kind, method, tool, status, tokens, risk FROM events ORDER BY id",
    "SELECT id, session_id, server, tool, event_id, rule, severity, kind, field, message,"
    " excerpt, ts_ns FROM findings ORDER BY id",
    "SELECT server, info_name, kind, name, hash, definition, tokens, sessions FROM definitions"
    " ORDER BY name, hash",
    "SELECT server, info_name, kind, name, hash FROM inventory ORDER BY name",
    "SELECT server, info_name, kind, info_version, event_id, entries, tokens FROM inventory_lists",
    "SELECT name, change, old_hash, new_hash, fields, diff, event_id FROM definition_changes"
    " ORDER BY name, new_hash",
    "SELECT session_id, server, info_name, info_version, protocol FROM server_identities",
    "SELECT session_id, insight_problems FROM sessions",
)


def analysed_session() -> list[Event]:
    """A real pipeline's events for a session whose tool turns poisoned after list_changed,
    with a call in between: every kind of note and every insight field."""
    s = Session()
    s.initialize("1.0")
    s.list_tools(BENIGN)
    s.call(
        "tools/call",
        {"name": "add", "arguments": {"a": 1}},
        {"content": [{"type": "text", "text": "1"}], "isError": True},
    )
    s.send(S2C, {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    s.list_tools(POISONED)
    s.send(C2S, b'{"jsonrpc":"2.0","id":')  # a broken frame: counted as a problem
    return s.events


def dump(path: Path) -> list[list[tuple[object, ...]]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [db.execute(sql).fetchall() for sql in INSIGHT_QUERIES]
    finally:
        db.close()


def test_a_journal_round_trips_insight_fields_and_notes(tmp_path: Path) -> None:
    events = analysed_session()
    rows = [n for e in events if e.notes for n in e.notes]
    assert {type(n) for n in rows} >= {ServerRow, ListingRow, FindingRow}
    assert any(isinstance(n, ListingRow) and n.changes for n in rows)
    assert any(e.tool == "add" and e.status == "tool-error" for e in events)
    assert any(e.tokens for e in events) and any(e.risk is not None for e in events)

    spool = tmp_path / "spool.db"
    session = make_session("sess-1", "calc")
    write_journal(str(spool), session, events, ended_ns=None, exit_code=None, last_error=None)
    back_session, back, _ = read_journal(journal_path(str(spool), "sess-1"))
    assert back_session == session
    assert back == events  # every field, notes included (rows compare by value)
    changes = [c for n in rows if isinstance(n, ListingRow) for c in n.changes]
    assert changes and all(isinstance(c, ChangeRow) for c in changes)


def test_a_folded_journal_stores_what_a_direct_append_stores(tmp_path: Path) -> None:
    events = analysed_session()
    session = make_session("sess-1", "calc")
    direct, folded = tmp_path / "direct.db", tmp_path / "folded.db"

    store = SpoolStore.open(str(direct), MAX_BYTES)
    store.begin_session(session)
    store.append(events)
    store.close()

    write_journal(str(folded), session, events, ended_ns=None, exit_code=None, last_error=None)
    store = SpoolStore.open(str(folded), MAX_BYTES)
    try:
        assert fold_journals(store, str(folded)) == (1, len(events))
    finally:
        store.close()

    tables = dump(folded)
    assert tables == dump(direct)
    findings, problems = tables[1], tables[7]
    assert {row[7] for row in findings} >= {"drift", "poisoning"}
    assert problems[0][1] is not None  # the broken frame's problem count came through


def test_a_note_that_cannot_be_read_back_is_dropped_not_its_event(tmp_path: Path) -> None:
    events = analysed_session()
    spool = tmp_path / "spool.db"
    session = make_session("sess-1", "calc")
    path = write_journal(str(spool), session, events, ended_ns=1, exit_code=0, last_error=None)
    lines = Path(path).read_bytes().splitlines()
    edited = []
    for line in lines[1:]:
        row = orjson.loads(line)
        if "notes" in row:
            row["notes"] = [{"type": "FindingRow", "rule": "only this"}, {"type": "Unknown"}, 7]
        edited.append(orjson.dumps(row))
    Path(path).write_bytes(b"\n".join([lines[0], *edited]) + b"\n")
    _, back, header = read_journal(path)
    assert [e.id for e in back] == [e.id for e in events]
    assert all(e.notes is None for e in back)
    assert [(e.tool, e.status, e.tokens, e.risk) for e in back] == [
        (e.tool, e.status, e.tokens, e.risk) for e in events
    ]
    assert header["exit_code"] == 0


def test_problem_counts_survive_as_a_mapping(tmp_path: Path) -> None:
    events = analysed_session()
    problems = [n for e in events if e.notes for n in e.notes if isinstance(n, ProblemsRow)]
    assert problems
    spool = tmp_path / "spool.db"
    path = write_journal(
        str(spool), make_session("sess-1", "calc"), events, ended_ns=None, exit_code=None,
        last_error=None,
    )  # fmt: skip
    _, back, _ = read_journal(path)
    again = [n for e in back if e.notes for n in e.notes if isinstance(n, ProblemsRow)]
    assert again == problems and all(isinstance(n.counts, dict) for n in again)
