"""The read side over HTTP: filters, cursor pagination, stats, tenancy, bad parameters."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from km.server.stores.aggregate import hour_of
from tests.server.conftest import BASE_TS, HOUR_NS, Api, event_json
from tests.server.schema_check import check_response


async def page_all(api: Api, key: str, path: str, field: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        status, body, _ = await api.get(path, key, cursor=cursor, **params)
        assert status == 200, body
        check_response("GET", path, 200, body)
        items += body[field]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.asyncio
async def test_events_read_back_as_ingested(api: Api) -> None:
    key = await api.new_key("acme")
    events = [
        event_json(
            0, latency_us=5, link_id="abc", truncated=True, payload='{"jsonrpc":"2.0","id":1,"re'
        ),
        event_json(
            1, payload=base64.b64encode(b"\xff\x00\xfe").decode(), payload_encoding="base64"
        ),
        event_json(2, payload='{"b": 1, "a": [true, null]}', method=None, rpc_id=None, host=None),
    ]
    await api.post_events(key, events)
    got = await page_all(api, key, "/api/v1/events", "events")
    for sent, read in zip(events, got, strict=True):
        if sent is events[2]:
            assert orjson.loads(read.pop("payload")) == orjson.loads(sent.pop("payload"))
        assert read == sent


@pytest.mark.asyncio
async def test_event_filters_over_http(api: Api) -> None:
    key = await api.new_key("acme")
    events = [
        event_json(0, session_id="s1", server="github", method="tools/call", direction="c2s"),
        event_json(1, session_id="s1", server="github", method="tools/list", direction="s2c"),
        event_json(2, session_id="s2", server="slack", method="tools/call", direction="c2s"),
    ]
    await api.post_events(key, events)
    ids = [e["id"] for e in events]

    async def query(**params: Any) -> list[str]:
        return [e["id"] for e in await page_all(api, key, "/api/v1/events", "events", **params)]

    assert await query(session="s1") == ids[:2]
    assert await query(server="slack") == ids[2:]
    assert await query(method="tools/call") == [ids[0], ids[2]]
    assert await query(direction="s2c") == [ids[1]]
    assert await query(since_ns=events[1]["ts_ns"], until_ns=events[2]["ts_ns"]) == [ids[1]]


@pytest.mark.asyncio
async def test_cursor_pages_cover_every_event_once(api: Api) -> None:
    key = await api.new_key("acme")
    rng = random.Random(11)
    events = [event_json(0, ts_ns=BASE_TS + rng.randrange(20)) for _ in range(230)]
    for i in range(0, len(events), 100):
        await api.post_events(key, events[i : i + 100])
    got = await page_all(api, key, "/api/v1/events", "events", limit=17)
    assert [e["id"] for e in got] == [
        e["id"] for e in sorted(events, key=lambda e: (e["ts_ns"], e["id"]))
    ]


@pytest.mark.asyncio
async def test_sessions_over_http(api: Api) -> None:
    key = await api.new_key("acme")
    events = [
        event_json(i, session_id=f"s{i % 5}", kind="error" if i == 7 else "request")
        for i in range(20)
    ]
    await api.post_events(key, events)
    sessions = await page_all(api, key, "/api/v1/sessions", "sessions", limit=2)
    assert [s["session_id"] for s in sessions] == ["s4", "s3", "s2", "s1", "s0"]
    s2 = sessions[2]
    assert (s2["events"], s2["errors"], s2["host"]) == (4, 1, "laptop")
    assert s2["first_ts_ns"] == events[2]["ts_ns"] and s2["last_ts_ns"] == events[17]["ts_ns"]


@pytest.mark.asyncio
async def test_stats_over_http(api: Api) -> None:
    key = await api.new_key("acme")
    latencies = [120, 150, 180, 300, 400, 450, 700, 800, 900, 4000]
    events = [
        event_json(i, kind="response" if i else "error", latency_us=lat, size=50)
        for i, lat in enumerate(latencies)
    ]
    await api.post_events(key, events)
    status, body, _ = await api.get("/api/v1/stats", key)
    assert status == 200
    check_response("GET", "/api/v1/stats", 200, body)
    hour = datetime.fromtimestamp(hour_of(BASE_TS) // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body == {
        "stats": [
            {
                "server": "github",
                "method": "tools/call",
                "tool": None,  # the events say they act on none
                "hour": hour,
                "count": 10,
                "errors": 1,
                "tool_errors": 0,
                "tokens": 0,
                "tokens_in": 0,
                "tokens_out": 0,
                "cost_usd": 0.0,
                "latency_p50_us": 400,  # worked out in tests/server/test_latency.py
                "latency_p95_us": 4000,
                "bytes": 500,
            }
        ],
        "model": "claude-sonnet-4-5",
    }
    _, later, _ = await api.get("/api/v1/stats", key, since_ns=hour_of(BASE_TS) + HOUR_NS)
    assert later == {"stats": [], "model": "claude-sonnet-4-5"}


@pytest.mark.asyncio
async def test_two_accounts_see_only_their_own(api: Api) -> None:
    key_a = await api.new_key("a")
    key_b = await api.new_key("b")
    await api.post_events(key_a, [event_json(i, session_id="a-session") for i in range(3)])
    await api.post_events(
        key_b, [event_json(i, session_id="b-session", server="slack") for i in range(2)]
    )
    for key, session, server, count in (
        (key_a, "a-session", "github", 3),
        (key_b, "b-session", "slack", 2),
    ):
        events = await page_all(api, key, "/api/v1/events", "events")
        assert {e["session_id"] for e in events} == {session} and len(events) == count
        sessions = await page_all(api, key, "/api/v1/sessions", "sessions")
        assert [s["session_id"] for s in sessions] == [session]
        _, stats, _ = await api.get("/api/v1/stats", key)
        assert [(s["server"], s["count"]) for s in stats["stats"]] == [(server, count)]
    # Asking for the other account's session by name finds nothing.
    assert await page_all(api, key_b, "/api/v1/events", "events", session="a-session") == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/events", {"limit": 0}, "limit: must be between 1 and 1000"),
        ("/api/v1/events", {"limit": 1001}, "limit: must be between 1 and 1000"),
        ("/api/v1/events", {"limit": "ten"}, "limit: expected an integer"),
        ("/api/v1/events", {"direction": "up"}, "direction: expected one of c2s, s2c, km"),
        ("/api/v1/events", {"since_ns": 5, "until_ns": 4}, "until_ns: must not be before since_ns"),
        ("/api/v1/events", {"cursor": "bogus"}, "cursor 'bogus' is not valid"),
        ("/api/v1/sessions", {"cursor": "bogus"}, "cursor 'bogus' is not valid"),
        ("/api/v1/stats", {"since_ns": -1}, "since_ns: must be between 0 and"),
    ],
)
async def test_bad_parameters_are_400(
    api: Api, path: str, params: dict[str, Any], message: str
) -> None:
    key = await api.new_key("acme")
    status, body, _ = await api.get(path, key, **params)
    assert status == 400
    check_response("GET", path, 400, body)
    assert body["error"].startswith(message)
