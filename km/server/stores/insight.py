"""What the store keeps of the insight core (km.insight), and the SQL pieces both backends share
(sans-IO): findings, tool definitions per account and server, their changes, and pins.

The analysis itself is never done here: `km/server/insight.py` runs the core's
`SessionAnalyzer` over ingested events and hands the store `InsightWrites`, which the store
applies in the ingest transaction for exactly the events it newly stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from km.insight.findings import Finding, severity_rank
from km.server import cursor as cursors
from km.server.stores.base import IngestEvent
from km.server.stores.rows import Params

FINDINGS_CURSOR = "f"
TOOLS_LIST = "tools/list"  # the list kind that pins apply to


@dataclass(frozen=True, slots=True)
class StoredFinding:
    """A finding as the API stores it: which session and event it came from, and when."""

    id: str
    session_id: str
    server: str
    event_id: str | None
    ts_ns: int
    finding: Finding


@dataclass(frozen=True, slots=True)
class FindingFilter:
    """Read-side filters; None means any. `min_severity`: that severity or worse."""

    min_severity: str | None = None
    kind: str | None = None
    server: str | None = None
    session_id: str | None = None
    tool: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None


@dataclass(frozen=True, slots=True)
class DefinitionSeen:
    """One definition of a complete listing (`kind` is the list method), to record."""

    event_id: str  # the listing's last page
    session_id: str
    server: str
    kind: str
    name: str
    hash: str
    server_name: str | None
    server_version: str | None
    definition: str  # canonical JSON
    tokens: int | None
    ts_ns: int


@dataclass(frozen=True, slots=True)
class DefinitionChange:
    """One definition added, removed or changed between two listings of a server."""

    id: str
    event_id: str
    session_id: str
    server: str
    kind: str
    name: str
    change: str
    old_hash: str | None
    new_hash: str | None
    fields: tuple[str, ...]
    diff: str
    version_changed: bool
    ts_ns: int


@dataclass(frozen=True, slots=True)
class InsightWrites:
    """What one ingested batch adds besides its events. Rows whose `event_id` the store did not
    newly store (a duplicate) are left out."""

    findings: tuple[StoredFinding, ...] = ()
    definitions: tuple[DefinitionSeen, ...] = ()
    changes: tuple[DefinitionChange, ...] = ()


NO_WRITES = InsightWrites()


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the analyzers made of the new events: the events with their insight fields (same
    order; an older km's filled in by the analyzer) and what they add."""

    events: list[IngestEvent]
    findings: list[StoredFinding]
    definitions: list[DefinitionSeen]
    changes: list[DefinitionChange]


Analyser = Callable[[Sequence[IngestEvent]], Analysis]
"""Called by the store inside its ingest transaction with exactly the events it stores new,
before their insert (their insight fields stored with them) or after it (a batch whose events
all carry their fields)."""


def resolve(
    insight: InsightWrites | Analyser | None, new: Sequence[IngestEvent]
) -> tuple[list[IngestEvent], InsightWrites]:
    """(events to store and aggregate, rows to write) for the `new` events, before or after
    their insert (the store's choice)."""
    if insight is None:
        return list(new), NO_WRITES
    if isinstance(insight, InsightWrites):
        return list(new), kept(insight, {e.id for e in new})
    a = insight(new)
    return a.events, analysis_writes(a)


def analysis_writes(a: Analysis) -> InsightWrites:
    return InsightWrites(tuple(a.findings), tuple(a.definitions), tuple(a.changes))


@dataclass(frozen=True, slots=True)
class StoredDefinition:
    """One version (hash) of one definition of a server."""

    server: str
    kind: str
    name: str
    hash: str
    server_name: str | None
    server_version: str | None
    definition: str  # canonical JSON
    tokens: int | None
    first_seen_ns: int
    last_seen_ns: int
    sessions: int


