"""What ingested events mean, worked out by the insight core's `SessionAnalyzer`: the same code
the capture process runs, so the API and the spool agree (one meaning, many views).

One analyzer per (account, session), kept in an LRU cache in this process and fed each newly
stored event of its session in batch order (the uplink sends in capture order). The store calls
`Ingest.analyse` inside its ingest transaction with exactly the events it stores new, so a
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

import contextlib
import logging
import uuid
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import orjson

from km.capture.notes import FindingRow, ListingRow, RedactBytes, RedactText, note_rows
from km.insight.definitions import Definition
from km.insight.findings import Finding
from km.insight.inventory import Snapshot, pin_findings
from km.insight.risk import MEDIUM_AT
from km.insight.session import (
    CALL,
    DEFAULT_MAX_PENDING,
    ERROR,
    NOTHING,
    REQUEST,
    RESPONSE,
    Found,
    Insight,
    Listing,
    News,
    SessionAnalyzer,
)
from km.insight.tokens import CONTENT_METHODS, content_tokens
from km.redact.patterns import MARKER_PREFIX, MARKER_RE
from km.server.stores.base import EventFilter, EventStore, IngestEvent
from km.server.stores.insight import (
    TOOLS_LIST,
    Analysis,
    DefinitionChange,
    DefinitionSeen,
    StoredDefinition,
    StoredFinding,
    current_definitions,
)

log = logging.getLogger("km.server")
_T = TypeVar("_T")

MAX_SESSIONS = 1024  # analyzers kept per process (least recently used leave first)
REPLAY_MAX_EVENTS = 100_000  # stored events fed to a rebuilt analyzer, at most
REPLAY_PAGE = 5000
_MARKER = MARKER_PREFIX.encode()
_CHANGE_NS = uuid.UUID("0b9a4f7e-31c2-4f0a-8a57-2c1f3e9d6b44")  # definition change ids
_NOTES_NS = uuid.UUID("5f0b7c36-2f4e-4d0e-9a53-6b1f6c1f1e2a")  # finding ids


@dataclass(slots=True)
class _Session:
    analyzer: SessionAnalyzer
    pins: dict[str, str]  # tool -> approved hash (this account, this server)
    # For calls whose km sent their fields (see `_feeds`): tools whose call the analyzer saw
    # since the last listing, and fed requests whose reply has not come yet.
    called: set[str] = field(default_factory=set)
    fed: dict[str, None] = field(default_factory=dict)

    def feeds(self, e: IngestEvent) -> bool:
        """Whether the analyzer must see `e`. Every event, except the `tools/call` exchanges
        that cannot teach it anything when km sent their fields: a call below medium risk
        brings no finding (a risk rule's severity is the level its weight falls in,
        km/insight/risk_rules.py), and a call of a tool it already saw (since the last
        listing) adds nothing to the session's toxic flow; a call's reply never brings news.
        Tokens and risk are the costly part of the analysis, and km already worked them out."""
        if not e.analysed or e.method != CALL:
            return True
        if e.kind == REQUEST:
            risky = e.risk is None or e.risk >= MEDIUM_AT
            if not (risky or e.tool is None or e.tool not in self.called):
                return False
            if e.tool is not None:
                self.called.add(e.tool)
            self.fed[e.id] = None
            if len(self.fed) > DEFAULT_MAX_PENDING:  # replies that never came
                del self.fed[next(iter(self.fed))]
            return True
        if e.kind == RESPONSE or e.kind == ERROR:
            return e.link_id is not None and self.fed.pop(e.link_id, 0) is None
        return True


@dataclass(slots=True)
class _Batch:
    """What one batch's analysis produced."""

    findings: list[StoredFinding] = field(default_factory=list)
    definitions: list[DefinitionSeen] = field(default_factory=list)
    changes: list[DefinitionChange] = field(default_factory=list)


