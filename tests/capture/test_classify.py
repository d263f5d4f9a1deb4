"""classify: kinds, ids as JSON text, correlation hints, batches, invalid input, truncation."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from km.capture.classify import Envelope, classify
from km.events import BATCH, ERROR, INVALID, NOTIFICATION, REQUEST, RESPONSE


def of(obj: Any) -> Envelope:
    data = orjson.dumps(obj)
    return classify(data, len(data), False, b"")


def of_bytes(data: bytes) -> Envelope:
    return classify(data, len(data), False, b"")


def test_request() -> None:
    env = of({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert env == Envelope(REQUEST, "tools/list", "1")


def test_request_ids_keep_their_json_type() -> None:
    assert of({"jsonrpc": "2.0", "id": 1, "method": "m"}).rpc_id == "1"
    assert of({"jsonrpc": "2.0", "id": "1", "method": "m"}).rpc_id == '"1"'
    assert of({"jsonrpc": "2.0", "id": 1.5, "method": "m"}).rpc_id == "1.5"
    assert of({"jsonrpc": "2.0", "id": 'a"b', "method": "m"}).rpc_id == '"a\\"b"'
    assert of({"jsonrpc": "2.0", "id": None, "method": "m"}) == Envelope(REQUEST, "m", "null")
    assert of({"jsonrpc": "2.0", "id": -(2**63), "method": "m"}).rpc_id == str(-(2**63))


def test_request_with_progress_token() -> None:
    for token, text in ((7, "7"), ("tok-1", '"tok-1"')):
        env = of(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "slow", "_meta": {"progressToken": token}},
            }
        )
        assert env == Envelope(REQUEST, "tools/call", "3", progress_token=text)


def test_request_without_usable_meta() -> None:
    params: object
    for params in ({"_meta": {}}, {"_meta": 5}, [1, 2], "x", {"progressToken": 1}):
        env = of({"jsonrpc": "2.0", "id": 3, "method": "m", "params": params})
        assert env == Envelope(REQUEST, "m", "3"), params


def test_notification() -> None:
    env = of({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert env == Envelope(NOTIFICATION, "notifications/initialized")


def test_progress_notification() -> None:
    env = of(
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": "abc", "progress": 1, "total": 3},
        }
    )
    assert env == Envelope(NOTIFICATION, "notifications/progress", progress_token='"abc"')
    bare = of({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}})
    assert bare == Envelope(NOTIFICATION, "notifications/progress")


def test_cancelled_notification() -> None:
    env = of(
        {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 4, "reason": "user"},
        }
    )
    assert env == Envelope(NOTIFICATION, "notifications/cancelled", cancel_request_id="4")
    # Hints belong to their own method only.
    other = of({"jsonrpc": "2.0", "method": "notifications/other", "params": {"requestId": 4}})
    assert other == Envelope(NOTIFICATION, "notifications/other")


def test_response_and_error() -> None:
    assert of({"jsonrpc": "2.0", "id": 1, "result": {}}) == Envelope(RESPONSE, None, "1")
    assert of({"jsonrpc": "2.0", "id": "x", "result": None}) == Envelope(RESPONSE, None, '"x"')
    err = {"code": -32601, "message": "Method not found"}
    assert of({"jsonrpc": "2.0", "id": 2, "error": err}) == Envelope(ERROR, None, "2")
    assert of({"jsonrpc": "2.0", "id": None, "error": err}) == Envelope(ERROR, None, "null")
    # Both result and error: the error wins.
    assert of({"jsonrpc": "2.0", "id": 2, "result": 1, "error": err}).kind == ERROR


def test_invalid_objects() -> None:
    for obj in (
        {},
        {"jsonrpc": "2.0"},
        {"jsonrpc": "2.0", "result": {}},  # no id
        {"jsonrpc": "2.0", "error": {}},  # no id
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "method": ["m"]},
    ):
        assert of(obj) == Envelope(INVALID), obj


def test_invalid_lines() -> None:
    for data in (
        b"Starting server...",
        b"42",
        b'"a string"',
        b"null",
        b"true",
        b"[]",
        b"{",
        b'{"id":1,"method":"m"',
        b'{"id":1,"method":"\xff"}',
        b"\xff\xfe",
        b"\x00",
        b'{"id":1,"method":"m"} {"id":2}',
    ):
        assert of_bytes(data) == Envelope(INVALID), data


def test_batch() -> None:
    env = of(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "a"},
            {"jsonrpc": "2.0", "method": "n"},
            5,
            {"jsonrpc": "2.0", "id": 1, "result": {}},
            [],
        ]
    )
    assert env.kind == BATCH
    assert env.method is None and env.rpc_id is None
    assert env.elements == (
        Envelope(REQUEST, "a", "1"),
        Envelope(NOTIFICATION, "n"),
        Envelope(INVALID),
        Envelope(RESPONSE, None, "1"),
        Envelope(INVALID),
    )


def test_whitespace_around_the_json_is_fine() -> None:
    assert of_bytes(b'  {"id":1,"method":"m"}\t').kind == REQUEST


# --- truncated frames --------------------------------------------------------------------------

BIG = {"content": [{"type": "text", "text": "x" * 5000}]}


def truncated(obj: Any, cap: int = 100) -> Envelope:
    line = orjson.dumps(obj)
    assert len(line) > cap
    return classify(line[:cap], len(line), True, line[-4096:])


def test_truncated_python_sdk_response() -> None:
    assert truncated({"jsonrpc": "2.0", "id": 5, "result": BIG}) == Envelope(RESPONSE, None, "5")


def test_truncated_typescript_sdk_response() -> None:
    assert truncated({"result": BIG, "jsonrpc": "2.0", "id": 5}) == Envelope(RESPONSE, None, "5")


def test_truncated_error() -> None:
    err = {"code": 1, "message": "m" * 5000}
    assert truncated({"jsonrpc": "2.0", "id": "e", "error": err}) == Envelope(ERROR, None, '"e"')
    assert truncated({"error": err, "jsonrpc": "2.0", "id": None}) == Envelope(ERROR, None, "null")


def test_truncated_requests_and_notifications() -> None:
    params = {"name": "t", "arguments": BIG, "_meta": {"progressToken": 1}}
    ts_request = {"method": "tools/call", "params": params, "jsonrpc": "2.0", "id": 1}
    # The progress token sits inside params: not recovered from a truncated frame.
    assert truncated(ts_request) == Envelope(REQUEST, "tools/call", "1")
    py_request = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}
    assert truncated(py_request) == Envelope(REQUEST, "tools/call", "2")
    note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": BIG}}
    assert truncated(note) == Envelope(NOTIFICATION, "notifications/message")


def test_truncated_nested_id_is_not_taken() -> None:
    # The only "id" near the end is two levels deep: not a response.
    obj = {"jsonrpc": "2.0", "result": {"big": BIG, "inner": {"id": 3}}}
    assert truncated(obj) == Envelope(INVALID)


def test_truncated_batch_and_garbage() -> None:
    batch = [{"jsonrpc": "2.0", "id": i, "result": BIG} for i in range(2)]
    assert truncated(batch) == Envelope(BATCH)
    junk = b"y" * 10_000
    assert classify(junk[:100], len(junk), True, junk[-4096:]) == Envelope(INVALID)
    cut_method = b'{"id":1,"method":"' + b"m" * 300
    assert classify(cut_method[:100], 10_000, True, b"") == Envelope(INVALID)


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=5)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
RPCISH = st.dictionaries(
    st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error", "x"]),
    JSON_VALUES,
    max_size=5,
).filter(lambda d: sum(k in d for k in ("method", "result", "error")) <= 1)  # well-formed


@settings(deadline=None)  # timing varies on a loaded machine; the logic does not
@given(st.one_of(RPCISH, JSON_VALUES, st.lists(RPCISH, max_size=3)))
def test_any_json_classifies_and_truncation_agrees(obj: Any) -> None:
    line = orjson.dumps(obj)
    env = classify(line, len(line), False, b"")
    assert env.kind in (REQUEST, NOTIFICATION, RESPONSE, ERROR, BATCH, INVALID)
    if env.rpc_id is not None:
        assert orjson.loads(env.rpc_id) == obj["id"]
    # Reading the same object as a truncated frame never contradicts the full parse (it may
    # miss an id that sits in the middle, taking a request for a notification).
    if isinstance(obj, dict) and len(line) > 2:
        cap = len(line) // 2
        partial = classify(line[:cap], len(line), True, line[-4096:][cap // 2 :])
        if partial.kind != INVALID:
            assert partial.kind == env.kind or (
                env.kind == REQUEST and partial.kind == NOTIFICATION
            )
            assert partial.method in (None, env.method)
            assert partial.rpc_id in (None, env.rpc_id)


@settings(deadline=None)  # timing varies on a loaded machine; the logic does not
@given(st.binary(max_size=100), st.booleans(), st.binary(max_size=100))
def test_any_bytes_classify_without_raising(data: bytes, truncated: bool, tail: bytes) -> None:
    assert classify(data, len(data) + 1, truncated, tail).kind in (
        REQUEST,
        NOTIFICATION,
        RESPONSE,
        ERROR,
        BATCH,
        INVALID,
    )


def test_plain_notification_envelopes_are_made_once_per_method_and_bounded() -> None:
    from km.capture import classify as module

    def env(method: str) -> Envelope:
        line = b'{"jsonrpc":"2.0","method":"%s","params":{"a":1}}' % method.encode()
        return classify(line, len(line), False, b"")

    first = env("notifications/message")
    assert first == Envelope(NOTIFICATION, "notifications/message")
    assert env("notifications/message") is first
    for n in range(module._NOTIFICATIONS_MAX + 10):  # a peer inventing methods
        assert env(f"x/{n}") == Envelope(NOTIFICATION, f"x/{n}")
    assert len(module._NOTIFICATIONS) == module._NOTIFICATIONS_MAX
