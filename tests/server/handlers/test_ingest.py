"""POST /api/v1/events over real HTTP on loopback, on both backends."""

from __future__ import annotations

import asyncio
import gzip
import random
from typing import Any

import orjson
import pytest

from km.server.config import ServerConfig
from km.server.stores.base import EventFilter, EventStore
from tests.server.conftest import UNLIMITED, Api, event_json, serve_api
from tests.server.schema_check import check_response

PATH = "/api/v1/events"


async def stored_ids(store: EventStore, account: str) -> list[str]:
    acct = await store.create_account(account)
    page = await store.list_events(acct.id, EventFilter(), None, 1000)
    return [e.id for e in page.items]


@pytest.mark.asyncio
async def test_accepted_duplicates_rejected(api: Api) -> None:
    key = await api.new_key("acme")
    good = [event_json(i) for i in range(3)]
    bad: list[Any] = [
        {**event_json(10), "direction": "sideways"},
        {**event_json(11), "id": "nope"},
        "not an object",
        {k: v for k, v in event_json(12).items() if k != "payload"},
    ]
    status, body, _ = await api.post_events(key, [*good, *bad])
    assert status == 200
    check_response("POST", PATH, 200, body)
    assert body["accepted"] == [e["id"] for e in good]
    assert body["duplicates"] == []
    assert body["rejected"] == [
        {
            "id": bad[0]["id"],
            "index": 3,
            "reason": "direction: expected one of c2s, s2c, km, got 'sideways'",
        },
        {"id": "nope", "index": 4, "reason": "id: expected a UUID (8-4-4-4-12 hex digits)"},
        {"id": None, "index": 5, "reason": "event: expected a JSON object, got string"},
        {"id": bad[3]["id"], "index": 6, "reason": "payload: required"},
    ]
    # The same batch again: the good ones are duplicates now, stored once.
    status, body, _ = await api.post_events(key, [*good, event_json(20)])
    assert status == 200
    assert body["duplicates"] == [e["id"] for e in good]
    assert len(body["accepted"]) == 1
    assert len(await stored_ids(api.store, "acme")) == 4


@pytest.mark.asyncio
async def test_ids_are_echoed_as_sent(api: Api) -> None:
    key = await api.new_key("acme")
    event = event_json(0)
    event["id"] = event["id"].upper()
    _, body, _ = await api.post_events(key, [event])
    assert body["accepted"] == [event["id"]]
    _, body, _ = await api.post_events(key, [{**event, "id": event["id"].lower()}])
    assert body["duplicates"] == [event["id"].lower()]


@pytest.mark.asyncio
async def test_empty_batch(api: Api) -> None:
    key = await api.new_key("acme")
    status, body, _ = await api.post_events(key, [])
    assert (status, body) == (200, {"accepted": [], "duplicates": [], "rejected": []})


@pytest.mark.asyncio
async def test_gzip_body(api: Api) -> None:
    key = await api.new_key("acme")
    events = [event_json(i) for i in range(50)]
    body = gzip.compress(orjson.dumps({"events": events}))
    status, resp, _ = await api.post_raw(key, body, {"Content-Encoding": "gzip"})
    assert status == 200
    assert resp["accepted"] == [e["id"] for e in events]


@pytest.mark.asyncio
async def test_413_after_decompression_for_a_gzip_bomb(store: EventStore) -> None:
    config = ServerConfig(port=0, rate_limit=UNLIMITED.rate_limit, max_batch_bytes=1024 * 1024)
    async with serve_api(store, config) as api:
        key = await api.new_key("acme")
        # A valid JSON batch of 64 MiB that gzips to ~64 KiB: small on the wire, huge inflated.
        doc = b'{"events": [], "padding": "' + b" " * (64 * 1024 * 1024) + b'"}'
        bomb = gzip.compress(doc, compresslevel=9)
        assert len(bomb) < 1024 * 1024
        status, body, _ = await api.post_raw(key, bomb, {"Content-Encoding": "gzip"})
        assert status == 413
        check_response("POST", PATH, 413, body)
        assert "decompressed request body is over the limit of 1048576" in body["error"]
        # Just under the limit once inflated is fine.
        small = gzip.compress(b'{"events": [], "padding": "' + b" " * 1000 + b'"}')
        status, _, _ = await api.post_raw(key, small, {"Content-Encoding": "gzip"})
        assert status == 200