class Ingest:
    """The analyzers of one API process. `prepare` (async, before the store's transaction),
    then the store calls `analyse` (sync, inside it); `forget` after a failed ingest."""

    def __init__(
        self,
        redact: RedactBytes | None = None,
        redact_text: RedactText | None = None,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self._redact: RedactBytes = redact or _same
        self._redact_text: RedactText = redact_text or _same
        self.errors = 0  # analyzer exceptions (each costs that event its insight, never the event)
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
        batch = _Batch()
        for e in new:
            entry = self._sessions.get((account_id, e.session_id))
            if entry is None:  # not prepared (a caller that skipped prepare): build bare
                entry = self._sessions[account_id, e.session_id] = _Session(
                    SessionAnalyzer(e.server), {}
                )
            analyzer = entry.analyzer
            if not entry.feeds(e):
                out.append(e)
                continue
            try:
                insight = analyzer.observe(
                    e.id, e.direction, e.kind, e.method, e.payload, e.link_id, e.truncated,
                    secret_kinds(e),
                )  # fmt: skip
                if analyzer.has_news:
                    news = analyzer.take_news()
                    if any(isinstance(item, Listing) for item in news):
                        entry.called.clear()  # definitions may be new: calls count again
                    _record(batch, entry, e, news, self._redact, self._redact_text)
            except Exception:  # an analyzer bug costs the insight, never the event
                self.errors += 1
                log.exception("insight analysis of event %s failed", e.id)
                insight = NOTHING
            out.append(e if e.analysed else _with_fields(e, insight))
        return Analysis(out, batch.findings, batch.definitions, batch.changes)

    async def _rebuild(self, store: EventStore, account_id: int, first: IngestEvent) -> _Session:
        baseline = _baselines(await store.definitions(account_id, first.server))
        pins = {p.name: p.hash for p in await store.pins(account_id, first.server)}

        def last_snapshot(server: str, info_name: str | None, kind: str) -> Snapshot | None:
            snapshot = baseline.get((server, kind))
            if snapshot is None or (info_name is not None and snapshot.info_name != info_name):
                return None
            return snapshot

        entry = _Session(SessionAnalyzer(first.server, baseline=last_snapshot), pins)
        analyzer = entry.analyzer
        cursor: str | None = None
        read = 0
        while read < REPLAY_MAX_EVENTS:
            page = await store.list_events(
                account_id, EventFilter(session_id=first.session_id), cursor, REPLAY_PAGE
            )
            for e in page.items:  # stored with their fields: fed as when they came in
                if not entry.feeds(e):
                    continue
                with contextlib.suppress(Exception):  # logged when it first failed
                    analyzer.observe(
                        e.id, e.direction, e.kind, e.method, e.payload, e.link_id, e.truncated,
                        secret_kinds(e),
                    )  # fmt: skip
                    # Its news was stored when the event first came in.
                    if analyzer.has_news and any(
                        isinstance(item, Listing) for item in analyzer.take_news()
                    ):
                        entry.called.clear()
            read += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        return entry


def count_missing_tokens(events: Sequence[IngestEvent]) -> None:
    """Count, in place, the content tokens of the events a current km sent without them: its
    capture process counts none (the tokenizer's memory, in every km process), the API counts
    them over the payload it stores, as km's views count them over the spool's
    (km/spool/tokens.py), so both give the same figure. An older km's events get theirs with
    the rest of their fields in `Ingest.analyse`. Done before the store's transaction."""
    for e in events:
        if e.analysed and e.tokens is None and not e.truncated and e.method in CONTENT_METHODS:
            e.tokens = content_tokens(e.kind, e.method, e.payload)


def secret_kinds(e: IngestEvent) -> dict[str, int] | None:
    """What the redactor replaced in a `tools/call` request (kind -> count), read from its
    markers: the API only ever gets payloads km redacted (and it redacts again), while km's
    capture process hands the analyzer the report of that same redaction."""
    if e.kind != REQUEST or e.method != CALL or _MARKER not in e.payload:
        return None
    text = e.payload.decode("utf-8", "replace")
    return dict(Counter(m[len(MARKER_PREFIX) : -1] for m in MARKER_RE.findall(text)))


def _with_fields(e: IngestEvent, i: Insight) -> IngestEvent:
    """`e` with the analyzer's fields (spelled out: `dataclasses.replace` costs ~50 us)."""
    return IngestEvent(
        e.id, e.session_id, e.server, e.direction, e.ts_ns, e.kind, e.size, e.payload,
        e.payload_encoding, e.method, e.rpc_id, e.truncated, e.link_id, e.latency_us, e.host,
        e.km_version, i.tool, i.status, i.tokens, i.risk, True,
    )  # fmt: skip


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


def _record(
    batch: _Batch,
    entry: _Session,
    event: IngestEvent,
    news: Sequence[News],
    redact: RedactBytes,
    redact_text: RedactText,
) -> None:
    """The analyzer's news at `event`, as the capture side stores it (km.capture.notes: the
    same rows, redacted the same way), into the batch's writes."""
    n = 0

    def new_id() -> str:  # the same news of the same event always gets the same ids
        nonlocal n
        n += 1
        return str(uuid.uuid5(_NOTES_NS, f"{event.id}|{n}"))

    rows = note_rows(news, event.session_id, event.server, event.ts_ns, redact, redact_text, new_id)
    for item, row in zip(news, rows, strict=True):  # one row per piece of news, in order
        if isinstance(item, Found) and isinstance(row, FindingRow):
            f = item.finding
            finding = Finding(
                row.rule, row.severity, row.kind, row.message, row.tool, row.server, row.field,
                f.span, row.excerpt,
            )  # fmt: skip
            batch.findings.append(_stored(row.id, event, row.event_id, finding))
        elif isinstance(item, Listing) and isinstance(row, ListingRow):
            _listing(batch, row)
            if row.kind == TOOLS_LIST and entry.pins:
                for finding in pin_findings(event.server, item.snapshot.hashes, entry.pins):
                    batch.findings.append(_stored(new_id(), event, row.event_id, finding))


def _stored(id: str, event: IngestEvent, event_id: str | None, f: Finding) -> StoredFinding:
    return StoredFinding(id, event.session_id, event.server, event_id, event.ts_ns, f)


def _listing(batch: _Batch, row: ListingRow) -> None:
    info_name = row.info_name or None
    for d in row.definitions:
        batch.definitions.append(
            DefinitionSeen(
                row.event_id, row.session_id, row.server, row.kind, d.name, d.hash, info_name,
                row.info_version, d.definition, d.tokens, row.ts_ns,
            )
        )  # fmt: skip
    for c in row.changes:
        key = f"{row.event_id}|{row.kind}|{c.name}|{c.change}|{c.new_hash}"
        batch.changes.append(
            DefinitionChange(
                str(uuid.uuid5(_CHANGE_NS, key)), row.event_id, row.session_id, row.server,
                row.kind, c.name, c.change, c.old_hash, c.new_hash,
                tuple(c.fields.split(",")) if c.fields else (), c.diff,
                row.old_version != row.info_version, row.ts_ns,
            )
        )  # fmt: skip


def _same(value: _T) -> _T:
    return value
