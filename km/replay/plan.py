"""What `km replay` sends and how it compares answers (sans-IO).

`plan(events)` turns a captured session (events in spool order) into steps: each
client-to-server request or notification, in order, with the reply captured for it. The
client's own answers to server requests are not replayed (the replayer answers those itself,
minimally: `answer(request)`). `normalize` removes what legitimately varies between runs (the
JSON-RPC id, ISO-8601 timestamps anywhere in strings, fields named by `--ignore` paths), and
`difference` gives a unified diff of two normalized answers, or None when they agree.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

REQUEST, NOTIFICATION, RESPONSE, ERROR = "request", "notification", "response", "error"
C2S = "c2s"
TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
)
MASK = "<timestamp>"
IGNORED = "<ignored>"
_ANY = object()


@dataclass(slots=True)
class Step:
    method: str
    payload: bytes  # what to send, as captured
    rpc_id: Any = None  # the request's JSON-RPC id (None: a notification)
    expected: bytes | None = None  # the captured reply, None when none was captured
    target: str | None = None  # tool, prompt or resource, for the report
    problem: str | None = None  # why it cannot be sent (a truncated payload)

    @property
    def is_request(self) -> bool:
        return self.rpc_id is not None

    @property
    def label(self) -> str:
        name = f"{self.method} {self.target}" if self.target else self.method
        return f"{name} (id {orjson.dumps(self.rpc_id).decode()})" if self.is_request else name


def plan(events: Iterable[Any]) -> list[Step]:
    """Steps from a session's events (objects with the spool's event fields and `payload`)."""
    steps: list[Step] = []
    by_event: dict[str, Step] = {}
    for e in events:
        if e.direction == C2S and e.kind in (REQUEST, NOTIFICATION):
            payload = e.payload or b""
            step = Step(method=e.method or "", payload=payload, target=e.tool)
            if e.kind == REQUEST:
                step.rpc_id = _rpc_id(e.rpc_id)
                by_event[e.id] = step
            if e.truncated:
                step.problem = "not replayed: its payload was truncated when captured"
            steps.append(step)
        elif e.direction != C2S and e.kind in (RESPONSE, ERROR) and e.link_id in by_event:
            by_event[e.link_id].expected = e.payload
    return steps


def _rpc_id(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The replayer's minimal answer to a server-to-client request."""
    method = request.get("method")
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request.get("id")}
    if method == "ping":
        reply["result"] = {}
    elif method == "roots/list":
        reply["result"] = {"roots": []}
    elif method == "elicitation/create":
        reply["result"] = {"action": "decline"}
    else:
        reply["error"] = {"code": -32601, "message": f"km replay does not answer {method}"}
    return reply


def parse_path(text: str) -> tuple[object, ...]:
    """`result.content.*.text` -> ("result", "content", ANY, "text"); `*` is any key or index."""
    parts = [p for p in text.split(".") if p]
    if not parts:
        raise ValueError(f"empty --ignore path {text!r}")
    return tuple(_ANY if p == "*" else p for p in parts)


def normalize(doc: object, ignore: Sequence[tuple[object, ...]] = ()) -> object:
    """`doc` without its top-level id, with timestamps masked and ignored paths replaced."""
    if isinstance(doc, dict):
        doc = {k: v for k, v in doc.items() if k != "id"}
    for path in ignore:
        doc = _ignore(doc, path)
    return _mask(doc)


def _ignore(doc: object, path: tuple[object, ...]) -> object:
    if not path:
        return IGNORED
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {k: _ignore(v, rest) if head is _ANY or k == head else v for k, v in doc.items()}
    if isinstance(doc, list):
        return [
            _ignore(v, rest) if head is _ANY or str(i) == head else v for i, v in enumerate(doc)
        ]
    return doc


def _mask(doc: object) -> object:
    if isinstance(doc, str):
        return TIMESTAMP.sub(MASK, doc)
    if isinstance(doc, dict):
        return {k: _mask(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_mask(v) for v in doc]
    return doc


def pretty(doc: object) -> list[str]:
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    return text.splitlines()


def difference(
    label: str, expected: object, got: object, ignore: Sequence[tuple[object, ...]] = ()
) -> str | None:
    """A unified diff between the captured and the replayed answer, None when they agree."""
    a, b = normalize(expected, ignore), normalize(got, ignore)
    if a == b:
        return None
    lines = difflib.unified_diff(
        pretty(a), pretty(b), f"captured {label}", f"replayed {label}", lineterm="", n=2
    )
    return "\n".join(lines)


def decode(payload: bytes | None) -> object:
    if payload is None:
        return None
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload.decode("utf-8", "replace")
