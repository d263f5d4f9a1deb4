"""What ingested events mean, worked out by the insight core's `SessionAnalyzer`: the same code
the capture process runs, so the API and the spool agree (one meaning, many views).

One analyzer per (account, session), kept in an LRU cache in this process and fed each newly
stored event of its session in batch order (the uplink sends in capture order). The store calls
`Ingest.analyse` inside its ingest transaction with exactly the events it newly stored, so a
retried batch is never analysed twice. Before that, `Ingest.prepare` makes sure every session of
the batch has an analyzer: one not in the cache (a new session, or after a restart or an
eviction) is created with the account's last inventory of its server as the drift baseline and
its pins, and fed the session's stored events again (their news dropped: they were stored the
first time). If the transaction fails, the batch's sessions leave the cache, so they are rebuilt
from what was stored.

An event from a km that sent the insight fields keeps them; an older km's events get the
analyzer's. Definition-bearing replies update the account's inventory (definitions, changes) and
bring poisoning and drift findings; risky calls and toxic flows bring theirs; a tools listing
that differs from the account's pins brings an "unapproved" finding.

Limits: the cache is per process. With several API replicas, a session's batches should reach
one replica (or an analyzer may miss what another replica stored since it was built). Replaying
a session stops after `REPLAY_MAX_EVENTS`.
"""

from __future__ import annotations

import uuid
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import orjson

from km.insight.definitions import TOOLS, Definition
from km.insight.findings import Finding
from km.insight.inventory import Snapshot, pin_findings
from km.insight.session import Found, Listing, SessionAnalyzer
from km.insight.tokens import tool_tokens
from km.server.stores.base import EventFilter, EventStore, IngestEvent
from km.server.stores.insight import (
    TOOLS_LIST,
    Analysis,
    DefinitionChange,
    DefinitionSeen,
    StoredDefinition,
    StoredFinding,
    current_definitions,
    finding_id,
)

MAX_SESSIONS = 1024  # analyzers kept per process (least recently used leave first)
REPLAY_MAX_EVENTS = 100_000  # stored events fed to a rebuilt analyzer, at most
REPLAY_PAGE = 5000
_CHANGE_NS = uuid.UUID("0b9a4f7e-31c2-4f0a-8a57-2c1f3e9d6b44")  # definition change ids


@dataclass(slots=True)
class _Session:
    analyzer: SessionAnalyzer
    pins: dict[str, str]  # tool -> approved hash (this account, this server)


@dataclass(slots=True)
class _Batch:
    """What one batch's analysis produced."""

    findings: list[StoredFinding] = field(default_factory=list)
    definitions: list[DefinitionSeen] = field(default_factory=list)
    changes: list[DefinitionChange] = field(default_factory=list)


