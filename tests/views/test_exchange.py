"""The Pairer (sans-IO): requests and replies on one line, order kept, holds bounded."""

from __future__ import annotations

from typing import Any

from km.views.exchange import Line, Pairer, Row


def row(id: str, kind: str, **kw: Any) -> Row:
    fields: dict[str, Any] = {
        "session_id": "s", "server": "srv", "direction": "c2s", "ts_ns": 0, "method": "m",
        "rpc_id": None, "size": 10, "link_id": None, "latency_us": None,
    }  # fmt: skip
    fields.update(kw)
    return Row(id=id, kind=kind, **fields)


def shapes(lines: list[Line]) -> list[tuple[str, str | None, str | None, str | None]]:
    return [
        (
            x.shape,
            x.request.id if x.request else None,
            x.reply.id if x.reply else None,
            x.event.id if x.event else None,
        )
        for x in lines
    ]


def test_reply_within_the_hold_makes_one_line() -> None:
    p = Pairer(hold=1.0)
    p.feed(row("q", "request", rpc_id="1"), True, now=0.0)
    p.feed(row("n", "notification"), True, now=0.1)
    assert p.ready(0.2) == []  # the request holds the line (and what comes after it)
    p.feed(row("r", "response", link_id="q", latency_us=5, status="ok"), False, now=0.3)
    lines = p.ready(0.3)
    assert shapes(lines) == [("exchange", "q", "r", None), ("event", None, None, "n")]
    assert lines[0].status == "ok"


def test_a_late_reply_is_a_completion_line() -> None:
    p = Pairer(hold=1.0)
    p.feed(row("q", "request", rpc_id="1"), True, now=0.0)
    lines = p.ready(1.0)
    assert shapes(lines) == [("exchange", "q", None, None)]
    assert lines[0].status == "pending"
    p.feed(row("r", "error", link_id="q"), False, now=5.0)
    lines = p.ready(5.0)
    assert shapes(lines) == [("completion", "q", "r", None)]
    assert lines[0].status == "error"


def test_selection() -> None:
    p = Pairer(hold=1.0)
    p.feed(row("q1", "request", rpc_id="1"), False, now=0.0)  # not selected
    p.feed(row("r1", "response", link_id="q1", status="tool-error"), True, now=0.0)
    p.feed(row("q2", "request", rpc_id="2"), False, now=0.0)
    p.feed(row("r2", "response", link_id="q2"), False, now=0.0)  # neither: nothing
    p.feed(row("x", "notification"), False, now=0.0)
    lines = p.flush()
    assert shapes(lines) == [("exchange", None, "r1", None)]
    assert lines[0].status == "tool-error"


def test_notifications_and_requests_without_id_are_events() -> None:
    p = Pairer(hold=1.0)
    p.feed(row("n", "notification", rpc_id=None), True, now=0.0)
    p.feed(row("d", "dropped", direction="km"), True, now=0.0)
    assert shapes(p.ready(0.0)) == [("event", None, None, "n"), ("event", None, None, "d")]


def test_memory_of_pending_requests_is_bounded() -> None:
    p = Pairer(hold=0.0, max_waiting=2)
    for i in range(3):
        p.feed(row(f"q{i}", "request", rpc_id=str(i)), True, now=0.0)
    assert len(p.ready(0.0)) == 3
    p.feed(row("r0", "response", link_id="q0"), True, now=1.0)  # q0 was forgotten
    p.feed(row("r2", "response", link_id="q2"), True, now=1.0)
    assert shapes(p.ready(1.0)) == [
        ("exchange", None, "r0", None),
        ("completion", "q2", "r2", None),
    ]


def test_a_reply_alone_shows_its_request_direction() -> None:
    from km.views.render import cells

    p = Pairer(hold=0.0)
    p.feed(row("r", "response", direction="s2c", link_id="gone", status="ok"), True, now=0.0)
    p.feed(row("r2", "response", direction="c2s", link_id="gone2", status="ok"), True, now=0.0)
    first, second = p.ready(0.0)
    assert cells(first)[2] == "→"  # a client's request, answered by the server
    assert cells(second)[2] == "←"  # a server-to-client request, answered by the client
