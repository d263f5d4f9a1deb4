"""Spool rows to request bodies: payload encodings, count and byte bounds, halves, gzip."""

from __future__ import annotations

import base64
import gzip
import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from km.uplink.batches import (
    ENVELOPE_BYTES,
    Batch,
    SpoolRow,
    body_of,
    body_size,
    claim_count,
    encode_event,
    event_dict,
    gzip_body,
    payload_field,
    plan_batches,
)


def row(n: int, payload: bytes = b'{"jsonrpc":"2.0","id":1}', **kw: object) -> SpoolRow:
    fields: dict[str, object] = {
        "seq": n,
        "id": f"0190aaaa-0000-7000-8000-{n:012x}",
        "session_id": "s",
        "server": "srv",
        "direction": "c2s",
        "ts_ns": 1_763_780_000_000_000_000 + n,
        "kind": "request",
        "method": "tools/call",
        "rpc_id": str(n),
        "size": len(payload),
        "payload": payload,
    }
    fields.update(kw)
    return SpoolRow(**fields)  # type: ignore[arg-type]


def decoded(payload: str, encoding: str) -> bytes:
    return payload.encode() if encoding == "utf8" else base64.b64decode(payload, validate=True)


@pytest.mark.parametrize(
    ("payload", "encoding"),
    [
        (b'{"a":"\xc3\xa9\xe2\x9c\x93"}', "utf8"),
        (b"", "utf8"),
        (b"\xff\xfe", "base64"),
        (b'{"cut":"\xe2\x9c', "base64"),  # truncated mid-character
        (b"\xed\xa0\x80", "base64"),  # an encoded surrogate is not UTF-8
        (b"nul \x00 inside", "utf8"),
    ],
)
def test_payload_field(payload: bytes, encoding: str) -> None:
    text, used = payload_field(payload)
    assert used == encoding
    assert decoded(text, used) == payload


@given(st.binary(max_size=300))
def test_payload_round_trips_through_json(payload: bytes) -> None:
    doc = orjson.loads(encode_event(row(1, payload)))
    assert decoded(doc["payload"], doc["payload_encoding"]) == payload


def test_event_has_every_field_of_the_contract() -> None:
    r = row(
        7, truncated=True, link_id="x", latency_us=12, host="h", km_version="0.1.0",
        tool="get_time", status=None, tokens=9, risk=35,
    )  # fmt: skip
    assert event_dict(r) == {
        "id": r.id,
        "session_id": "s",
        "server": "srv",
        "direction": "c2s",
        "ts_ns": r.ts_ns,
        "kind": "request",
        "method": "tools/call",
        "rpc_id": "7",
        "size": r.size,
        "payload": r.payload.decode(),
        "payload_encoding": "utf8",
        "truncated": True,
        "link_id": "x",
        "latency_us": 12,
        "host": "h",
        "km_version": "0.1.0",
        "tool": "get_time",
        "status": None,
        "tokens": 9,
        "risk": 35,
    }


@settings(max_examples=60)
@given(
    sizes=st.lists(st.integers(0, 3000), max_size=60),
    max_events=st.integers(1, 12),
    max_bytes=st.integers(1, 8000),
)
def test_plan_batches_bounds_and_order(sizes: list[int], max_events: int, max_bytes: int) -> None:
    rows = [row(i, b"x" * size) for i, size in enumerate(sizes)]
    batches = plan_batches(rows, max_events, max_bytes)
    assert [r for b in batches for r in b.rows] == rows  # all of them, in order, once
    for b in batches:
        assert 1 <= len(b) <= max_events
        assert len(b.body) == body_size(b.encoded)
        if len(b) > 1:
            assert len(b.body) <= max_bytes
        doc = orjson.loads(b.body)
        assert [e["id"] for e in doc["events"]] == list(b.ids)
    # Greedy: a batch closes only when the next row would not fit.
    for first, second in itertools.pairwise(batches):
        grown = body_size((*first.encoded, second.encoded[0]))
        assert len(first) == max_events or grown > max_bytes


def test_oversized_event_travels_alone() -> None:
    rows = [row(0), row(1, b"y" * 5000), row(2)]
    batches = plan_batches(rows, 10, 1000)
    assert [len(b) for b in batches] == [1, 1, 1]


def test_split_halves_keep_order() -> None:
    b = plan_batches([row(i) for i in range(5)], 10, 1 << 20)[0]
    first, second = b.split()
    assert [r.seq for r in first.rows] == [0, 1]
    assert [r.seq for r in second.rows] == [2, 3, 4]
    assert orjson.loads(first.body)["events"] == orjson.loads(b.body)["events"][:2]
    with pytest.raises(ValueError):
        first.split()[0].split()


def test_batch_needs_matching_rows() -> None:
    with pytest.raises(ValueError):
        Batch((), ())
    with pytest.raises(ValueError):
        Batch((row(1),), ())


def test_plan_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        plan_batches([row(1)], 0, 100)


def test_empty_body_shape() -> None:
    assert body_of([]) == b'{"events":[]}'
    assert body_size([]) == ENVELOPE_BYTES


def test_gzip_round_trip() -> None:
    body = plan_batches([row(i) for i in range(200)], 500, 1 << 20)[0].body
    packed = gzip_body(body)
    assert gzip.decompress(packed) == body
    assert len(packed) < len(body) // 4


@pytest.mark.parametrize(
    ("sizes", "max_events", "max_bytes", "expected"),
    [
        ([], 5, 100, 0),
        ([500], 5, 100, 1),  # at least one
        ([10, 10, 10], 2, 1000, 2),
        ([40, 40, 40], 10, 100, 2),  # 13 + 40 + 1 + 40 = 94; a third would pass 100
    ],
)
def test_claim_count(sizes: list[int], max_events: int, max_bytes: int, expected: int) -> None:
    assert claim_count(sizes, max_events, max_bytes) == expected
