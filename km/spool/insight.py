"""The insight tables of the spool: writing what the analysis learnt, reading inventories.

Written by `SpoolStore.append` in the events' transaction (`write_notes`); read by `km tools`,
`km status` and, for the baseline of a new session's first listing, by the capture process
(`baseline_reader`, its own short read-only connection). Tables: see km/spool/schema.py.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from km.capture.notes import FindingRow, ListingRow, ProblemsRow, ServerRow
from km.capture.pipeline import CapturePipeline
from km.insight.definitions import Definition
from km.insight.inventory import Snapshot
from km.insight.session import Baseline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from km.settings import Settings

BASELINE_TIMEOUT_S = 1.0  # the capture process waits at most this long for a baseline read

_UPSERT_DEFINITION = """
    INSERT INTO definitions (server, info_name, kind, name, hash, definition, tokens,
                             first_seen_ns, last_seen_ns, sessions, last_session_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
    ON CONFLICT (server, info_name, kind, name, hash) DO UPDATE SET
        last_seen_ns = max(last_seen_ns, excluded.last_seen_ns),
        sessions = sessions + (last_session_id IS NOT excluded.last_session_id),
        last_session_id = excluded.last_session_id,
        tokens = coalesce(excluded.tokens, tokens)
"""
_INSERT_CHANGE = """
    INSERT OR IGNORE INTO definition_changes (server, info_name, kind, name, change, old_hash,
        new_hash, fields, diff, old_version, new_version, session_id, event_id, ts_ns, announced)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_FINDING = """
    INSERT OR IGNORE INTO findings (id, session_id, server, tool, event_id, rule, severity, kind,
                                    field, message, excerpt, ts_ns)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def write_notes(conn: sqlite3.Connection, notes: Iterable[object]) -> None:
    """Store the analysis' rows (inside the caller's transaction), in order."""
    for note in notes:
        if isinstance(note, FindingRow):
            conn.execute(
                _INSERT_FINDING,
                (
                    note.id, note.session_id, note.server, note.tool, note.event_id, note.rule,
                    note.severity, note.kind, note.field, note.message, note.excerpt, note.ts_ns,
                ),
            )  # fmt: skip
        elif isinstance(note, ListingRow):
            _write_listing(conn, note)
        elif isinstance(note, ProblemsRow):
            conn.execute(
                "UPDATE sessions SET insight_problems = ? WHERE session_id = ?",
                (orjson.dumps(note.counts).decode(), note.session_id),
            )
        elif isinstance(note, ServerRow):
            conn.execute(
                "INSERT OR REPLACE INTO server_identities (session_id, server, info_name,"
                " info_version, protocol, ts_ns) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    note.session_id, note.server, note.info_name, note.info_version,
                    note.protocol, note.ts_ns,
                ),
            )  # fmt: skip


def _write_listing(conn: sqlite3.Connection, row: ListingRow) -> None:
    key = (row.server, row.info_name, row.kind)
    conn.executemany(
        _UPSERT_DEFINITION,
        [
            (*key, d.name, d.hash, d.definition, d.tokens, row.ts_ns, row.ts_ns, row.session_id)
            for d in row.definitions
        ],
    )
    conn.execute("DELETE FROM inventory WHERE server = ? AND info_name = ? AND kind = ?", key)
    conn.executemany(
        "INSERT INTO inventory (server, info_name, kind, name, hash) VALUES (?, ?, ?, ?, ?)",
        [(*key, d.name, d.hash) for d in row.definitions],
    )
    conn.execute(
        "INSERT OR REPLACE INTO inventory_lists (server, info_name, kind, info_version,"
        " session_id, event_id, entries, tokens, problems, ts_ns)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            *key, row.info_version, row.session_id, row.event_id, len(row.definitions),
            row.tokens, "\n".join(row.problems) or None, row.ts_ns,
        ),
    )  # fmt: skip
    conn.executemany(
        _INSERT_CHANGE,
        [
            (
                *key, c.name, c.change, c.old_hash, c.new_hash, c.fields, c.diff,
                row.old_version, row.info_version, row.session_id, row.event_id, row.ts_ns,
                int(row.after_list_changed),
            )
            for c in row.changes
        ],
    )  # fmt: skip


# -- reading ---------------------------------------------------------------------------------


def load_snapshot(
    conn: sqlite3.Connection, server: str, info_name: str | None, kind: str
) -> Snapshot | None:
    """The current inventory of one server identity and list kind, or None if never seen."""
    name_key = info_name or ""
    head = conn.execute(
        "SELECT info_version FROM inventory_lists WHERE server = ? AND info_name = ? AND kind = ?",
        (server, name_key, kind),
    ).fetchone()
    if head is None:
        return None
    rows = conn.execute(
        "SELECT i.name, i.hash, d.definition FROM inventory i JOIN definitions d"
        " ON d.server = i.server AND d.info_name = i.info_name AND d.kind = i.kind"
        " AND d.name = i.name AND d.hash = i.hash"
        " WHERE i.server = ? AND i.info_name = ? AND i.kind = ?",
        (server, name_key, kind),
    ).fetchall()
    definitions = {name: Definition(name, h, text, _doc(text)) for name, h, text in rows}
    return Snapshot(server, info_name, head[0], kind, definitions)


def baseline_reader(path: str) -> Baseline:
    """A `Baseline` for the SessionAnalyzer: the stored snapshot from earlier sessions, read on
    a short read-only connection of its own; None when the spool cannot say (missing, not yet
    migrated, busy past `BASELINE_TIMEOUT_S`)."""

    def read(server: str, info_name: str | None, kind: str) -> Snapshot | None:
        if not os.path.exists(path):
            return None
        uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BASELINE_TIMEOUT_S)
        except sqlite3.Error:
            return None
        try:
            return load_snapshot(conn, server, info_name, kind)
        except sqlite3.Error:
            return None
        finally:
            conn.close()

    return read


def analyzing_pipeline(settings: Settings, session_id: str, server: str) -> CapturePipeline:
    """The capture pipeline of one session with the insight analysis on: it reads each frame
    as it crossed the wire, and everything it stores (payloads, definitions, finding text) is
    redacted with the session's rules. Earlier sessions' inventories come from the spool.

    It counts no tokens: the tokenizer would cost this process ~70 MB and ~0.5 s of CPU
    holding the GIL, in every km process of the machine. Readers of the spool count them
    (km/spool/tokens.py), the API on ingest."""
    from functools import partial

    from km.insight.session import SessionAnalyzer
    from km.redact import (
        redact_payload,
        redact_payload_with_report,
        redact_text,
        unchanged_payloads,
    )

    rules = settings.redaction_rules()
    analyzer = SessionAnalyzer(
        server, baseline=baseline_reader(settings.resolve_spool_path()), count_tokens=False
    )
    return CapturePipeline(
        session_id,
        server,
        redact=partial(redact_payload, rules=rules),
        # Each read's payloads pre-scanned at once; only those that may hold a secret are
        # redacted one by one.
        redact_clean=partial(unchanged_payloads, rules=rules),
        analyzer=analyzer,
        redact_text=partial(redact_text, rules=rules),
        # What the redactor found in a call's arguments counts in its risk (not with
        # KM_REDACT=metadata: there it replaces whole payloads, secrets or not).
        redact_report=None
        if rules.metadata_only
        else partial(redact_payload_with_report, rules=rules),
    )


@dataclass(slots=True)
class ToolRow:
    """One definition in the current inventory of a server identity."""

    name: str
    hash: str
    definition: str
    tokens: int | None
    first_seen_ns: int
    last_seen_ns: int
    sessions: int
    pinned: str | None  # the approved hash, if any
    first_hash: str  # the hash this name was first seen with


@dataclass(slots=True)
class ServerInventory:
    """What `km tools` shows for one server identity and list kind."""

    server: str
    info_name: str
    kind: str
    info_version: str | None
    session_id: str
    ts_ns: int
    tokens: int | None
    problems: str | None
    tools: list[ToolRow] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    pin_versions: dict[str, str | None] = field(default_factory=dict)


def read_inventories(
    conn: sqlite3.Connection, server: str | None = None, kind: str | None = "tools/list"
) -> list[ServerInventory]:
    """Every server identity's current inventory (of `kind`; every kind when None)."""
    where, args = _where(server, kind)
    heads = conn.execute(
        "SELECT server, info_name, kind, info_version, session_id, ts_ns, tokens, problems"
        f" FROM inventory_lists{where} ORDER BY server, info_name, kind",
        args,
    ).fetchall()
    out: list[ServerInventory] = []
    for head in heads:
        inv = ServerInventory(*head)
        key = (inv.server, inv.info_name, inv.kind)
        for row in conn.execute(
            "SELECT i.name, i.hash, d.definition, d.tokens, d.first_seen_ns, d.last_seen_ns,"
            " d.sessions, p.hash, p.info_version,"
            " (SELECT f.hash FROM definitions f WHERE f.server = i.server"
            "  AND f.info_name = i.info_name AND f.kind = i.kind AND f.name = i.name"
            "  ORDER BY f.first_seen_ns LIMIT 1)"
            " FROM inventory i JOIN definitions d ON d.server = i.server"
            " AND d.info_name = i.info_name AND d.kind = i.kind AND d.name = i.name"
            " AND d.hash = i.hash LEFT JOIN pins p ON p.server = i.server"
            " AND p.info_name = i.info_name AND p.kind = i.kind AND p.name = i.name"
            " WHERE i.server = ? AND i.info_name = ? AND i.kind = ? ORDER BY i.name",
            key,
        ):
            name, hash_, text, tokens, first, last, sessions, pin, pin_version, first_hash = row
            inv.tools.append(
                ToolRow(name, hash_, text, tokens, first, last, sessions, pin, first_hash)
            )
            if pin is not None:
                inv.pin_versions[name] = pin_version
        cursor = conn.execute(
            "SELECT name, change, old_hash, new_hash, fields, diff, old_version, new_version,"
            " session_id, ts_ns, announced FROM definition_changes"
            " WHERE server = ? AND info_name = ? AND kind = ? ORDER BY id",
            key,
        )
        names = [d[0] for d in cursor.description]
        inv.changes = [dict(zip(names, r, strict=True)) for r in cursor]
        out.append(inv)
    return out


