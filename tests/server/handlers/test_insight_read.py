"""GET /api/v1/findings, GET /api/v1/tools, POST /api/v1/tools/approve and the events `tool=`
filter, over HTTP on both backends: shapes (checked against the OpenAPI document), filters,
paging, bad input, and one account never seeing another's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from km.insight.findings import Finding
from km.server.stores.insight import (
    DefinitionChange,
    DefinitionSeen,
    InsightWrites,
    StoredFinding,
)
from tests.server.conftest import BASE_TS, Api, event_json, ingest_event
from tests.server.schema_check import check_response


def stored(event_id: str, n: int, severity: str, kind: str, session: str) -> StoredFinding:
    finding = Finding(
        f"R{n:03d}", severity, kind, f"finding {n}", tool="echo", server="github",
        field="arguments.command", span=None, excerpt="rm -rf /",
    )  # fmt: skip
    return StoredFinding(str(uuid.uuid4()), session, "github", event_id, BASE_TS + n, finding)


async def seed(api: Api, account: str) -> tuple[str, int]:
    key = await api.new_key(account)
    acct = await api.store.create_account(account)
    events = [ingest_event(i, session_id=f"s{i % 2}") for i in range(4)]
    writes = InsightWrites(
        findings=tuple(
            stored(e.id, i, ("info", "medium", "high", "critical")[i],
                   ("risk", "poisoning", "drift", "risk")[i], e.session_id)
            for i, e in enumerate(events)
        ),
        definitions=(
            DefinitionSeen(events[0].id, "s0", "github", "tools/list", "echo", "h1", "gh", "1",
                           '{"name":"echo","description":"Echo"}', 7, BASE_TS),
            DefinitionSeen(events[1].id, "s1", "github", "tools/list", "echo", "h2", "gh", "1",
                           '{"name":"echo","description":"Echo!"}', 8, BASE_TS + 1),
            DefinitionSeen(events[1].id, "s1", "github", "tools/list", "add", "h3", "gh", "1",
                           '{"name":"add"}', 3, BASE_TS + 1),
        ),
        changes=(
            DefinitionChange("0190c5a2-7b3e-7c41-9d2e-5f6a7b8c9d0e", events[1].id, "s1",
                             "github", "tools/list", "echo", "changed", "h1", "h2",
                             ("description",), "-Echo\n+Echo!", False, BASE_TS + 1),
        ),
    )  # fmt: skip
    await api.store.ingest(acct.id, events, writes)
    return key, acct.id


async def all_pages(api: Api, key: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        status, body, _ = await api.get("/api/v1/findings", key, cursor=cursor, **params)
        assert status == 200, body
        check_response("GET", "/api/v1/findings", 200, body)
        out += body["findings"]
        cursor = body["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("paging did not end")


@pytest.mark.asyncio
async def test_findings_filters_and_paging(api: Api) -> None:
    key, _ = await seed(api, "acme")
    every = await all_pages(api, key, limit=1)
    assert [f["rule"] for f in every] == ["R000", "R001", "R002", "R003"]
    assert every[2] | {"id": None} == {
        "id": None, "session_id": "s0", "event_id": every[2]["event_id"], "ts_ns": BASE_TS + 2,
        "rule": "R002", "severity": "high", "kind": "drift", "message": "finding 2",
        "tool": "echo", "server": "github", "field": "arguments.command", "span": None,
        "excerpt": "rm -rf /",
    }  # fmt: skip
    assert [f["rule"] for f in await all_pages(api, key, severity="high")] == ["R002", "R003"]
    assert [f["rule"] for f in await all_pages(api, key, kind="risk")] == ["R000", "R003"]
    assert [f["rule"] for f in await all_pages(api, key, session="s1")] == ["R001", "R003"]
    assert await all_pages(api, key, server="other") == []
    assert [f["rule"] for f in await all_pages(api, key, tool="echo")] == [
        "R000",
        "R001",
        "R002",
        "R003",
    ]
    ranged = await all_pages(api, key, since_ns=BASE_TS + 1, until_ns=BASE_TS + 3)
    assert [f["rule"] for f in ranged] == ["R001", "R002"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"severity": "severe"}, "severity"),
        ({"kind": "odd"}, "kind"),
        ({"server": "a\x00b"}, "NUL"),
        ({"session": "\x00"}, "NUL"),
        ({"cursor": "Zgpmb3JnZWQ"}, "cursor"),
        ({"cursor": "ZR8xMh9hYmM"}, "cursor"),  # an events-style cursor, not a findings one
        ({"since_ns": "-1"}, "since_ns"),
        ({"limit": "0"}, "limit"),
    ],
)
async def test_findings_bad_input_is_400_with_one_line(
    api: Api, params: dict[str, str], word: str
) -> None:
    key, _ = await seed(api, "acme")
    status, body, _ = await api.get("/api/v1/findings", key, **params)
    assert status == 400
    check_response("GET", "/api/v1/findings", 400, body)
    assert word in body["error"] and "\n" not in body["error"]


@pytest.mark.asyncio
async def test_forged_findings_cursors(api: Api) -> None:
    import base64

    key, _ = await seed(api, "acme")
    for raw in (b"f\x1f1\x1fnot-a-uuid", b"f\x1fx\x1f" + b"0" * 36, b"e\x1f1\x1fabc"):
        forged = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        status, body, _ = await api.get("/api/v1/findings", key, cursor=forged)
        assert status == 400, body
        assert "cursor" in body["error"]


@pytest.mark.asyncio
async def test_tools_inventory_and_approve(api: Api) -> None:
    key, _ = await seed(api, "acme")
    status, body, _ = await api.get("/api/v1/tools", key)
    assert status == 200
    check_response("GET", "/api/v1/tools", 200, body)
    (server,) = body["servers"]
    assert (server["server"], server["server_name"], server["tokens"]) == ("github", "gh", 11)
    states = {(d["name"], d["hash"]): (d["current"], d["state"]) for d in server["definitions"]}
    assert states == {
        ("add", "h3"): (True, "unreviewed"),
        ("echo", "h1"): (False, "previous"),
        ("echo", "h2"): (True, "changed"),
    }
    assert [(c["name"], c["fields"], c["diff"]) for c in server["changes"]] == [
        ("echo", ["description"], "-Echo\n+Echo!")
    ]
    echo = next(d for d in server["definitions"] if d["hash"] == "h2")
    assert echo["definition"] == {"name": "echo", "description": "Echo!"}

    status, body, _ = await post(api, key, {"server": "github", "tool": "echo"})
    assert status == 200, body
    check_response("POST", "/api/v1/tools/approve", 200, body)
    assert [(p["tool"], p["hash"]) for p in body["pinned"]] == [("echo", "h2")]
    _, body, _ = await api.get("/api/v1/tools", key, server="github")
    pinned = {
        d["name"]: (d["state"], d["pinned_hash"])
        for d in body["servers"][0]["definitions"]
        if d["current"]
    }
    assert pinned == {"echo": ("approved", "h2"), "add": ("unreviewed", None)}
    status, body, _ = await post(api, key, {"server": "github"})
    assert [(p["tool"], p["hash"]) for p in body["pinned"]] == [("add", "h3"), ("echo", "h2")]
    _, none, _ = await api.get("/api/v1/tools", key, server="other")
    assert none == {"servers": []}


async def post(api: Api, key: str, body: Any) -> tuple[int, Any, Any]:
    async with api.http.post(
        f"{api.url}/api/v1/tools/approve", json=body, headers=api.auth(key)
    ) as resp:
        return resp.status, await resp.json(), resp


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        ({"server": "nope"}, 404, "nope"),
        ({"server": "github", "tool": "nope"}, 404, "nope"),
        ({"tool": "echo"}, 400, "server"),
        ({"server": "github", "tool": 3}, 400, "tool"),
        ({"server": "git\x00hub"}, 400, "server"),
        (["github"], 400, "object"),
    ],
)
async def test_approve_bad_input(api: Api, body: Any, status: int, word: str) -> None:
    key, _ = await seed(api, "acme")
    got, answer, _ = await post(api, key, body)
    assert got == status
    check_response("POST", "/api/v1/tools/approve", status, answer)
    assert word in answer["error"] and "\n" not in answer["error"]


@pytest.mark.asyncio
async def test_one_account_never_reads_another(api: Api) -> None:
    key_a, _ = await seed(api, "acme")
    key_b = await api.new_key("globex")
    status, body, _ = await api.post_events(key_b, [event_json(9, tool="mine")])
    assert status == 200 and len(body["accepted"]) == 1
    _, findings, _ = await api.get("/api/v1/findings", key_b)
    assert findings == {"findings": [], "next_cursor": None}
    _, tools, _ = await api.get("/api/v1/tools", key_b)
    assert tools == {"servers": []}
    status, _, _ = await post(api, key_b, {"server": "github"})
    assert status == 404  # acme's server is not globex's to approve
    _, events, _ = await api.get("/api/v1/events", key_a, tool="mine")
    assert events == {"events": [], "next_cursor": None}
    _, mine, _ = await api.get("/api/v1/events", key_b, tool="mine")
    assert [e["tool"] for e in mine["events"]] == ["mine"]
    # acme's cursor used by globex: valid, but pages only globex's (no) findings.
    _, page, _ = await api.get("/api/v1/findings", key_a, limit=1)
    _, other, _ = await api.get("/api/v1/findings", key_b, cursor=page["next_cursor"])
    assert other == {"findings": [], "next_cursor": None}


@pytest.mark.asyncio
async def test_unauthenticated_insight_routes_are_401(api: Api) -> None:
    for path in ("/api/v1/findings", "/api/v1/tools"):
        status, _, _ = await api.get(path)
        assert status == 401
    async with api.http.post(f"{api.url}/api/v1/tools/approve", json={"server": "x"}) as resp:
        assert resp.status == 401


@pytest.mark.asyncio
async def test_stats_per_tool_with_tokens_and_cost(api: Api) -> None:
    key = await api.new_key("acme")
    events = [
        event_json(0, tool="echo", tokens=1000, risk=0),
        event_json(1, direction="s2c", kind="response", tool="echo", status="tool-error",
                   tokens=2000, risk=0, latency_us=10),
        event_json(2, tool="add", tokens=7, risk=0),
    ]  # fmt: skip
    status, body, _ = await api.post_events(key, events)
    assert status == 200 and len(body["accepted"]) == 3
    status, body, _ = await api.get("/api/v1/stats", key, model="gpt-4o")
    assert status == 200
    check_response("GET", "/api/v1/stats", 200, body)
    rows = {s["tool"]: s for s in body["stats"]}
    echo = rows["echo"]
    assert (echo["count"], echo["tool_errors"], echo["errors"]) == (2, 1, 0)
    assert (echo["tokens"], echo["tokens_in"], echo["tokens_out"]) == (3000, 2000, 1000)
    assert echo["cost_usd"] == pytest.approx(2000 * 2.5e-6 + 1000 * 10e-6)  # gpt-4o list prices
    assert body["model"] == "gpt-4o"
    _, default, _ = await api.get("/api/v1/stats", key)
    echo = next(s for s in default["stats"] if s["tool"] == "echo")
    assert echo["cost_usd"] == pytest.approx(2000 * 3e-6 + 1000 * 15e-6)  # claude-sonnet-4-5
    status, body, _ = await api.get("/api/v1/stats", key, model="no-such-model")
    assert status == 400 and "model" in body["error"] and "\n" not in body["error"]


@pytest.mark.asyncio
async def test_events_tool_filter_with_a_nul_is_400(api: Api) -> None:
    key = await api.new_key("acme")
    status, body, _ = await api.get("/api/v1/events", key, tool="a\x00")
    assert status == 400 and body == {"error": "tool: contains a NUL character"}