@dataclass(frozen=True, slots=True)
class Pin:
    server: str
    name: str
    hash: str
    pinned_ns: int


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything the store knows of an account's servers' definitions."""

    definitions: tuple[StoredDefinition, ...]
    changes: tuple[DefinitionChange, ...]
    pins: tuple[Pin, ...]


# -- rows


def finding_row(account_id: int, s: StoredFinding) -> tuple[object, ...]:
    f = s.finding
    start, end = f.span if f.span is not None else (None, None)
    return (
        account_id, s.id, s.session_id, s.server, f.tool, s.event_id, f.rule, f.severity,
        severity_rank(f.severity), f.kind, f.field, start, end, f.message, f.excerpt, s.ts_ns,
    )  # fmt: skip


FINDING_COLUMNS = (
    "id, session_id, server, tool, event_id, rule, severity, kind, field, span_start, span_end, "
    "message, excerpt, ts_ns"
)
INSERT_FINDING_COLUMNS = (
    "account_id, id, session_id, server, tool, event_id, rule, severity, rank, kind, field, "
    "span_start, span_end, message, excerpt, ts_ns"
)


def finding_from_row(row: Sequence[Any]) -> StoredFinding:
    span = (row[9], row[10]) if row[9] is not None and row[10] is not None else None
    finding = Finding(
        rule=row[5],
        severity=row[6],
        kind=row[7],
        message=row[11],
        tool=row[3],
        server=row[2],
        field=row[8],
        span=span,
        excerpt=row[12],
    )
    return StoredFinding(str(row[0]), row[1], row[2], row[4], row[13], finding)


def finding_where(
    params: Params, filters: FindingFilter, cursor: str | None, uuid_cast: str
) -> str:
    """Conditions after `account_id = <first param>`, each with a leading AND."""
    parts: list[str] = []
    if filters.min_severity is not None:
        parts.append(f"rank >= {params.add(severity_rank(filters.min_severity))}")
    for column, value in (
        ("kind", filters.kind),
        ("server", filters.server),
        ("session_id", filters.session_id),
        ("tool", filters.tool),
    ):
        if value is not None:
            parts.append(f"{column} = {params.add(value)}")
    if filters.since_ns is not None:
        parts.append(f"ts_ns >= {params.add(filters.since_ns)}")
    if filters.until_ns is not None:
        parts.append(f"ts_ns < {params.add(filters.until_ns)}")
    if cursor is not None:
        ts_ns, last_id = cursors.decode(FINDINGS_CURSOR, cursor)
        canonical = _canonical_uuid(last_id)
        ts1, ts2 = params.add(ts_ns), params.add(ts_ns)
        parts.append(
            f"ts_ns >= {ts1} AND (ts_ns > {ts2} OR id > {params.add(canonical, uuid_cast)})"
        )
    return "".join(f" AND {p}" for p in parts)


def _canonical_uuid(text: str) -> str:
    from km.server.errors import BadCursor

    try:
        value = str(uuid.UUID(text))
    except ValueError:
        raise BadCursor(text) from None
    if value != text:
        raise BadCursor(text)
    return value


def findings_page(
    rows: Sequence[Sequence[Any]], limit: int
) -> tuple[list[StoredFinding], str | None]:
    items = [finding_from_row(r) for r in rows[:limit]]
    last = items[-1] if items else None
    more = len(rows) > limit
    return items, cursors.encode(FINDINGS_CURSOR, last.ts_ns, last.id) if more and last else None


DEFINITION_COLUMNS = (
    "server, kind, tool, hash, server_name, server_version, definition, tokens, first_seen_ns, "
    "last_seen_ns, sessions"
)
CHANGE_COLUMNS = (
    "id, server, kind, tool, change, old_hash, new_hash, fields, diff, version_changed, "
    "session_id, ts_ns"
)


def definition_row(account_id: int, d: DefinitionSeen) -> tuple[object, ...]:
    return (
        account_id, d.server, d.kind, d.name, d.hash, d.server_name, d.server_version,
        d.definition, d.tokens, d.ts_ns, d.ts_ns, 1, d.session_id,
    )  # fmt: skip


def change_row(account_id: int, c: DefinitionChange) -> tuple[object, ...]:
    return (
        account_id, c.id, c.server, c.kind, c.name, c.change, c.old_hash, c.new_hash,
        orjson.dumps(list(c.fields)).decode(), c.diff, c.version_changed, c.session_id, c.ts_ns,
    )  # fmt: skip


def change_from_row(row: Sequence[Any]) -> DefinitionChange:
    return DefinitionChange(
        id=str(row[0]),
        event_id="",
        session_id=row[10],
        server=row[1],
        kind=row[2],
        name=row[3],
        change=row[4],
        old_hash=row[5],
        new_hash=row[6],
        fields=tuple(orjson.loads(row[7])),
        diff=row[8],
        version_changed=bool(row[9]),
        ts_ns=row[11],
    )


def kept(writes: InsightWrites, new_ids: set[str]) -> InsightWrites:
    """The rows of `writes` whose event the store newly stored."""
    return InsightWrites(
        tuple(f for f in writes.findings if f.event_id is None or f.event_id in new_ids),
        tuple(d for d in writes.definitions if d.event_id in new_ids),
        tuple(c for c in writes.changes if c.event_id in new_ids),
    )


def current_definitions(
    rows: Sequence[StoredDefinition],
) -> dict[tuple[str, str], dict[str, StoredDefinition]]:
    """(server, kind) -> name -> the definition of the latest listing. Every listing refreshes
    `last_seen_ns` of each definition it holds, so the latest listing is the set of rows at
    its server and kind's greatest `last_seen_ns`."""
    latest: dict[tuple[str, str], int] = {}
    for d in rows:
        key = (d.server, d.kind)
        latest[key] = max(latest.get(key, d.last_seen_ns), d.last_seen_ns)
    out: dict[tuple[str, str], dict[str, StoredDefinition]] = {}
    for d in rows:
        key = (d.server, d.kind)
        if d.last_seen_ns == latest[key]:
            out.setdefault(key, {})[d.name] = d
    return out


def definition_from_row(row: Sequence[Any]) -> StoredDefinition:
    return StoredDefinition(*row)


def pins_to_set(current: dict[str, StoredDefinition], tool: str | None) -> list[tuple[str, str]]:
    """(name, hash) to pin: every current tool, or the one named (none when it is unknown)."""
    if tool is None:
        return sorted((name, d.hash) for name, d in current.items())
    d = current.get(tool)
    return [] if d is None else [(tool, d.hash)]
