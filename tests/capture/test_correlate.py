"""Correlator: replies, cancellations, progress, batches, duplicates and the pending bound."""

from __future__ import annotations

import pytest

from km.capture.classify import Envelope
from km.capture.correlate import NO_LINK, Correlator, Link
from km.events import BATCH, C2S, ERROR, INVALID, KM, NOTIFICATION, REQUEST, RESPONSE, S2C

MS = 1_000_000  # ns


def request(rpc_id: str, method: str = "tools/call", token: str | None = None) -> Envelope:
    return Envelope(REQUEST, method, rpc_id, progress_token=token)


def response(rpc_id: str | None) -> Envelope:
    return Envelope(RESPONSE, None, rpc_id)


def error(rpc_id: str | None) -> Envelope:
    return Envelope(ERROR, None, rpc_id)


def progress(token: str) -> Envelope:
    return Envelope(NOTIFICATION, "notifications/progress", progress_token=token)


def cancelled(request_id: str) -> Envelope:
    return Envelope(NOTIFICATION, "notifications/cancelled", cancel_request_id=request_id)


def test_response_links_to_request_with_latency() -> None:
    c = Correlator()
    assert c.observe(C2S, request("1", "tools/list"), "ev-req", 10 * MS) == NO_LINK
    assert len(c) == 1
    link = c.observe(S2C, response("1"), "ev-resp", 12 * MS + 345_678)
    assert link == Link("ev-req", "tools/list", 2345)
    assert len(c) == 0
    # Matched once only.
    assert c.observe(S2C, response("1"), "ev-again", 13 * MS) == NO_LINK


def test_error_links_like_a_response() -> None:
    c = Correlator()
    c.observe(C2S, request("7", "prompts/get"), "ev-req", 0)
    assert c.observe(S2C, error("7"), "ev-err", 5000) == Link("ev-req", "prompts/get", 5)


def test_error_with_null_id_links_only_to_a_null_id_request() -> None:
    c = Correlator()
    c.observe(C2S, request("1"), "ev-req", 0)
    assert c.observe(S2C, error("null"), "ev-err", 1) == NO_LINK
    assert c.observe(S2C, error(None), "ev-err", 1) == NO_LINK
    assert len(c) == 1


def test_ids_are_compared_as_json_text() -> None:
    c = Correlator()
    c.observe(C2S, request("1"), "ev-int", 0)
    c.observe(C2S, request('"1"'), "ev-str", 0)
    assert c.observe(S2C, response('"1"'), "r1", 0).link_id == "ev-str"
    assert c.observe(S2C, response("1"), "r2", 0).link_id == "ev-int"


def test_directions_are_kept_apart() -> None:
    c = Correlator()
    c.observe(C2S, request("1", "tools/call"), "client-req", 0)
    c.observe(S2C, request("1", "sampling/createMessage"), "server-req", 0)
    # A reply travelling the same way as the request is not its reply.
    assert c.observe(S2C, response("1"), "r", 0) == Link("client-req", "tools/call", 0)
    assert c.observe(C2S, response("1"), "r", 0) == Link("server-req", "sampling/createMessage", 0)
    assert len(c) == 0


def test_reply_in_the_same_direction_does_not_match() -> None:
    c = Correlator()
    c.observe(C2S, request("1"), "req", 0)
    assert c.observe(C2S, response("1"), "r", 0) == NO_LINK
    assert len(c) == 1


def test_km_direction_is_ignored() -> None:
    c = Correlator()
    assert c.observe(KM, request("1"), "req", 0) == NO_LINK
    assert len(c) == 0
    assert c.observe(KM, response("1"), "r", 0) == NO_LINK


def test_negative_latency_is_clamped() -> None:
    c = Correlator()
    c.observe(C2S, request("1"), "req", 5 * MS)
    assert c.observe(S2C, response("1"), "r", 4 * MS).latency_us == 0


def test_cancel_links_without_forgetting() -> None:
    c = Correlator()
    c.observe(C2S, request("4", "tools/call"), "req", 0)
    assert c.observe(C2S, cancelled("4"), "cancel", 1) == Link("req", "tools/call")
    assert len(c) == 1
    # The cancel travels with the request; one the other way refers to another request.
    assert c.observe(S2C, cancelled("4"), "cancel2", 1) == NO_LINK
    assert c.observe(C2S, cancelled("5"), "cancel3", 1) == NO_LINK
    assert c.observe(C2S, Envelope(NOTIFICATION, "notifications/cancelled"), "c4", 1) == NO_LINK
    assert c.observe(S2C, response("4"), "resp", 3000).link_id == "req"