@pytest.mark.asyncio
async def test_413_for_a_plain_body_and_for_too_many_events(store: EventStore) -> None:
    config = ServerConfig(
        port=0, rate_limit=UNLIMITED.rate_limit, max_batch_bytes=64 * 1024, max_batch_events=3
    )
    async with serve_api(store, config) as api:
        key = await api.new_key("acme")
        status, body, _ = await api.post_raw(key, b'{"events": []' + b" " * 70_000 + b"}")
        assert status == 413
        status, body, _ = await api.post_events(key, [event_json(i) for i in range(4)])
        assert status == 413
        assert "4 events is over the limit of 3" in body["error"]
        assert await stored_ids(store, "acme") == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"events": [', "the body is not JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"event": []}', 'the body has no "events" array'),
    ],
)
async def test_400_stores_nothing(api: Api, body: bytes, message: str) -> None:
    key = await api.new_key("acme")
    status, resp, _ = await api.post_raw(key, body)
    assert status == 400
    check_response("POST", PATH, 400, resp)
    assert resp["error"].startswith(message)
    assert await stored_ids(api.store, "acme") == []


@pytest.mark.asyncio
async def test_400_for_a_broken_gzip_body_and_415_for_other_encodings(api: Api) -> None:
    key = await api.new_key("acme")
    status, resp, _ = await api.post_raw(key, b"not gzip", {"Content-Encoding": "gzip"})
    assert status == 400 and "gzip" in resp["error"]
    status, resp, _ = await api.post_raw(key, b"{}", {"Content-Encoding": "br"})
    assert status == 415
    check_response("POST", PATH, 415, resp)


@pytest.mark.asyncio
async def test_concurrent_resends_store_each_event_once(api: Api) -> None:
    key = await api.new_key("acme")
    events = [event_json(i, session_id=f"s{i % 4}", latency_us=i) for i in range(200)]
    rng = random.Random(3)
    batches = [rng.sample(events, 80) for _ in range(10)] + [events, events]
    results = await asyncio.gather(*(api.post_events(key, b) for b in batches))
    accepted: list[str] = []
    for batch, (status, body, _) in zip(batches, results, strict=True):
        assert status == 200
        assert sorted(body["accepted"] + body["duplicates"]) == sorted(e["id"] for e in batch)
        accepted += body["accepted"]
    assert sorted(accepted) == sorted(e["id"] for e in events)  # each accepted exactly once
    assert sorted(await stored_ids(api.store, "acme")) == sorted(accepted)
    status, stats, _ = await api.get("/api/v1/stats", key)
    assert sum(s["count"] for s in stats["stats"]) == 200


@pytest.mark.asyncio
async def test_one_account_cannot_write_over_another(api: Api) -> None:
    key_a = await api.new_key("a")
    key_b = await api.new_key("b")
    events = [event_json(i) for i in range(5)]
    _, body_a, _ = await api.post_events(key_a, events)
    tampered = [{**e, "payload": '{"evil": true}', "server": "evil"} for e in events]
    _, body_b, _ = await api.post_events(key_b, tampered)
    # Not duplicates for b (that would reveal a's ids), and a's events are untouched.
    assert body_b["accepted"] == body_a["accepted"] == [e["id"] for e in events]
    status, page, _ = await api.get("/api/v1/events", key_a)
    assert status == 200
    assert {e["server"] for e in page["events"]} == {"github"}