def read_findings(
    conn: sqlite3.Connection, server: str | None = None, since_ns: int = 0
) -> list[dict[str, Any]]:
    """Stored findings, newest first."""
    args: list[object] = [since_ns]
    where = " WHERE ts_ns >= ?"
    if server is not None:
        where += " AND server = ?"
        args.append(server)
    cursor = conn.execute(
        "SELECT id, session_id, server, tool, event_id, rule, severity, kind, field, message,"
        f" excerpt, ts_ns FROM findings{where} ORDER BY ts_ns DESC, id",
        args,
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor]


def approve(
    conn: sqlite3.Connection, now_ns: int, server: str | None = None, tool: str | None = None
) -> int:
    """Pin the current definitions (of every server, one server, or one tool of it) inside
    the caller's transaction; the number of definitions pinned."""
    clauses: list[str] = []
    args: list[object] = []
    if server is not None:
        clauses.append("i.server = ?")
        args.append(server)
    if tool is not None:
        clauses.append("i.name = ?")
        args.append(tool)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    cursor = conn.execute(
        "INSERT OR REPLACE INTO pins (server, info_name, kind, name, hash, info_version,"
        " approved_ns) SELECT i.server, i.info_name, i.kind, i.name, i.hash, l.info_version, ?"
        " FROM inventory i JOIN inventory_lists l ON l.server = i.server"
        f" AND l.info_name = i.info_name AND l.kind = i.kind{where}",
        [now_ns, *args],
    )
    return int(cursor.rowcount)


def _where(server: str | None, kind: str | None) -> tuple[str, list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    if server is not None:
        clauses.append("server = ?")
        args.append(server)
    if kind is not None:
        clauses.append("kind = ?")
        args.append(kind)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _doc(text: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}