def test_progress_links_until_the_response() -> None:
    c = Correlator()
    c.observe(C2S, request("9", "tools/call", token='"tok"'), "req", 0)
    assert c.observe(S2C, progress('"tok"'), "p1", 1) == Link("req", "tools/call")
    assert c.observe(S2C, progress('"tok"'), "p2", 2) == Link("req", "tools/call")
    assert c.observe(C2S, progress('"tok"'), "wrong-way", 2) == NO_LINK
    assert c.observe(S2C, progress('"other"'), "p3", 2) == NO_LINK
    assert c.observe(S2C, progress("tok"), "json-text-differs", 2) == NO_LINK
    assert c.observe(S2C, response("9"), "resp", 3).link_id == "req"
    assert c.observe(S2C, progress('"tok"'), "late", 4) == NO_LINK


def test_progress_token_reused_by_a_later_request() -> None:
    c = Correlator()
    c.observe(C2S, request("1", "a", token="5"), "req-a", 0)
    c.observe(C2S, request("2", "b", token="5"), "req-b", 0)
    assert c.observe(S2C, progress("5"), "p", 0).link_id == "req-b"
    # The first request's reply must not remove the second's registration.
    c.observe(S2C, response("1"), "resp-a", 0)
    assert c.observe(S2C, progress("5"), "p", 0).link_id == "req-b"
    c.observe(S2C, response("2"), "resp-b", 0)
    assert c.observe(S2C, progress("5"), "p", 0) == NO_LINK


def test_duplicate_request_id_replaces_the_older() -> None:
    c = Correlator()
    c.observe(C2S, request("1", "old", token="1"), "req-old", 0)
    c.observe(C2S, request("1", "new"), "req-new", 10 * MS)
    assert len(c) == 1
    assert c.evicted == 0
    assert c.observe(S2C, progress("1"), "p", 0) == NO_LINK  # the old one's token went with it
    assert c.observe(S2C, response("1"), "r", 11 * MS) == Link("req-new", "new", 1000)
    assert c.observe(S2C, response("1"), "r", 11 * MS) == NO_LINK


def test_pending_is_bounded_and_evicts_the_oldest() -> None:
    c = Correlator(max_pending=3)
    for n in range(5):
        c.observe(C2S, request(str(n), token=f'"t{n}"'), f"req-{n}", n)
    assert len(c) == 3
    assert c.evicted == 2
    assert c.observe(S2C, response("0"), "r", 10) == NO_LINK
    assert c.observe(S2C, response("1"), "r", 10) == NO_LINK
    assert c.observe(S2C, progress('"t0"'), "p", 10) == NO_LINK  # evicted with its request
    assert c.observe(S2C, progress('"t2"'), "p", 10).link_id == "req-2"
    assert c.observe(S2C, response("2"), "r", 10).link_id == "req-2"
    assert c.observe(S2C, response("4"), "r", 10).link_id == "req-4"
    assert len(c) == 1


def test_bound_under_a_flood_of_unanswered_requests() -> None:
    c = Correlator(max_pending=100)
    for n in range(10_000):
        c.observe(C2S, request(str(n)), f"req-{n}", n)
    assert len(c) == 100
    assert c.evicted == 9_900
    assert c.observe(S2C, response("9899"), "r", 0) == NO_LINK
    assert all(
        c.observe(S2C, response(str(n)), "r", 0).link_id == f"req-{n}" for n in range(9900, 10_000)
    )
    assert len(c) == 0


def test_max_pending_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Correlator(max_pending=0)


def test_batch_of_requests_then_batch_of_responses() -> None:
    c = Correlator()
    reqs = Envelope(
        BATCH,
        elements=(request("1", "a", token="1"), Envelope(NOTIFICATION, "n"), request("2", "b")),
    )
    assert c.observe(C2S, reqs, "batch-req", 0) == NO_LINK
    assert len(c) == 2
    assert c.observe(S2C, progress("1"), "p", 1) == Link("batch-req", "a")
    # Responses may come back in any order and in another batch; the batch links to its first
    # element that matched, without a method.
    resps = Envelope(BATCH, elements=(Envelope(INVALID), response("2"), response("1")))
    assert c.observe(S2C, resps, "batch-resp", 3000) == Link("batch-req", None, 3)
    assert len(c) == 0


def test_batch_with_no_match_has_no_link() -> None:
    c = Correlator()
    c.observe(C2S, request("1", "single"), "req", 0)
    resps = Envelope(BATCH, elements=(response("8"), response("9")))
    assert c.observe(S2C, resps, "batch", 0) == NO_LINK
    # A single response can answer one element of a batch.
    c.observe(C2S, Envelope(BATCH, elements=(request("5", "x"),)), "batch-req", 0)
    assert c.observe(S2C, response("5"), "r", 0) == Link("batch-req", "x", 0)


def test_invalid_and_plain_notifications_have_no_link() -> None:
    c = Correlator()
    assert c.observe(C2S, Envelope(INVALID), "x", 0) == NO_LINK
    assert c.observe(C2S, Envelope(NOTIFICATION, "notifications/initialized"), "x", 0) == NO_LINK
    assert c.observe(C2S, Envelope(REQUEST, "m", None), "x", 0) == NO_LINK
    assert len(c) == 0
