"""Exchange lines as text: plain (piped), styled for a terminal (rich `Text`), or JSON objects.

Captured strings (server, method, tool names) go through `km.terminal.safe` (control and
invisible characters made visible) before they are laid out; rich `Text` is never parsed as
markup, so nothing captured can style, move or retitle the terminal.
"""

from __future__ import annotations

from typing import Any

import orjson

from km.terminal import safe
from km.views import fmt
from km.views.exchange import Line, Row

ARROWS = {"c2s": "→", "s2c": "←", "km": "•"}
STATUS_STYLES = {
    "ok": "green",
    "error": "bold red",
    "tool-error": "red",
    "pending": "yellow",
    "cancelled": "magenta",
}
TAIL_COLUMNS = (
    fmt.Column("time", 12, 12),
    fmt.Column("server", 18, 6),
    fmt.Column("", 1, 1),
    fmt.Column("method", 26, 8),
    fmt.Column("tool", 30, 6),
    fmt.Column("status", 10, 7),
    fmt.Column("latency", 7, 6, right=True),
    fmt.Column("size", 6, 5, right=True),
    fmt.Column("tokens", 6, 0, right=True),
    fmt.Column("risk", 4, 0, right=True),
)


def _text(value: str | None) -> str:
    return "" if value is None else safe(value, markup=False)


def cells(line: Line) -> list[str]:
    """The tail columns of `line`, unpadded."""
    first = line.first
    request, reply = line.request, line.reply
    method = _text(first.method) or first.kind
    if line.shape == "completion":
        method = "↳ " + method
    if first.kind == "dropped" and line.event is not None:
        method = f"dropped {_dropped(line.event)}"
    elif line.shape == "event" and first.kind not in ("notification", "request"):
        method = f"{first.kind} {method}" if first.method else first.kind
    total_size = sum(r.size for r in (request, reply) if r is not None) or first.size
    tokens = [r.tokens for r in (request, reply) if r is not None and r.tokens is not None]
    risks = [r.risk for r in (request, reply, line.event) if r is not None and r.risk is not None]
    latency = reply.latency_us if reply is not None else None
    time_of = reply if line.shape == "completion" and reply is not None else first
    return [
        fmt.clock(time_of.ts_ns),
        _text(first.server),
        ARROWS.get(first.direction, "?"),
        method,
        _text(first.tool),
        line.status or "",
        fmt.latency(latency) if latency is not None else "",
        fmt.size(total_size),
        fmt.count(sum(tokens)) if tokens else "",
        str(max(risks)) if risks else "",
    ]


def _dropped(row: Row) -> str:
    try:
        doc = orjson.loads(row.payload or b"")
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("frames"), int):
        nbytes = doc.get("bytes")
        shown = f" ({fmt.size(nbytes)})" if isinstance(nbytes, int) else ""
        return f"{doc['frames']} frames{shown}"
    return "frames"


def plain(line: Line) -> str:
    """One line for a pipe: columns padded to their wanted width, nothing cut."""
    parts = cells(line)
    out = []
    for text, column in zip(parts, TAIL_COLUMNS, strict=True):
        out.append(text.rjust(column.want) if column.right else text.ljust(column.want))
    return " ".join(out).rstrip()


def header(widths: list[int]) -> str:
    return _join([c.name for c in TAIL_COLUMNS], widths)


def _join(parts: list[str], widths: list[int]) -> str:
    out = [
        fmt.cell(text, width, column.right)
        for text, width, column in zip(parts, widths, TAIL_COLUMNS, strict=True)
        if width > 0
    ]
    return " ".join(out).rstrip()


def styled(line: Line, widths: list[int]) -> Any:
    """A rich `Text` for a terminal `widths` wide (see `fmt.fit`)."""
    from rich.text import Text

    parts = cells(line)
    text = Text(no_wrap=True, overflow="ellipsis")
    status = line.status or ""
    shown = [(p, w, c) for p, w, c in zip(parts, widths, TAIL_COLUMNS, strict=True) if w > 0]
    for i, (part, width, column) in enumerate(shown):
        if i:
            text.append(" ")
        piece = fmt.cell(part, width, column.right)
        style = ""
        if column.name == "status":
            style = STATUS_STYLES.get(status, "")
        elif column.name == "time":
            style = "dim"
        elif column.name == "risk" and part and int(part) >= 70:
            style = "bold red"
        elif column.name == "latency" and line.reply is not None:
            us = line.reply.latency_us or 0
            style = "yellow" if us >= 1_000_000 else ""
        text.append(piece, style=style)
    return text


def as_json(line: Line) -> dict[str, Any]:
    first = line.first
    request, reply = line.request, line.reply
    tokens = [r.tokens for r in (request, reply) if r is not None and r.tokens is not None]
    return {
        "type": line.shape,
        "ts": fmt.iso(first.ts_ns),
        "ts_ns": first.ts_ns,
        "session_id": first.session_id,
        "server": first.server,
        "direction": first.direction,
        "kind": first.kind,
        "method": first.method,
        "tool": first.tool,
        "rpc_id": first.rpc_id,
        "status": line.status,
        "latency_us": reply.latency_us if reply is not None else None,
        "size": sum(r.size for r in (request, reply) if r is not None) or first.size,
        "tokens": sum(tokens) if tokens else None,
        "risk": max(
            (r.risk for r in (request, reply, line.event) if r is not None and r.risk is not None),
            default=None,
        ),
        "request_id": request.id if request is not None else None,
        "reply_id": reply.id if reply is not None else None,
        "event_id": line.event.id if line.event is not None else None,
    }
