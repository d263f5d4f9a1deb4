"""CapturePipeline: framed lines to events, end to end through the framer, no I/O."""

from __future__ import annotations

import itertools
import uuid

import orjson

from km.capture.framing import TAIL_BYTES, Frame, LineFramer
from km.capture.pipeline import CapturePipeline
from km.events import (
    BATCH,
    C2S,
    DROPPED,
    ERROR,
    INVALID,
    KM,
    NOTIFICATION,
    REQUEST,
    RESPONSE,
    S2C,
    Event,
)

MS = 1_000_000


def counter_ids() -> CapturePipeline:
    numbers = itertools.count(1)
    return CapturePipeline("sess-1", "time", new_id=lambda: f"ev-{next(numbers)}")


def frame(line: bytes, cap: int = 1 << 20) -> Frame:
    (f,) = LineFramer(cap).feed(line + b"\n")
    return f


def test_request_response_round_trip() -> None:
    p = counter_ids()
    req = frame(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"now"}}')
    resp = frame(b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}')
    e1 = p.process(C2S, 100 * MS, 1_700_000_000_000_000_000, req)
    e2 = p.process(S2C, 103 * MS, 1_700_000_000_003_000_000, resp)
    assert e1 == Event(
        id="ev-1",
        session_id="sess-1",
        server="time",
        direction=C2S,
        ts_ns=1_700_000_000_000_000_000,
        mono_ns=100 * MS,
        kind=REQUEST,
        method="tools/call",
        rpc_id="1",
        size=len(req.data),
        payload=req.data,
    )
    assert e2 == Event(
        id="ev-2",
        session_id="sess-1",
        server="time",
        direction=S2C,
        ts_ns=1_700_000_000_003_000_000,
        mono_ns=103 * MS,
        kind=RESPONSE,
        method="tools/call",  # the request's method
        rpc_id="1",
        size=len(resp.data),
        payload=resp.data,
        link_id="ev-1",
        latency_us=3000,
    )


def test_notifications_keep_their_own_method() -> None:
    p = counter_ids()
    p.process(
        C2S,
        0,
        0,
        frame(
            b'{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"_meta":{"progressToken":"p"}}}'
        ),
    )
    prog = p.process(
        S2C,
        1,
        1,
        frame(
            b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}'
        ),
    )
    assert (prog.kind, prog.method, prog.link_id, prog.latency_us) == (
        NOTIFICATION,
        "notifications/progress",
        "ev-1",
        None,
    )
    cancel = p.process(
        C2S,
        2,
        2,
        frame(b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"a"}}'),
    )
    assert (cancel.method, cancel.link_id, cancel.rpc_id) == (
        "notifications/cancelled",
        "ev-1",
        None,
    )
    err = p.process(
        S2C, 3000, 3, frame(b'{"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"x"}}')
    )
    assert (err.kind, err.method, err.rpc_id, err.link_id, err.latency_us) == (
        ERROR,
        "tools/call",
        '"a"',
        "ev-1",
        3,
    )


def test_unmatched_response_and_invalid_lines() -> None:
    p = counter_ids()
    e = p.process(S2C, 0, 0, frame(b'{"jsonrpc":"2.0","id":99,"result":{}}'))
    assert (e.kind, e.method, e.link_id, e.latency_us) == (RESPONSE, None, None, None)
    junk = p.process(S2C, 0, 0, frame(b"Server listening on stdio"))
    assert (junk.kind, junk.method, junk.rpc_id, junk.payload) == (
        INVALID,
        None,
        None,
        b"Server listening on stdio",
    )


def test_truncated_frame_is_classified_and_stored_truncated() -> None:
    p = counter_ids()
    p.process(C2S, 0, 0, frame(b'{"jsonrpc":"2.0","id":5,"method":"resources/read"}'))
    big = b'{"result":{"contents":[{"text":"' + b"z" * 20_000 + b'"}]},"jsonrpc":"2.0","id":5}'
    f = frame(big, cap=1000)
    assert f.truncated and len(f.tail) == TAIL_BYTES
    e = p.process(S2C, 7 * MS, 0, f)
    assert (e.kind, e.method, e.rpc_id, e.link_id, e.latency_us) == (
        RESPONSE,
        "resources/read",
        "5",
        "ev-1",
        7000,
    )
    assert (e.payload, e.size, e.truncated) == (big[:1000], len(big), True)


def test_batch_event() -> None:
    p = counter_ids()
    b1 = p.process(
        C2S,
        0,
        0,
        frame(b'[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":2,"method":"b"}]'),
    )
    assert (b1.kind, b1.method, b1.rpc_id, b1.link_id) == (BATCH, None, None, None)
    single = p.process(S2C, 1000, 0, frame(b'{"jsonrpc":"2.0","id":2,"result":{}}'))
    assert (single.method, single.link_id, single.latency_us) == ("b", "ev-1", 1)
    b2 = p.process(S2C, 2000, 0, frame(b'[{"jsonrpc":"2.0","id":1,"result":{}}]'))
    assert (b2.kind, b2.method, b2.link_id, b2.latency_us) == (BATCH, None, "ev-1", 2)


