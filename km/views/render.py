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
    fmt.Column("method", 26, 10),
    fmt.Column("tool", 30, 6),
    fmt.Column("status", 10, 10),
    fmt.Column("latency", 7, 6, right=True),
    fmt.Column("size", 6, 5, right=True),
    fmt.Column("tok", 5, 4, right=True),
    fmt.Column("risk", 4, 4, right=True),
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
        ARROWS.get(_request_direction(line), "?"),
        method,
        _text(first.tool),
        line.status or "",
        fmt.latency(latency) if latency is not None else "",
        fmt.size(total_size),
        fmt.count(sum(tokens)) if tokens else "",
        str(max(risks)) if risks else "",
    ]


def _request_direction(line: Line) -> str:
    """Which way the exchange's request went (a reply travels the other way)."""
    first = line.first
    if line.request is None and line.reply is not None:
        return {"s2c": "c2s", "c2s": "s2c"}.get(first.direction, first.direction)
    return first.direction


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


SGR = {  # ANSI Select Graphic Rendition codes for the styles used
    "green": "32",
    "bold red": "1;31",
    "red": "31",
    "yellow": "33",
    "magenta": "35",
    "dim": "2",
    "bold": "1",
    "bold yellow": "1;33",
}


def paint(text: str, style: str) -> str:
    """`text` in `style` for an ANSI terminal (`text` already made safe)."""
    code = SGR.get(style)
    return f"\x1b[{code}m{text}\x1b[0m" if code else text


def styled(line: Line, widths: list[int], color: bool = True) -> str:
    """One line for a terminal `widths` wide (see `fmt.fit`), coloured with ANSI codes.

    Written directly rather than through rich: a rich `Text` per line costs ~200 us, which
    would hold `km tail` to ~5,000 lines/s on a terminal."""
    parts = cells(line)
    widths = list(widths)
    if not parts[4] and widths[4] > 0:  # no tool: the method takes the tool's room too
        widths[3] += widths[4] + 1
        widths[4] = 0
    styles = ["dim", "", "", "", "", "", "", "", "", ""] if color else [""] * 10
    if color:
        styles[5] = STATUS_STYLES.get(line.status or "", "")
        if line.reply is not None and (line.reply.latency_us or 0) >= 1_000_000:
            styles[6] = "yellow"
        if parts[9].isdigit() and int(parts[9]) >= 70:
            styles[9] = "bold red"
    out = [
        paint(fmt.cell(part, width, right), style) if style else fmt.cell(part, width, right)
        for part, width, right, style in zip(parts, widths, _RIGHT, styles, strict=True)
        if width > 0
    ]
    return " ".join(out).rstrip()


_RIGHT = tuple(c.right for c in TAIL_COLUMNS)


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
