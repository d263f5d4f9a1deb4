"""Events paired into exchanges, for `km tail` and `km show` (sans-IO: no clock, no I/O).

A request and its reply (the response or error whose `link_id` is the request's id) become one
line. `Pairer` is fed rows in capture order, each with whether the filter selected it, and
hands back `Line`s strictly in that order:

- a selected request waits at the head of the line until its reply arrives (one paired line)
  or until it has waited `hold` (in the caller's unit: seconds for `km tail`, events for
  `km show`); it is then emitted alone, still pending, and its reply, when it comes, is emitted
  as a `completion` line that refers to it;
- a selected reply whose request was not selected (or not seen) is a line by itself;
- everything else selected (notifications, server-to-client requests without a reply yet,
  batches, invalid frames, drops) is a line of its own, in order.

Memory is bounded: at most `max_waiting` requests are remembered after they were emitted
pending (the oldest are forgotten; their late replies then show as lines of their own).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

REPLY_KINDS = ("response", "error")
MAX_WAITING = 10_000


@dataclass(frozen=True, slots=True)
class Row:
    """One event as the views read it (from the spool or the API)."""

    id: str
    session_id: str
    server: str
    direction: str
    ts_ns: int
    kind: str
    method: str | None
    rpc_id: str | None
    size: int
    link_id: str | None
    latency_us: int | None
    tool: str | None = None
    status: str | None = None
    tokens: int | None = None
    risk: int | None = None
    truncated: bool = False
    payload: bytes | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """One output line. `shape` is `exchange` (request and/or reply), `completion` (the reply
    of a request already emitted pending) or `event` (anything else)."""

    shape: str
    request: Row | None = None
    reply: Row | None = None
    event: Row | None = None

    @property
    def first(self) -> Row:
        row = self.request or self.reply or self.event
        assert row is not None
        return row

    @property
    def status(self) -> str | None:
        if self.reply is not None:
            if self.reply.status is not None:
                return self.reply.status
            return "error" if self.reply.kind == "error" else "ok"
        if self.request is not None:
            return "pending"
        return None


class _Waiting:
    __slots__ = ("deadline", "reply", "request")

    def __init__(self, request: Row, deadline: float) -> None:
        self.request = request
        self.deadline = deadline
        self.reply: Row | None = None


class Pairer:
    def __init__(self, hold: float, max_waiting: int = MAX_WAITING) -> None:
        self.hold = hold
        self.max_waiting = max_waiting
        self._queue: deque[_Waiting | Line] = deque()
        self._held: dict[str, _Waiting] = {}  # request id -> its entry, while in the queue
        self._emitted: OrderedDict[str, Row] = OrderedDict()  # emitted pending, reply awaited

    def feed(self, row: Row, selected: bool, now: float) -> None:
        if row.kind in REPLY_KINDS and row.link_id is not None:
            waiting = self._held.pop(row.link_id, None)
            if waiting is not None:
                waiting.reply = row
                return
            request = self._emitted.pop(row.link_id, None)
            if request is not None:
                self._queue.append(Line("completion", request=request, reply=row))
                return
            if selected:
                self._queue.append(Line("exchange", reply=row))
            return
        if not selected:
            return
        if row.kind == "request" and row.rpc_id is not None:
            waiting = _Waiting(row, now + self.hold)
            self._held[row.id] = waiting
            self._queue.append(waiting)
            return
        self._queue.append(Line("event", event=row))

    def ready(self, now: float) -> list[Line]:
        """Lines ready at `now`, in order."""
        out: list[Line] = []
        queue = self._queue
        while queue:
            head = queue[0]
            if isinstance(head, Line):
                queue.popleft()
                out.append(head)
                continue
            if head.reply is None and head.deadline > now:
                break
            queue.popleft()
            out.append(self._finish(head))
        return out

    def flush(self) -> list[Line]:
        """Every line still queued, requests without a reply emitted pending."""
        return self.ready(float("inf"))

    def _finish(self, waiting: _Waiting) -> Line:
        request = waiting.request
        self._held.pop(request.id, None)
        if waiting.reply is None:
            self._emitted[request.id] = request
            if len(self._emitted) > self.max_waiting:
                self._emitted.popitem(last=False)
        return Line("exchange", request=request, reply=waiting.reply)