def test_dropped_event() -> None:
    p = counter_ids()
    e = p.dropped(5, 6, frames=3, nbytes=4096)
    assert e.direction == KM
    assert e.kind == DROPPED
    assert (e.mono_ns, e.ts_ns, e.method, e.rpc_id, e.link_id) == (5, 6, None, None, None)
    assert orjson.loads(e.payload) == {"frames": 3, "bytes": 4096}
    assert e.size == len(e.payload)
    assert (e.id, e.session_id, e.server) == ("ev-1", "sess-1", "time")


def test_eviction_count_is_visible() -> None:
    p = CapturePipeline("s", "srv", max_pending=2)
    for n in range(5):
        p.process(C2S, n, n, frame(b'{"jsonrpc":"2.0","method":"m","id":%d}' % n))
    assert p.evicted == 3


def test_default_ids_are_increasing_uuid7() -> None:
    p = CapturePipeline("s", "srv")
    events = [p.process(C2S, n, n, frame(b'{"jsonrpc":"2.0","method":"m"}')) for n in range(50)]
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert all(uuid.UUID(i).version == 7 for i in ids)


def _analyzing(ids: object) -> CapturePipeline:
    from functools import partial

    from km.insight.session import SessionAnalyzer
    from km.redact import (
        DEFAULT_RULES,
        redact_payload,
        redact_payload_with_report,
        redact_text,
        unchanged_payloads,
    )

    return CapturePipeline(
        "sess-1",
        "srv",
        new_id=ids,  # type: ignore[arg-type]
        redact=partial(redact_payload, rules=DEFAULT_RULES),
        analyzer=SessionAnalyzer("srv"),
        redact_text=partial(redact_text, rules=DEFAULT_RULES),
        redact_report=partial(redact_payload_with_report, rules=DEFAULT_RULES),
        redact_clean=partial(unchanged_payloads, rules=DEFAULT_RULES),
    )


def _session_frames() -> list[tuple[str, int, int, Frame]]:
    tools = {"tools": [{"name": "run", "description": "Run a shell command", "inputSchema": {}}]}
    lines = [
        (C2S, b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}'),
        (S2C, b'{"jsonrpc":"2.0","id":0,"result":{"serverInfo":{"name":"s","version":"1"}}}'),
        (C2S, b'{"jsonrpc":"2.0","method":"notifications/initialized"}'),
        (C2S, b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'),
        (S2C, orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": tools})),
        (
            C2S,
            b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run",'
            b'"arguments":{"cmd":"rm -rf /","password":"hunter2"}}}',
        ),
        (S2C, b'{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"ok"}]}}'),
        (
            S2C,
            b'{"jsonrpc":"2.0","method":"notifications/message","params":{"token":"ghp_'
            + b"a" * 36
            + b'"}}',
        ),
        (S2C, b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"0001"}}'),
        (S2C, b"Server listening on stdio"),
        (C2S, b'[{"jsonrpc":"2.0","id":3,"method":"ping"}]'),
        (S2C, b'{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"Bearer abc"}}'),
    ]
    return [(d, n * MS, n, frame(line)) for n, (d, line) in enumerate(lines)]


def _normalized(events: list[Event]) -> list[Event]:
    """The events with every id replaced by the position of the event it names (the ids of
    findings are drawn from the same generator, between the batches' event ids)."""
    import dataclasses

    position = {e.id: str(i) for i, e in enumerate(events)}
    out = []
    for e in events:
        notes = []
        for note in e.notes or ():
            changes = {}
            if hasattr(note, "id"):
                changes["id"] = ""
            if getattr(note, "event_id", None) is not None:
                changes["event_id"] = position[note.event_id]  # type: ignore[attr-defined]
            notes.append(dataclasses.replace(note, **changes) if changes else note)  # type: ignore[type-var]
        link = position.get(e.link_id) if e.link_id is not None else None
        out.append(dataclasses.replace(e, id=position[e.id], link_id=link, notes=notes or None))
    return out


def test_process_many_makes_the_events_process_makes() -> None:
    from km.capture.ids import Uuid7Generator

    def ids() -> Uuid7Generator:
        return Uuid7Generator(clock_ns=lambda: 9 * MS, random_bytes=lambda n: b"\x3c" * n)

    frames = _session_frames() * 3
    one, many = _analyzing(ids()), _analyzing(ids())
    expected = [one.process(*item) for item in frames]
    got = many.process_many(frames[:5]) + many.process_many(frames[5:6]) + many.process_many([])
    got += many.process_many(frames[6:])
    assert _normalized(got) == _normalized(expected)
    assert [e.id for e in got] == sorted(e.id for e in got)
    assert any(e.notes for e in got) and any(e.risk for e in got)  # the analysis ran
    assert b"hunter2" not in b"".join(e.payload for e in got)  # and the redactor
    assert b"ghp_" not in b"".join(e.payload for e in got)


def test_process_many_with_ids_made_one_by_one() -> None:
    frames = _session_frames()
    numbers = itertools.count(1)
    p = _analyzing(lambda: f"ev-{next(numbers)}")
    events = p.process_many(frames)
    assert [e.id for e in events] == [f"ev-{n}" for n in range(1, len(frames) + 1)]
