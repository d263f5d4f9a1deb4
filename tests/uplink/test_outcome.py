"""What a response means for a batch: sent, quarantined, retried, split, or paused."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from km.uplink.outcome import (
    DEFAULT_RATE_LIMIT_WAIT_S,
    MAX_REASON_CHARS,
    Delivered,
    Pause,
    QuarantineAll,
    Retry,
    Split,
    decide,
    header,
    network_error,
)

IDS = ["id-a", "id-b", "id-c", "id-d"]


def body(**doc: object) -> bytes:
    return orjson.dumps(doc)


def test_all_accepted() -> None:
    out = decide(200, {}, body(accepted=IDS, duplicates=[], rejected=[]), IDS)
    assert out == Delivered(tuple(IDS), (), (), accepted=4, duplicates=0)


def test_partial_acceptance() -> None:
    doc = body(
        accepted=["id-a"],
        duplicates=["id-b"],
        rejected=[{"id": "id-c", "index": 2, "reason": "kind: expected one of ..."}],
    )
    out = decide(200, {}, doc, IDS)
    assert isinstance(out, Delivered)
    assert out.sent == ("id-a", "id-b")
    assert out.rejected == (("id-c", "kind: expected one of ..."),)
    assert out.unacknowledged == ("id-d",)  # not mentioned: sent again later, never dropped
    assert (out.accepted, out.duplicates) == (1, 1)


def test_rejected_by_index_when_the_id_is_unreadable() -> None:
    doc = body(accepted=[], duplicates=[], rejected=[{"id": None, "index": 1, "reason": "id"}])
    out = decide(200, {}, doc, IDS)
    assert isinstance(out, Delivered)
    assert out.rejected == (("id-b", "id"),)


def test_ids_match_case_insensitively_and_strangers_are_ignored() -> None:
    ids = ["0190AAAA-0000-7000-8000-000000000001"]
    doc = body(accepted=[ids[0].lower(), "someone-else"], duplicates=[], rejected=[])
    out = decide(200, {}, doc, ids)
    assert isinstance(out, Delivered)
    assert out.sent == (ids[0],)


def test_accepted_wins_over_rejected_and_lists_are_optional() -> None:
    doc = body(accepted=["id-a"], rejected=[{"id": "id-a", "reason": "x"}, "junk", {"id": 3}])
    out = decide(200, {}, doc, ["id-a"])
    assert out == Delivered(("id-a",), (), (), accepted=1)


def test_missing_reason_gets_one_and_long_reasons_are_clipped() -> None:
    doc = body(rejected=[{"id": "id-a"}, {"id": "id-b", "reason": "r\n" * 1000}])
    out = decide(200, {}, doc, IDS[:2])
    assert isinstance(out, Delivered)
    reasons = dict(out.rejected)
    assert reasons["id-a"] == "rejected"
    assert len(reasons["id-b"]) == MAX_REASON_CHARS and "\n" not in reasons["id-b"]


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"accepted": 3}', b'{"other": 1}'])
def test_unreadable_success_is_retried(raw: bytes) -> None:
    out = decide(200, {}, raw, IDS)
    assert isinstance(out, Retry) and out.failure


@pytest.mark.parametrize("status", [400, 413, 422])
def test_whole_batch_refusal_splits(status: int) -> None:
    out = decide(status, {}, body(error="the body is not JSON"), IDS)
    assert out == Split(f"HTTP {status}: the body is not JSON")
    single = decide(status, {}, body(error="the body is not JSON"), IDS[:1])
    assert single == QuarantineAll(f"HTTP {status}: the body is not JSON")


def test_refusal_with_per_event_details_is_used() -> None:
    doc = body(rejected=[{"id": "id-a", "reason": "too big"}], accepted=["id-b"])
    out = decide(422, {}, doc, IDS[:2])
    assert isinstance(out, Delivered)
    assert out.rejected == (("id-a", "too big"),)


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_pauses(status: int) -> None:
    out = decide(status, {}, body(error="unknown API key"), IDS)
    assert out == Pause(f"HTTP {status}: unknown API key", status)


def test_rate_limited_waits_the_retry_after_and_is_not_a_failure() -> None:
    out = decide(429, {"retry-after": "7"}, body(error="slow down"), IDS)
    assert out == Retry("HTTP 429: slow down", 7.0, failure=False, status=429)
    bare = decide(429, {}, b"", IDS)
    assert isinstance(bare, Retry) and bare.retry_after_s == DEFAULT_RATE_LIMIT_WAIT_S


def test_http_date_retry_after() -> None:
    out = decide(503, {"Retry-After": "Thu, 01 Jan 2026 00:01:00 GMT"}, b"", IDS, 1767225600.0)
    assert isinstance(out, Retry) and out.retry_after_s == 60.0 and out.failure


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_server_errors_retry(status: int) -> None:
    out = decide(status, {}, b"<html>Bad   Gateway</html>", IDS)
    assert out == Retry(f"HTTP {status}: <html>Bad Gateway</html>", None, status=status)


@pytest.mark.parametrize("status", [301, 404, 405, 408, 415, 418])
def test_other_answers_retry_with_backoff(status: int) -> None:
    out = decide(status, {}, body(error="nope"), IDS)
    assert isinstance(out, Retry) and out.failure
    if status == 404:
        assert "API URL" in out.reason


def test_network_error() -> None:
    out = network_error("cannot connect to 127.0.0.1:9: Connection refused")
    assert out == Retry("cannot connect to 127.0.0.1:9: Connection refused", None)


def test_header_lookup_ignores_case() -> None:
    assert header({"RETRY-AFTER": "3"}, "Retry-After") == "3"
    assert header({}, "Retry-After") is None


@given(
    status=st.integers(100, 599),
    raw=st.binary(max_size=200)
    | st.builds(
        lambda a, d, r: orjson.dumps({"accepted": a, "duplicates": d, "rejected": r}),
        st.lists(st.sampled_from(IDS)),
        st.lists(st.sampled_from(IDS)),
        st.lists(st.fixed_dictionaries({"id": st.sampled_from(IDS), "reason": st.text()})),
    ),
    n=st.integers(1, 4),
)
def test_every_sent_id_lands_in_exactly_one_place(status: int, raw: bytes, n: int) -> None:
    ids = IDS[:n]
    out = decide(status, {"Retry-After": "1"}, raw, ids)
    if isinstance(out, Delivered):
        placed = [*out.sent, *(i for i, _ in out.rejected), *out.unacknowledged]
        assert sorted(placed) == sorted(ids)
    else:
        assert isinstance(out, Retry | Split | QuarantineAll | Pause)
