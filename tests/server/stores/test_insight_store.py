"""The insight tables of both backends: findings, definitions, changes, pins, tool rollups."""

from __future__ import annotations

import uuid

import pytest

from km.insight.findings import Finding
from km.server.errors import BadCursor
from km.server.stores.base import EventFilter, EventStore
from km.server.stores.insight import (
    DefinitionChange,
    DefinitionSeen,
    FindingFilter,
    InsightWrites,
    StoredFinding,
)
from tests.server.conftest import BASE_TS, ingest_event


def found(event_id: str | None, n: int, severity: str, kind: str = "poisoning") -> StoredFinding:
    finding = Finding(
        f"P{n:03d}", severity, kind, f"finding {n}", tool=f"tool{n}", server="github",
        field="description", span=(n, n + 3), excerpt=f"<U+200B> {n}",
    )  # fmt: skip
    return StoredFinding(
        str(uuid.uuid4()),
        "session-1",
        "github",
        event_id,
        BASE_TS + n,
        finding,
    )


def seen(event_id: str, name: str, digest: str, ts: int, session: str = "s1") -> DefinitionSeen:
    return DefinitionSeen(
        event_id, session, "github", "tools/list", name, digest, "gh", "1.0",
        f'{{"name":"{name}"}}', 12, ts,
    )  # fmt: skip


@pytest.mark.asyncio
async def test_findings_stored_with_their_events_only_once(store: EventStore) -> None:
    acct = await store.create_account("acme")
    other = await store.create_account("other")
    events = [ingest_event(i) for i in range(3)]
    writes = InsightWrites(
        findings=tuple(found(e.id, i, ("low", "high", "critical")[i]) for i, e in enumerate(events))
    )
    await store.ingest(acct.id, events, writes)
    await store.ingest(acct.id, events, writes)  # a retry: duplicates add nothing
    page = await store.list_findings(acct.id, FindingFilter(), None, 100)
    assert [f.finding for f in page.items] == [f.finding for f in writes.findings]
    assert [f.event_id for f in page.items] == [e.id for e in events]
    assert page.items[1].finding.span == (1, 4)
    assert (await store.list_findings(other.id, FindingFilter(), None, 100)).items == ()

    high = await store.list_findings(acct.id, FindingFilter(min_severity="high"), None, 100)
    assert [f.finding.severity for f in high.items] == ["high", "critical"]
    assert (await store.list_findings(acct.id, FindingFilter(kind="drift"), None, 10)).items == ()
    one = await store.list_findings(acct.id, FindingFilter(tool="tool2"), None, 10)
    assert [f.finding.rule for f in one.items] == ["P002"]
    timed = FindingFilter(since_ns=BASE_TS + 1, until_ns=BASE_TS + 2)
    in_range = await store.list_findings(acct.id, timed, None, 10)
    assert [f.finding.rule for f in in_range.items] == ["P001"]

    seen_rules, cursor = [], None
    while True:
        p = await store.list_findings(acct.id, FindingFilter(), cursor, 1)
        seen_rules += [f.finding.rule for f in p.items]
        cursor = p.next_cursor
        if cursor is None:
            break
    assert seen_rules == ["P000", "P001", "P002"]
    with pytest.raises(BadCursor):
        await store.list_findings(acct.id, FindingFilter(), "bm90IGEgY3Vyc29y", 1)


@pytest.mark.asyncio
async def test_findings_of_duplicate_events_are_not_stored(store: EventStore) -> None:
    acct = await store.create_account("acme")
    event = ingest_event(0)
    await store.ingest(acct.id, [event])
    await store.ingest(acct.id, [event], InsightWrites(findings=(found(event.id, 1, "high"),)))
    assert (await store.list_findings(acct.id, FindingFilter(), None, 10)).items == ()


