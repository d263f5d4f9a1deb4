"""What the session's analysis learnt, as rows ready to store: redacted, plain data. No I/O.

The `SessionAnalyzer` (km.insight.session) reads frames as they crossed the wire; everything it
hands over for storage (definitions, diffs, finding messages and excerpts) goes through the
same redactor as the payloads here, before it is attached to its `Event` (`Event.notes`) and
written by the spool in the event's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from km.capture.ids import uuid7
from km.insight.session import Found, Listing, News, ServerInfo

RedactBytes = Callable[[bytes], bytes]
RedactText = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class ServerRow:
    """The server's `initialize` answer, once per session."""

    session_id: str
    server: str
    info_name: str | None
    info_version: str | None
    protocol: str | None
    ts_ns: int


@dataclass(frozen=True, slots=True)
class DefinitionRow:
    name: str
    hash: str
    definition: str  # canonical JSON, redacted
    tokens: int | None  # context tokens of this definition alone (tools)


@dataclass(frozen=True, slots=True)
class ChangeRow:
    name: str
    change: str  # added, removed, changed
    old_hash: str | None
    new_hash: str | None
    fields: str  # comma-separated
    diff: str  # redacted


@dataclass(frozen=True, slots=True)
class ListingRow:
    """A complete listing of one server identity: its definitions, what changed since the
    previous listing (`compared` False: the first ever seen), its problems."""

    session_id: str
    event_id: str
    server: str
    info_name: str  # "" when the server did not say
    info_version: str | None
    kind: str  # tools/list, prompts/list, resources/list, resources/templates/list
    definitions: tuple[DefinitionRow, ...]
    tokens: int | None
    problems: tuple[str, ...]
    compared: bool
    old_version: str | None
    changes: tuple[ChangeRow, ...]
    after_list_changed: bool
    ts_ns: int


@dataclass(frozen=True, slots=True)
class FindingRow:
    """A row of the `findings` table (HELPERS.md names)."""

    id: str
    session_id: str
    server: str
    tool: str | None
    event_id: str | None
    rule: str
    severity: str
    kind: str
    field: str | None
    message: str
    excerpt: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class ProblemsRow:
    """The session's analysis problems so far, by code (each row replaces the previous)."""

    session_id: str
    counts: dict[str, int]


NoteRow = ServerRow | ListingRow | FindingRow | ProblemsRow


def note_rows(
    news: Sequence[News],
    session_id: str,
    server: str,
    ts_ns: int,
    redact_json: RedactBytes,
    redact_text: RedactText,
    new_id: Callable[[], str] = uuid7,
) -> list[object]:
    """Storable, redacted rows for what the analyzer learnt at one event."""
    rows: list[object] = []
    for item in news:
        if isinstance(item, ServerInfo):
            rows.append(
                ServerRow(session_id, server, item.name, item.version, item.protocol, ts_ns)
            )
        elif isinstance(item, Listing):
            rows.append(_listing_row(item, session_id, ts_ns, redact_json, redact_text))
        elif isinstance(item, Found):
            f = item.finding
            rows.append(
                FindingRow(
                    new_id(),
                    session_id,
                    f.server or server,
                    f.tool,
                    item.event_id,
                    f.rule,
                    f.severity,
                    f.kind,
                    f.field,
                    redact_text(f.message),
                    redact_text(f.excerpt),
                    ts_ns,
                )
            )
    return rows


def _listing_row(
    item: Listing, session_id: str, ts_ns: int, redact_json: RedactBytes, redact_text: RedactText
) -> ListingRow:
    snapshot = item.snapshot
    tools = snapshot.kind == "tools/list"
    definitions = tuple(
        DefinitionRow(
            d.name,
            d.hash,
            redact_json(d.canonical.encode("utf-8", "surrogatepass")).decode("utf-8", "replace"),
            item.definition_tokens.get(d.name) if tools else None,
        )
        for d in snapshot.definitions.values()
    )
    diff = item.diff
    changes: tuple[ChangeRow, ...] = ()
    if diff is not None:
        changes = tuple(
            ChangeRow(
                c.name, c.change, c.old_hash, c.new_hash, ",".join(c.fields), redact_text(c.diff)
            )
            for c in diff.changes
        )
    return ListingRow(
        session_id,
        item.event_id,
        snapshot.server,
        snapshot.info_name or "",
        snapshot.info_version,
        snapshot.kind,
        definitions,
        item.tokens,
        tuple(p.message for p in item.listing.problems),
        diff is not None,
        diff.old_version if diff is not None else None,
        changes,
        item.after_list_changed,
        ts_ns,
    )
