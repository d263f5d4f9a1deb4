"""validate_event: every field's rule, and the reason text a client quarantines with."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from km.server.stores.base import IngestEvent
from km.server.validate import (
    REQUIRED_FIELDS,
    canonical_id,
    careful_check,
    fast_check,
    validate_event,
)
from tests.server.conftest import event_json


def reason(**overrides: Any) -> str:
    result = validate_event(event_json(**overrides))
    assert isinstance(result, str), result
    return result


def test_a_full_event_is_valid() -> None:
    raw = event_json(3, latency_us=12, link_id="x", truncated=True)
    event = validate_event(raw)
    assert isinstance(event, IngestEvent)
    assert event.id == raw["id"]
    assert event.payload == raw["payload"].encode()
    assert (event.latency_us, event.link_id, event.truncated) == (12, "x", True)


def test_only_the_required_fields_are_needed() -> None:
    full = event_json()
    event = validate_event({k: full[k] for k in REQUIRED_FIELDS})
    assert isinstance(event, IngestEvent)
    assert (event.method, event.host, event.truncated, event.latency_us) == (
        None,
        None,
        False,
        None,
    )


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_each_required_field_missing_is_named(field: str) -> None:
    raw = event_json()
    del raw[field]
    assert validate_event(raw) == f"{field}: required"


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_each_required_field_null_is_named(field: str) -> None:
    assert reason(**{field: None}) == f"{field}: required"


def test_unknown_fields_are_ignored() -> None:
    assert isinstance(validate_event({**event_json(), "future_field": [1, 2]}), IngestEvent)


def test_not_an_object() -> None:
    assert validate_event([1]) == "event: expected a JSON object, got array"
    assert validate_event("x") == "event: expected a JSON object, got string"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not-a-uuid", "id: expected a UUID (8-4-4-4-12 hex digits)"),
        ("0190c5a27b3e7c419d2e5f6a7b8c9d0e", "id: expected a UUID (8-4-4-4-12 hex digits)"),
        ("{0190c5a2-7b3e-7c41-9d2e-5f6a7b8c9d0}", "id: expected a UUID (8-4-4-4-12 hex digits)"),
        (12, "id: expected a UUID (8-4-4-4-12 hex digits)"),
    ],
)
def test_bad_ids(value: object, expected: str) -> None:
    assert reason(id=value) == expected


def test_ids_are_canonicalised_to_lower_case() -> None:
    upper = "0190C5A2-7B3E-7C41-9D2E-5F6A7B8C9D0E"
    assert canonical_id(upper) == upper.lower()
    event = validate_event(event_json(id=upper))
    assert isinstance(event, IngestEvent) and event.id == upper.lower()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"direction": "up"}, "direction: expected one of c2s, s2c, km, got 'up'"),
        (
            {"kind": "nope"},
            "kind: expected one of request, notification, response, error, "
            "batch, invalid, dropped, got 'nope'",
        ),
        ({"ts_ns": "1"}, "ts_ns: expected an integer, got string"),
        ({"ts_ns": 1.5}, "ts_ns: expected an integer, got number"),
        ({"ts_ns": True}, "ts_ns: expected an integer, got boolean"),
        ({"ts_ns": -1}, "ts_ns: must be between 0 and 2**63-1"),
        ({"size": 2**63}, "size: must be between 0 and 2**63-1"),
        ({"latency_us": -5}, "latency_us: must be between 0 and 2**63-1"),
        ({"session_id": ""}, "session_id: must not be empty"),
        ({"server": 5}, "server: expected a string, got integer"),
        ({"server": "x" * 257}, "server: longer than 256 characters"),
        ({"method": "a\x00b"}, "method: contains a NUL character"),
        ({"host": {}}, "host: expected a string, got object"),
        ({"truncated": "no"}, "truncated: expected true or false, got string"),
        ({"tool": 3}, "tool: expected a string, got integer"),
        ({"tool": "t\x00"}, "tool: contains a NUL character"),
        ({"tool": "x" * 2049}, "tool: longer than 2048 characters"),
        ({"status": "fine"}, "status: expected one of ok, error, tool-error, got 'fine'"),
        ({"tokens": -1}, "tokens: must be between 0 and 2**63-1"),
        ({"tokens": "3"}, "tokens: expected an integer, got string"),
        ({"risk": 101}, "risk: must be between 0 and 100, got 101"),
        ({"risk": 1.5}, "risk: expected an integer, got number"),
        ({"payload": 5}, "payload: expected a string, got integer"),
        ({"payload_encoding": "hex"}, "payload_encoding: expected one of utf8, base64, got 'hex'"),
        (
            {"payload": "not base64!", "payload_encoding": "base64"},
            "payload: not valid base64 (payload_encoding is base64)",
        ),
    ],
)
def test_reasons_name_the_field(overrides: dict[str, Any], expected: str) -> None:
    assert reason(**overrides) == expected


def test_insight_fields_and_whether_they_were_sent() -> None:
    sent = validate_event(event_json(tool="echo", status="tool-error", tokens=9, risk=100))
    assert isinstance(sent, IngestEvent) and sent.analysed
    assert (sent.tool, sent.status, sent.tokens, sent.risk) == ("echo", "tool-error", 9, 100)
    older = {k: v for k, v in event_json().items() if k not in ("tool", "status", "tokens", "risk")}
    event = validate_event(older)
    assert isinstance(event, IngestEvent) and not event.analysed
    assert careful_check(older) == event


def test_base64_payloads_are_decoded() -> None:
    raw = bytes(range(256))
    event = validate_event(
        event_json(payload=base64.b64encode(raw).decode(), payload_encoding="base64")
    )
    assert isinstance(event, IngestEvent)
    assert event.payload == raw and event.payload_encoding == "base64"


def test_utf8_payload_may_hold_any_text() -> None:
    event = validate_event(event_json(payload="caf\u00e9 \U0001f600 \x00 nul"))
    assert isinstance(event, IngestEvent)
    assert event.payload == "caf\u00e9 \U0001f600 \x00 nul".encode()


# -- the fast path never disagrees with the careful one

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["c2s", "s2c", "km", "request", "error", "utf8", "base64", "", "\x00"]),
    st.sampled_from(["ok", "tool-error", 100, 101, "x" * 2049]),
    st.just("0190C5A2-7B3E-7C41-9D2E-5F6A7B8C9D0E"),
    st.just("x" * 300),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    event = event_json(draw(st.integers(min_value=0, max_value=1000)))
    for field in draw(st.lists(st.sampled_from(sorted(event)), max_size=4)):
        if draw(st.booleans()):
            event[field] = draw(_VALUES)
        else:
            event.pop(field, None)
    return event


@settings(max_examples=1500, deadline=None)
@given(mutated_events())
def test_fast_path_agrees_with_careful_path(event: dict[str, Any]) -> None:
    fast = fast_check(event)
    careful = careful_check(event)
    if fast is not None:
        assert fast == careful
    assert validate_event(event) == careful


def test_fast_path_takes_the_common_case() -> None:
    assert fast_check(event_json(1, latency_us=5)) is not None
    assert fast_check(event_json(1, payload="AA==", payload_encoding="base64")) is None