@pytest.mark.asyncio
async def test_definitions_changes_and_pins(store: EventStore) -> None:
    acct = await store.create_account("acme")
    other = await store.create_account("other")
    e1, e2, e3 = (ingest_event(i, session_id=f"s{i}") for i in range(3))
    await store.ingest(
        acct.id, [e1], InsightWrites(definitions=(seen(e1.id, "a", "h1", 10, "s1"),
                                                  seen(e1.id, "b", "hb", 10, "s1")))
    )  # fmt: skip
    change = DefinitionChange(
        "0190c5a2-7b3e-7c41-9d2e-5f6a7b8c9d0e", e2.id, "s2", "github", "tools/list", "a",
        "changed", "h1", "h2", ("description",), "-old\n+new", False, 20,
    )  # fmt: skip
    await store.ingest(
        acct.id,
        [e2],
        InsightWrites(
            definitions=(seen(e2.id, "a", "h2", 20, "s2"), seen(e2.id, "b", "hb", 20, "s2")),
            changes=(change,),
        ),
    )
    await store.ingest(
        acct.id, [e3], InsightWrites(definitions=(seen(e3.id, "b", "hb", 30, "s2"),))
    )  # same session again: not a new session
    inv = await store.inventory(acct.id, None)
    rows = {(d.name, d.hash): d for d in inv.definitions}
    assert sorted(rows) == [("a", "h1"), ("a", "h2"), ("b", "hb")]
    assert (rows["b", "hb"].first_seen_ns, rows["b", "hb"].last_seen_ns) == (10, 30)
    assert rows["b", "hb"].sessions == 2 and rows["a", "h1"].sessions == 1
    assert [(c.name, c.fields, c.diff, c.version_changed) for c in inv.changes] == [
        ("a", ("description",), "-old\n+new", False)
    ]
    assert (await store.inventory(other.id, None)).definitions == ()
    assert (await store.inventory(acct.id, "elsewhere")).definitions == ()

    # The latest listing (ts 30) holds only b: a was not listed again, so only b is pinned.
    pins = await store.approve(acct.id, "github", None)
    assert [(p.name, p.hash) for p in pins] == [("b", "hb")]
    assert await store.approve(acct.id, "github", "a") == []
    assert await store.approve(acct.id, "nope", None) == []
    assert await store.approve(other.id, "github", None) == []
    again = await store.approve(acct.id, "github", "b")
    assert [(p.server, p.name, p.hash) for p in again] == [("github", "b", "hb")]
    assert [(p.name, p.hash) for p in (await store.inventory(acct.id, "github")).pins] == [
        ("b", "hb")
    ]
    assert (await store.inventory(other.id, "github")).pins == ()


@pytest.mark.asyncio
async def test_rollups_per_tool_with_tokens_and_tool_errors(store: EventStore) -> None:
    acct = await store.create_account("acme")
    events = [
        ingest_event(0, tool="get_time", tokens=10, risk=5),
        ingest_event(1, kind="response", tool="get_time", status="ok", tokens=30, latency_us=9),
        ingest_event(2, tool="get_time", tokens=11),
        ingest_event(3, kind="response", tool="get_time", status="tool-error", tokens=4),
        ingest_event(4, kind="error", tool="echo", status="error", latency_us=3),
        ingest_event(5, method="tools/list"),
    ]
    await store.ingest(acct.id, events)
    stats = {(s.method, s.tool): s for s in await store.stats(acct.id, None, None)}
    assert sorted(stats, key=str) == sorted(
        [("tools/call", "echo"), ("tools/call", "get_time"), ("tools/list", None)], key=str
    )
    got = stats["tools/call", "get_time"]
    assert (got.count, got.errors, got.tool_errors, got.tokens) == (4, 0, 1, 55)
    echo = stats["tools/call", "echo"]
    assert (echo.count, echo.errors, echo.tool_errors, echo.tokens) == (1, 1, 0, 0)
    await store.ingest(acct.id, [ingest_event(6, tool="get_time", tokens=5)])
    again = {(s.method, s.tool): s for s in await store.stats(acct.id, None, None)}
    assert (again["tools/call", "get_time"].count, again["tools/call", "get_time"].tokens) == (
        5,
        60,
    )
    read = await store.list_events(acct.id, EventFilter(tool="echo"), None, 10)
    assert [(e.tool, e.status) for e in read.items] == [("echo", "error")]
