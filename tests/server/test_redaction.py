"""The server applies km.redact's redactor (when it exists) to every payload before storing."""

from __future__ import annotations

import orjson
import pytest

from km.server.batch import plan_batch
from km.server.redaction import load_clean_check, load_redactor
from tests.server.conftest import Api, event_json

SECRET_PAYLOAD = (
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":'
    '{"token":"ghp_0123456789abcdefghijklmnopqrstuvwxyzAB","email":"jane@example.com"}}}'
)


def test_load_redactor_is_callable_or_absent() -> None:
    redactor = load_redactor()
    assert redactor is None or callable(redactor)


@pytest.mark.asyncio
async def test_payloads_are_stored_as_the_redactor_leaves_them(api: Api) -> None:
    redactor = load_redactor()
    key = await api.new_key("acme")
    sent = event_json(0, payload=SECRET_PAYLOAD)
    status, body, _ = await api.post_events(key, [sent])
    assert status == 200 and body["accepted"] == [sent["id"]]
    _, page, _ = await api.get("/api/v1/events", key)
    stored = page["events"][0]["payload"].encode()
    expected = SECRET_PAYLOAD.encode() if redactor is None else redactor(SECRET_PAYLOAD.encode())
    assert orjson.loads(stored) == orjson.loads(expected)


def test_the_batch_pre_scan_changes_no_payload() -> None:
    """With km.redact's pre-scan, the plan holds exactly the payloads redacting each one gives."""
    redactor, clean = load_redactor(), load_clean_check()
    if redactor is None or clean is None:
        pytest.skip("no km.redact")
    payloads = [
        SECRET_PAYLOAD,
        '{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"hello"}]}}',
        '{"jsonrpc":"2.0","id":3,"params":{"arguments":{"password":"hunter2"}}}',
        "not json: Bearer abcdefghijklmnopqrstuvwxyz0123456789",
        '{"jsonrpc":"2.0","id":4,"result":{"card":"4111 1111 1111 1111"}}',
        '{"jsonrpc":"2.0","id":5,"method":"ping"}',
    ]
    items = [event_json(i, payload=p) for i, p in enumerate(payloads)]
    with_scan = plan_batch(items, redactor, clean)
    without = plan_batch(items, redactor)
    assert [e.payload for e in with_scan.events] == [e.payload for e in without.events]
    assert [e.payload for e in without.events] == [redactor(p.encode()) for p in payloads]
    assert with_scan.events[0].payload != SECRET_PAYLOAD.encode()  # something was redacted
