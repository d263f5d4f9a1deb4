"""The ingest envelope and plan: 400/413 on the envelope, per-event rejections, in-batch
repeats, redaction, and the response echoing ids as sent."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest

from km.server.batch import parse_batch, plan_batch, response_body
from km.server.errors import BadRequest, BodyTooLarge
from km.server.stores.base import IngestResult
from tests.server.conftest import event_json


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not JSON"),
        (b"", "the body is not JSON"),
        (b"[1, 2]", 'expected a JSON object {"events": [...]}, got array'),
        (b'{"evnts": []}', 'the body has no "events" array'),
        (b'{"events": {}}', 'the body has no "events" array'),
    ],
)
def test_bad_envelopes(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_batch(body, 10)


def test_too_many_events() -> None:
    with pytest.raises(BodyTooLarge) as info:
        parse_batch(orjson.dumps({"events": [{}] * 11}), 10)
    assert info.value.limit == 10
    assert parse_batch(orjson.dumps({"events": [{}] * 10}), 10) == [{}] * 10


def test_plan_keeps_order_rejects_and_repeats() -> None:
    a, b = event_json(0), event_json(1)
    upper = {**a, "id": a["id"].upper()}
    plan = plan_batch([a, {"id": 7}, b, "x", upper, {**b, "server": ""}], None)
    assert [e.id for e in plan.events] == [a["id"], b["id"]]
    assert plan.repeats == (a["id"].upper(),)  # the same event again, differently spelled
    assert [(r.index, r.id) for r in plan.rejected] == [(1, None), (3, None), (5, b["id"])]
    assert plan.rejected[2].reason == "server: must not be empty"


def test_response_echoes_ids_as_sent() -> None:
    a, b = event_json(0, id=event_json()["id"].upper()), event_json(1)
    plan = plan_batch([a, b, a], None)
    body = response_body(plan, IngestResult(accepted=(b["id"],), duplicates=(a["id"].lower(),)))
    assert body == {
        "accepted": [b["id"]],
        "duplicates": [a["id"], a["id"]],
        "rejected": [],
    }


def test_the_redactor_sees_and_replaces_each_payload() -> None:
    seen: list[bytes] = []

    def redact(payload: bytes) -> bytes:
        seen.append(payload)
        return payload.replace(b"tools/call", b"[REDACTED]")

    a = event_json(0)
    plan = plan_batch([a], redact)
    assert seen == [a["payload"].encode()]
    assert b"[REDACTED]" in plan.events[0].payload


def test_a_failing_redactor_rejects_only_that_event() -> None:
    def redact(payload: bytes) -> bytes:
        if b'"id":1' in payload:
            raise ValueError("boom")
        return payload

    plan = plan_batch([event_json(0), event_json(1)], redact)
    assert len(plan.events) == 1
    assert plan.rejected[0].index == 1
    assert plan.rejected[0].reason == "payload: redaction failed (ValueError('boom'))"


def test_payloads_the_pre_scan_finds_clean_are_not_redacted_one_by_one() -> None:
    seen: list[bytes] = []

    def redact(payload: bytes) -> bytes:
        seen.append(payload)
        return payload.replace(b"secret", b"[REDACTED]")

    scanned: list[list[bytes]] = []

    def clean(payloads: Sequence[bytes]) -> list[bool]:
        scanned.append(list(payloads))
        return [b"secret" not in p for p in payloads]

    plain, secret = event_json(0), event_json(1, payload='{"a":"secret"}')
    items = [plain, {"id": 7}, secret, {**secret}, event_json(2, payload='{"b":"secret"}')]
    plan = plan_batch(items, redact, clean)
    # One pre-scan over the valid events' payloads; only the flagged ones are redacted.
    assert scanned == [[i["payload"].encode() for i in (plain, secret, secret, items[4])]]
    assert seen == [b'{"a":"secret"}', b'{"b":"secret"}']
    assert [e.payload for e in plan.events] == [
        plain["payload"].encode(), b'{"a":"[REDACTED]"}', b'{"b":"[REDACTED]"}',
    ]  # fmt: skip
    assert plan.repeats == (secret["id"],) and [r.index for r in plan.rejected] == [1]


def test_a_failing_redactor_after_the_pre_scan_rejects_in_batch_order() -> None:
    def redact(payload: bytes) -> bytes:
        raise ValueError("boom")

    a, b = event_json(0), event_json(1)
    plan = plan_batch([a, {"id": 7}, b], redact, lambda payloads: [False] * len(payloads))
    assert [r.index for r in plan.rejected] == [0, 1, 2]
    assert plan.events == ()