class Ingest:
    """The analyzers of one API process. `prepare` (async, before the store's transaction),
    then the store calls `analyse` (sync, inside it); `forget` after a failed ingest."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._max = max_sessions
        self._sessions: OrderedDict[tuple[int, str], _Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    async def prepare(
        self, store: EventStore, account_id: int, events: Sequence[IngestEvent]
    ) -> None:
        firsts: dict[str, IngestEvent] = {}
        for e in events:
            firsts.setdefault(e.session_id, e)
        for session_id, first in firsts.items():
            key = (account_id, session_id)
            if key in self._sessions:
                self._sessions.move_to_end(key)
                continue
            self._sessions[key] = await self._rebuild(store, account_id, first)
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)

    def forget(self, account_id: int, events: Sequence[IngestEvent]) -> None:
        for session_id in {e.session_id for e in events}:
            self._sessions.pop((account_id, session_id), None)

    def analyse(self, account_id: int, new: Sequence[IngestEvent]) -> Analysis:
        """Feed the newly stored events; their insight fields and what they add."""
        out: list[IngestEvent] = []
        filled: list[IngestEvent] = []
        batch = _Batch()
        for e in new:
            entry = self._sessions.get((account_id, e.session_id))
            if entry is None:  # not prepared (a caller that skipped prepare): build bare
                entry = self._sessions[account_id, e.session_id] = _Session(
                    SessionAnalyzer(e.server), {}
                )
            analyzer = entry.analyzer
            insight = analyzer.observe(
                e.id, e.direction, e.kind, e.method, e.payload, e.link_id, e.truncated
            )
            if not e.analysed:
                e = replace(
                    e,
                    tool=insight.tool,
                    status=insight.status,
                    tokens=insight.tokens,
                    risk=insight.risk,
                    analysed=True,
                )
                filled.append(e)
            out.append(e)
            if analyzer.has_news:
                _record(batch, entry, e, analyzer.take_news())
        return Analysis(out, filled, batch.findings, batch.definitions, batch.changes)

    async def _rebuild(self, store: EventStore, account_id: int, first: IngestEvent) -> _Session:
        inventory = await store.inventory(account_id, first.server)
        baseline = _baselines(inventory.definitions)
        pins = {p.name: p.hash for p in inventory.pins}

        def last_snapshot(server: str, info_name: str | None, kind: str) -> Snapshot | None:
            snapshot = baseline.get((server, kind))
            if snapshot is None or (info_name is not None and snapshot.info_name != info_name):
                return None
            return snapshot

        analyzer = SessionAnalyzer(first.server, baseline=last_snapshot)
        cursor: str | None = None
        fed = 0
        while fed < REPLAY_MAX_EVENTS:
            page = await store.list_events(
                account_id, EventFilter(session_id=first.session_id), cursor, REPLAY_PAGE
            )
            for e in page.items:
                analyzer.observe(
                    e.id, e.direction, e.kind, e.method, e.payload, e.link_id, e.truncated
                )
            analyzer.take_news()  # stored when these events were first ingested
            fed += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        return _Session(analyzer, pins)


def _baselines(rows: Sequence[StoredDefinition]) -> dict[tuple[str, str], Snapshot]:
    """The latest stored listing per (server, kind), as the core's snapshots."""
    out: dict[tuple[str, str], Snapshot] = {}
    for (server, kind), current in current_definitions(rows).items():
        latest = max(current.values(), key=lambda d: d.last_seen_ns)
        definitions = {
            name: Definition(name, d.hash, d.definition, orjson.loads(d.definition))
            for name, d in current.items()
        }
        out[server, kind] = Snapshot(
            server, latest.server_name, latest.server_version, kind, definitions
        )
    return out


def _record(batch: _Batch, entry: _Session, event: IngestEvent, news: Sequence[object]) -> None:
    ordinals: Counter[tuple[str | None, str, str | None, str | None]] = Counter()

    def add(event_id: str | None, finding: Finding) -> None:
        key = (event_id, finding.rule, finding.tool, finding.field)
        n = ordinals[key]
        ordinals[key] += 1
        batch.findings.append(
            StoredFinding(
                finding_id(event_id, event.session_id, finding, n),
                event.session_id,
                event.server,
                event_id,
                event.ts_ns,
                finding,
            )
        )

    for item in news:
        if isinstance(item, Found):
            add(item.event_id, item.finding)
        elif isinstance(item, Listing):
            _listing(batch, event, item)
            if item.snapshot.kind == TOOLS_LIST and entry.pins:
                for finding in pin_findings(event.server, item.snapshot.hashes, entry.pins):
                    add(item.event_id, finding)


def _listing(batch: _Batch, event: IngestEvent, item: Listing) -> None:
    snapshot = item.snapshot
    for name, d in snapshot.definitions.items():
        tokens = tool_tokens(d.doc) if snapshot.kind == TOOLS.method else None
        batch.definitions.append(
            DefinitionSeen(
                item.event_id, event.session_id, event.server, snapshot.kind, name, d.hash,
                snapshot.info_name, snapshot.info_version, d.canonical, tokens, event.ts_ns,
            )
        )  # fmt: skip
    if item.diff is None:
        return
    for c in item.diff.changes:
        key = f"{item.event_id}|{snapshot.kind}|{c.name}|{c.change}|{c.new_hash}"
        batch.changes.append(
            DefinitionChange(
                str(uuid.uuid5(_CHANGE_NS, key)), item.event_id, event.session_id, event.server,
                snapshot.kind, c.name, c.change, c.old_hash, c.new_hash, c.fields, c.diff,
                item.diff.version_changed, event.ts_ns,
            )
        )  # fmt: skip
